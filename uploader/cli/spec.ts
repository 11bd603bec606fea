/**
 * What plugin-uploader takes, written once: every option with its help, every command with the
 * options it accepts. program.ts makes the parser and the help of each command from these tables,
 * so a command's help lists exactly what it accepts and anything else is refused by name.
 */

interface OptionSpec {
  /** As commander reads it: `--name`, `--name <value>`, optionally with a short flag first. */
  readonly flags: string;
  /** `list`: repeatable, collected in order. */
  readonly kind: "boolean" | "string" | "list";
  readonly help: string;
}

export const OPTIONS = {
  config: { flags: "--config <file>", kind: "string", help: "plugins.properties (the reference format) or a .json or .yaml config (default: the official plugins)" },
  to: { flags: "--to <store>", kind: "string", help: "the store: file:<dir>, a directory, or s3://<bucket>[/<prefix>] (default: $STORE)" },
  "wait-for-store": {
    flags: "--wait-for-store <seconds>",
    kind: "string",
    help: "wait this long for the store to answer (a MinIO starting, its bucket or users not made yet) before the command begins (default 0: fail at once)",
  },
  "s3-endpoint": { flags: "--s3-endpoint <url>", kind: "string", help: "S3 endpoint (default: $S3_ENDPOINT; unset: AWS)" },
  "s3-region": { flags: "--s3-region <region>", kind: "string", help: "S3 region (default: $S3_REGION, else us-east-1)" },
  "s3-force-path-style": { flags: "--s3-force-path-style <true|false>", kind: "string", help: "path-style bucket addressing, as MinIO and radosgw need (default: $S3_FORCE_PATH_STYLE)" },
  "s3-access-key-id": { flags: "--s3-access-key-id <id>", kind: "string", help: "S3 access key (default: $AWS_ACCESS_KEY_ID)" },
  "s3-secret-access-key": { flags: "--s3-secret-access-key <secret>", kind: "string", help: "S3 secret key (default: $AWS_SECRET_ACCESS_KEY)" },
  mirror: { flags: "--mirror <registry>=<mirror>[/<prefix>]", kind: "list", help: "pull <registry>'s images from a mirror (repeatable)" },
  "plain-http": { flags: "--plain-http <host:port>", kind: "list", help: "reach this registry over HTTP, not HTTPS (repeatable)" },
  credentials: {
    flags: "--credentials <host>=<user>[:<password>]",
    kind: "list",
    help:
      "registry credentials (repeatable); without a password, with the one --password-stdin reads. Also REGISTRY_USERNAME and " +
      "REGISTRY_PASSWORD for the hosts in REGISTRY_HOSTS (comma-separated; unset: no host), and the Docker config.json ($DOCKER_CONFIG) with its credential helpers",
  },
  "password-stdin": { flags: "--password-stdin", kind: "boolean", help: "read the password of --credentials <host>=<user> from standard input (kept off the command line)" },
  "registry-timeout": { flags: "--registry-timeout <seconds>", kind: "string", help: "limit of one registry request, body included (default 60)" },
  concurrency: { flags: "--concurrency <n>", kind: "string", help: "plugins in flight at once (default 4)" },
  force: { flags: "--force", kind: "boolean", help: "publish again even when the sha256 matches" },
  replace: {
    flags: "--replace",
    kind: "boolean",
    help: "publish over a version whose source now has other bytes (otherwise a conflict, exit 1: a published version never changes silently)",
  },
  prune: { flags: "--prune", kind: "boolean", help: "remove plugins, versions and aliases the config does not list" },
  "dry-run": { flags: "--dry-run", kind: "boolean", help: "pull and verify, write nothing" },
  "create-bucket": { flags: "--create-bucket", kind: "boolean", help: "create the S3 bucket if it does not exist" },
  "purge-cloudflare": {
    flags: "--purge-cloudflare",
    kind: "boolean",
    help:
      "purge what the run changed (replaced versions, moved aliases, pruned versions) from Cloudflare's cache by Cache-Tag: " +
      "CLOUDFLARE_ZONE_ID and CLOUDFLARE_API_TOKEN (Zone > Cache Purge) from the environment",
  },
  "wait-for-lease": {
    flags: "--wait-for-lease <seconds>",
    kind: "string",
    help: "wait this long for another run writing the same store to finish (default 0: exit 3 at once); one run writes a store at a time",
  },
  json: { flags: "--json", kind: "boolean", help: "print the report as JSON on stdout" },
  verbose: { flags: "-v, --verbose", kind: "boolean", help: "every registry and store exchange on stderr (method, URL, status, time)" },
  "release-snapshot": {
    flags: "--release-snapshot <file|url>",
    kind: "list",
    help:
      "a Higress release's plugin snapshot (plugins/release/snapshots/<version>.json): every plugin pulled by its manifest digest, " +
      "published under the snapshot's version beside the older ones, and the release recorded in the store (repeatable)",
  },
  lock: { flags: "--lock <file>", kind: "string", help: "write what the run published (source, manifest digest, module sha256) to <file>" },
  locked: { flags: "--locked", kind: "boolean", help: "hold the run to --lock <file>: any drift (other digest or bytes, a version added or dropped) fails by name" },
  "from-cluster": {
    flags: "--from-cluster",
    kind: "boolean",
    help: "read the WasmPlugin resources of the cluster (in a pod: its service account; else the kubeconfig: --kubeconfig, KUBECONFIG or ~/.kube/config)",
  },
  kubeconfig: { flags: "--kubeconfig <file>", kind: "string", help: "the kubeconfig to read" },
  context: { flags: "--context <name>", kind: "string", help: "the kubeconfig context (default: its current one)" },
  namespace: { flags: "--namespace <ns>", kind: "string", help: "one namespace only (default: every namespace)" },
  controller: {
    flags: "--controller <ns>/<name>|none",
    kind: "string",
    help: "the Higress controller Deployment whose MCP_SERVER_WASM_IMAGE_URL is a plugin URL too (default higress-system/higress-controller)",
  },
  "cluster-timeout": { flags: "--cluster-timeout <seconds>", kind: "string", help: "limit of one Kubernetes API request (default 30)" },
  "server-url": {
    flags: "--server-url <url>",
    kind: "list",
    help: "a base URL gateways reach this store's server at (repeatable; default http://higress-plugin-server.higress-system.svc); other hosts are not ours",
  },
  "console-pattern": {
    flags: "--console-pattern <pattern>",
    kind: "string",
    help: "the Console's HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: every version any Console offers is checked too, enabled or not",
  },
  record: { flags: "--record", kind: "boolean", help: "keep the report in the store (cluster-check.json): the server shows it" },
  fix: { flags: "--fix", kind: "boolean", help: "print the kubectl command that switches each oci:// resource to our URL" },
  strict: { flags: "--strict", kind: "boolean", help: "warnings (oci://, other hosts) fail the check too" },
  all: { flags: "--all", kind: "boolean", help: "list the references that are fine as well" },
  "exit-zero": { flags: "--exit-zero", kind: "boolean", help: "exit 0 whenever the check ran, problems or not (a scheduled --record, whose report the server's metrics alert on)" },
  watch: {
    flags: "--watch",
    kind: "boolean",
    help:
      "keep checking: on every WasmPlugin change (a watch from the list's resourceVersion, listed again after 410 Gone) and every --interval seconds " +
      "(default 300; the store changes too), until SIGTERM",
  },
  interval: { flags: "--interval <seconds>", kind: "string", help: "with --watch: how often to check again without a change" },
  "plugin-name": { flags: "--plugin-name <name>", kind: "string", help: "the name of a single .wasm file's plugin" },
  "plugin-version": { flags: "--plugin-version <version>", kind: "string", help: "the version of a single .wasm file's plugin" },
  "max-unpacked-mb": {
    flags: "--max-unpacked-mb <n>",
    kind: "string",
    help: "what a bundle may unpack to, all entries together (default 4096); it is spooled to $TMPDIR, verified, then published a version at a time",
  },
  dir: { flags: "--dir <dir>", kind: "string", help: "export the plugins of a source tree (as import-dir reads it) instead of a config's" },
  out: { flags: "--out <file|dir>", kind: "string", help: "where export writes: the bundle (.tar.gz), or with --layout file a directory" },
  layout: {
    flags: "--layout <bundle|file>",
    kind: "string",
    help: "an offline bundle (default), or the store as <dir>/<name>/<version>/plugin.wasm for the gateway's own /opt/plugins mount (Higress's global.volumeWasmPlugins)",
  },
  "mount-path": { flags: "--mount-path <path>", kind: "string", help: "with --layout file: where the gateway mounts the tree (default /opt/plugins)" },
  "print-patch": {
    flags: "--print-patch",
    kind: "boolean",
    help: "with --layout file and --from-cluster: the kubectl commands that switch each resource served by this store to its file:// URL",
  },
  "keep-referenced": { flags: "--keep-referenced", kind: "boolean", help: "keep what a resource, the Console or a recorded release reaches (required)" },
  yes: { flags: "--yes", kind: "boolean", help: "remove for real (without it, only say what would go)" },
  wait: { flags: "--wait <seconds>", kind: "string", help: "keep trying this long while the endpoint does not answer yet (default 0)" },
} as const satisfies Record<string, OptionSpec>;

