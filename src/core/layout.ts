/**
 * The store layout, shared by the server and the uploader:
 *
 *   plugins/<name>/<version>/plugin.wasm      the module (required)
 *   plugins/<name>/<version>/plugin.wasm.gz   gzip variant, served to clients that accept gzip
 *   plugins/<name>/<version>/metadata.txt     reference format (rendered when absent)
 *   plugins/<name>/<version>/metadata.json    typed facts (rendered when absent)
 *   plugins/<name>/<version>/<file>           README.md, spec.yaml, icon.png, ...
 *   plugins/<name>/aliases.json               {"aliases": {"1.0.0": "2.0.0"}}: versions served from another's files
 *   index.json                                every plugin, version (with its metadata) and alias; written by the uploader
 *   cluster-check.json                        the last `plugin-uploader check --record`: what the cluster asks for (uploader/cluster/check.ts)
 *
 * A `file:` store pointed at the reference server's document root is already in this layout.
 */
export const PLUGINS = "plugins/";
export const WASM = "plugin.wasm";
export const WASM_GZIP = "plugin.wasm.gz";
export const METADATA_TEXT = "metadata.txt";
export const METADATA_JSON = "metadata.json";
export const ALIASES = "aliases.json";

export const pluginPrefix = (name: string) => `${PLUGINS}${name}/`;
export const versionPrefix = (name: string, version: string) => `${PLUGINS}${name}/${version}/`;
export const fileKey = (name: string, version: string, file: string) => `${versionPrefix(name, version)}${file}`;
export const aliasesKey = (name: string) => `${pluginPrefix(name)}${ALIASES}`;

/** Store-wide index the uploader rewrites after each run: every plugin, version, alias and its facts. */
export const INDEX = "index.json";

/** The last coverage check the uploader recorded: what the cluster's WasmPlugins and Console ask for, and what would fail. */
export const CLUSTER_CHECK = "cluster-check.json";
