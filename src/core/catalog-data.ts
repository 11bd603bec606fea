import { listPlugins, listVersions, compareVersions } from "./catalog.ts";
import { InvalidStoreContentError } from "./aliases.ts";
import { fileKey, INDEX, METADATA_JSON, pluginPrefix, WASM } from "./layout.ts";
import { parseMetadataJson, type PluginMetadata } from "./metadata.ts";
import { isName, isVersion } from "./names.ts";
import { readText, type Store } from "../storage/store.ts";

/**
 * What the catalog shows, for the page and the JSON API. Read from the store-wide index.json
 * the uploader keeps (one read); a store without one (the reference tree, a hand-made
 * directory) is listed and its metadata.json files read one by one.
 */
export interface CatalogVersion {
  readonly version: string;
  /** The module's URL path. */
  readonly url: string;
  /** Set for an alias: the version whose files it serves. */
  readonly aliasOf?: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly md5?: string;
  readonly created?: string;
  readonly lastModified?: string;
  readonly source?: string;
  readonly manifestDigest?: string;
}

export interface CatalogPlugin {
  readonly name: string;
  readonly url: string;
  /** Newest first; aliases included, with the facts of their target. */
  readonly versions: readonly CatalogVersion[];
  readonly aliases: Readonly<Record<string, string>>;
  /** What is wrong with this plugin in the store (an invalid aliases.json), shown instead of failing the page. */
  readonly problem?: string;
}

type Versions = Record<string, PluginMetadata | null>;
const FACTS = ["size", "sha256", "md5", "created", "lastModified", "source", "manifestDigest"] as const;

function build(name: string, versions: Versions, aliases: Readonly<Record<string, string>>): CatalogPlugin {
  const entry = (version: string, metadata: PluginMetadata | null | undefined, aliasOf?: string): CatalogVersion => {
    // Only the facts we know, picked by name: extra keys in a stored metadata.json or index.json
    // (a hand-edited store, a hostile bundle of old) never override the computed url or aliasOf.
    const facts: Record<string, unknown> = {};
    for (const key of FACTS) if (metadata && metadata[key] !== undefined) facts[key] = metadata[key];
    return { version, url: `/plugins/${name}/${version}/${WASM}`, ...(aliasOf ? { aliasOf } : {}), ...facts };
  };
  const list = [
    ...Object.entries(versions).map(([v, m]) => entry(v, m)),
    ...Object.entries(aliases).map(([from, to]) => entry(from, Object.hasOwn(versions, to) ? versions[to] : undefined, to)),
  ].sort((a, b) => compareVersions(b.version, a.version));
  return { name, url: `/plugins/${name}/`, versions: list, aliases };
}

interface IndexFile {
  plugins?: Record<string, { versions?: Versions; aliases?: Record<string, string> }>;
}

async function readIndex(store: Store): Promise<IndexFile | undefined> {
  const object = await store.get(INDEX);
  if (!object) return undefined;
  try {
    const parsed = JSON.parse(await readText(object)) as IndexFile;
    return typeof parsed.plugins === "object" && parsed.plugins !== null ? parsed : undefined;
  } catch {
    return undefined; // a damaged index: fall back to reading the store itself
  }
}

function fromIndex(name: string, entry: NonNullable<IndexFile["plugins"]>[string]): CatalogPlugin {
  const versions: Versions = {};
  for (const [v, m] of Object.entries(entry.versions ?? {})) {
    if (isVersion(v)) versions[v] = m && parseMetadataJson(JSON.stringify(m)) ? m : null;
  }
  const aliases = Object.fromEntries(Object.entries(entry.aliases ?? {}).filter(([f, t]) => isVersion(f) && isVersion(t)));
  return build(name, versions, aliases);
}

async function fromStore(store: Store, name: string): Promise<CatalogPlugin | undefined> {
  let found;
  let problem: string | undefined;
  try {
    found = await listVersions(store, name);
  } catch (error) {
    if (!(error instanceof InvalidStoreContentError)) throw error;
    problem = error.message;
    found = { versions: (await store.list(pluginPrefix(name))).prefixes.filter(isVersion), aliases: {} };
  }
  if (!found) return undefined;
  const versions: Versions = {};
  await Promise.all(
    found.versions.map(async (v) => {
      const object = await store.get(fileKey(name, v, METADATA_JSON));
      versions[v] = object ? (parseMetadataJson(await readText(object)) ?? null) : null;
    }),
  );
  const plugin = build(name, versions, found.aliases);
  return problem ? { ...plugin, problem } : plugin;
}

export async function loadCatalog(store: Store): Promise<CatalogPlugin[]> {
  const index = await readIndex(store);
  if (index) {
    return Object.entries(index.plugins!)
      .filter(([name]) => isName(name))
      .map(([name, entry]) => fromIndex(name, entry))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  const plugins = await Promise.all((await listPlugins(store)).map((name) => fromStore(store, name)));
  return plugins.filter((p): p is CatalogPlugin => p !== undefined);
}

export async function loadPlugin(store: Store, name: string): Promise<CatalogPlugin | undefined> {
  const index = await readIndex(store);
  const entry = index?.plugins && Object.hasOwn(index.plugins, name) ? index.plugins[name] : undefined;
  return entry ? fromIndex(name, entry) : fromStore(store, name);
}