export type OptionName = keyof typeof OPTIONS;
type ValueOf<K extends OptionName> = (typeof OPTIONS)[K]["kind"] extends "boolean" ? boolean : (typeof OPTIONS)[K]["kind"] extends "list" ? string[] : string;
/** The options given, by their long name. */
export type Values = { readonly [K in OptionName]?: ValueOf<K> };

const STORE: OptionName[] = ["to", "wait-for-store", "s3-endpoint", "s3-region", "s3-force-path-style", "s3-access-key-id", "s3-secret-access-key", "verbose"];
const REGISTRY: OptionName[] = ["config", "mirror", "plain-http", "credentials", "password-stdin", "registry-timeout"];
const PIPELINE: OptionName[] = ["concurrency", "force", "replace", "prune", "dry-run", "create-bucket", "purge-cloudflare", "wait-for-lease", "json"];
export const CLUSTER: OptionName[] = ["from-cluster", "kubeconfig", "context", "namespace", "controller", "cluster-timeout"];

interface CommandSpec {
  /** One line in the list of commands. */
  readonly summary: string;
  /** The synopsis after `plugin-uploader <command>`. */
  readonly usage: string;
  /** Positional arguments, as commander names them (`<name>` required). */
  readonly arguments?: readonly string[];
  readonly options: readonly OptionName[];
}

export const COMMANDS = {
  sync: {
    summary: "mirror registry plugins into a store; with --from-cluster, what the cluster's WasmPlugins ask for and the store lacks",
    usage: "[--config <file>] [--to <store>] [options] | sync --from-cluster [--server-url <url>]... [--config <file>]",
    options: [...STORE, ...REGISTRY, ...PIPELINE, ...CLUSTER, "server-url", "console-pattern", "record", "release-snapshot", "lock", "locked"],
  },
  "import-dir": {
    summary: "publish a source tree's plugins, or one .wasm file with --plugin-name and --plugin-version",
    usage: "<dir|file.wasm> [--to <store>] [--plugin-name N --plugin-version V]",
    arguments: ["<dir|file.wasm>"],
    options: [...STORE, ...PIPELINE, "plugin-name", "plugin-version"],
  },
  import: { summary: "publish an offline bundle made by export", usage: "<bundle.tar.gz> [--to <store>]", arguments: ["<bundle.tar.gz>"], options: [...STORE, ...PIPELINE, "max-unpacked-mb"] },
  export: {
    summary: "an offline bundle of a config's plugins, or a store as the gateway's own /opt/plugins tree",
    usage: "[--config <file> | --dir <dir>] --out <bundle.tar.gz> | export --layout file [--to <store>] --out <dir> [--print-patch --from-cluster]",
    options: [...REGISTRY, ...STORE, ...CLUSTER, "dir", "out", "concurrency", "json", "layout", "print-patch", "mount-path", "server-url"],
  },
  "create-bucket": { summary: "create the bucket (MinIO and radosgw start empty)", usage: "[--to s3://<bucket>] [--wait <seconds>]", options: [...STORE, "wait"] },
  verify: { summary: "check every version: module sha256, gzip variant, metadata, aliases, index", usage: "[--to <store>] [--json]", options: [...STORE, "json"] },
  list: { summary: "plugins, versions, aliases, sizes, sources", usage: "[--to <store>] [--json]", options: [...STORE, "json"] },
  index: { summary: "rebuild index.json after the store was edited by hand", usage: "[--to <store>]", options: [...STORE, "wait-for-lease"] },
  prune: {
    summary: "remove the versions no resource, Console version or recorded release reaches (a dry run unless --yes)",
    usage: "--keep-referenced --from-cluster --console-pattern <pattern> [--server-url <url>]... [--to <store>] [--yes]",
    options: [...STORE, ...CLUSTER, "server-url", "console-pattern", "keep-referenced", "yes", "json", "wait-for-lease"],
  },
  check: {
    summary: "what the cluster's WasmPlugins (and the Console) will ask for and what would fail; whether the store still covers the Higress releases it mirrored",
    usage: "[--from-cluster] [--server-url <url>]... [--to <store>]",
    options: [...STORE, ...CLUSTER, "server-url", "console-pattern", "record", "fix", "strict", "all", "exit-zero", "watch", "interval", "json"],
  },
} as const satisfies Record<string, CommandSpec>;

export type CommandName = keyof typeof COMMANDS;

export const EPILOG = `
Stores: file:<dir>, a directory, or s3://<bucket>[/<prefix>] with S3_ENDPOINT, S3_REGION, S3_FORCE_PATH_STYLE,
AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY as for the server (or the --s3-* flags); default: $STORE.

Exit codes: 0 success, 1 some plugins failed (verify: problems found), 2 usage or configuration error,
3 another run holds the store's lease.`;
