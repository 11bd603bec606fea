#!/usr/bin/env node
/**
 * plugin-uploader: fills a plugin store from OCI registries, local files and offline bundles.
 * Progress goes to stderr, results to stdout (`--json` for machines).
 * Exit codes: 0 all done, 1 some plugins failed (each named), 2 usage or configuration error,
 * 3 another run holds the store's lease.
 */
import { parseArgs } from "node:util";
import { ConfigError, EnvReader } from "../src/config/env.ts";
import { LocationError, parseStoreLocation } from "../src/storage/location.ts";
import { openStore } from "../src/storage/open.ts";
import { PolicyStore } from "../src/storage/policy.ts";
import { S3Store } from "../src/storage/s3.ts";
import type { WritableStore } from "../src/storage/store.ts";
import { createBucket, waitForStore } from "./bucket.ts";
import { changedTags, cloudflareZone, purgeTags } from "./purge.ts";
import { versionTag } from "../src/core/cache-tags.ts";
import { DEFAULT_MAX_UNPACKED_BYTES, exportBundle, readBundle } from "./bundle.ts";
import { DEFAULT_CONFIG_NAME, loadPlan, type SyncPlan } from "./config.ts";
import { applyMirrors } from "./oci/reference.ts";
import { UploaderError, UsageError } from "./errors.ts";
import { localJobs } from "./local.ts";
import { dockerConfigCredentials, type Credentials } from "./oci/auth.ts";
import { runPipeline, type PipelineOptions, type ProgressEvent, type Report } from "./pipeline.ts";
import { writeIndex } from "./store-index.ts";
import { checkCluster, formatReport, type CheckOptions } from "./cluster/command.ts";
import { clusterPlan } from "./cluster/fill.ts";
import { prunePlan, removeVersions } from "./cluster/prune.ts";
import { watchCluster } from "./cluster/watch.ts";
import type { ClusterOptions } from "./cluster/kube.ts";
import { exportFileLayout } from "./file-layout.ts";
import { withLease } from "./lease.ts";
import { closest } from "./suggest.ts";
import { lockedJobs, readLock, writeLock } from "./lock.ts";
import { loadSnapshot, recordedReleases, recordReleases, releasePlan } from "./release.ts";
import { listStore, verifyStore } from "./verify.ts";
import { registryJobs, type RegistryOptions } from "./sync.ts";

/** Set by the build from package.json (one version for the package, the image and the chart). */
declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";


const USAGE = `Usage:
  plugin-uploader sync [--config <file>] [--to <store>] [options]   mirror registry plugins into a store
  plugin-uploader sync --from-cluster [--server-url <url>]... [--config <file>]
                                                 publish what the cluster's WasmPlugins ask for and the store lacks
  plugin-uploader import-dir <dir|file.wasm> [--to <store>] [--plugin-name N --plugin-version V]
  plugin-uploader export [--config <file> | --dir <dir>] --out <bundle.tar.gz>
  plugin-uploader import <bundle.tar.gz> [--to <store>]
  plugin-uploader create-bucket [--to s3://<bucket>] [--wait <seconds>]   for MinIO and radosgw, which start empty
  plugin-uploader verify [--to <store>]          check every version: module sha256, gzip variant, metadata, aliases, index
  plugin-uploader list [--to <store>] [--json]   plugins, versions, aliases, sizes, sources
  plugin-uploader index [--to <store>]           rebuild index.json after the store was edited by hand
  plugin-uploader prune --keep-referenced --from-cluster --console-pattern <pattern> [--yes]
                                                 remove the versions no resource, Console version or recorded release
                                                 reaches (a dry run unless --yes)
  plugin-uploader check [--from-cluster] [--server-url <url>]... [--to <store>]
                                                 what the cluster's WasmPlugins (and the Console) will ask for, and what would
                                                 fail; and whether the store still covers the Higress releases it mirrored

  <store> is file:<dir>, a directory, or s3://<bucket>[/<prefix>] (S3_ENDPOINT, S3_REGION,
  S3_FORCE_PATH_STYLE, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY as for the server, or the flags
  --s3-endpoint, --s3-region, --s3-force-path-style, --s3-access-key-id, --s3-secret-access-key); default: $STORE.
  --config takes plugins.properties (the reference format) or a .json or .yaml config; default: the official plugins.

Options:
  --mirror <registry>=<mirror>[/<prefix>]  pull <registry>'s images from a mirror (repeatable)
  --plain-http <host:port>                 reach this registry over HTTP, not HTTPS (repeatable)
  --credentials <host>=<user>[:<password>] registry credentials (repeatable); without a password, with
  --password-stdin                         the password read from standard input (kept off the command line); also REGISTRY_USERNAME and
                                           REGISTRY_PASSWORD for the hosts in REGISTRY_HOSTS (comma-separated; unset:
                                           no host), and the Docker config.json ($DOCKER_CONFIG) with its credential helpers
  --registry-timeout <seconds>             limit of one registry request, body included (default 60)
  --concurrency <n>                        plugins in flight at once (default 4)
  --max-unpacked-mb <n>                    what a bundle may unpack to, all entries together (default 4096); it is
                                           spooled to $TMPDIR, verified, then published a version at a time
  --force                                  publish again even when the sha256 matches
  --replace                                publish over a version whose source now has other bytes (otherwise a
                                           conflict, exit 1: a published version never changes silently)
  --prune                                  remove plugins, versions and aliases the config does not list
  --dry-run                                pull and verify, write nothing
  --create-bucket                          create the S3 bucket if it does not exist
  --purge-cloudflare                       purge what the run changed (replaced versions, moved aliases, pruned
                                           versions) from Cloudflare's cache by Cache-Tag: CLOUDFLARE_ZONE_ID and
                                           CLOUDFLARE_API_TOKEN (Zone > Cache Purge) from the environment
  --wait-for-lease <seconds>               wait this long for another run writing the same store to finish
                                           (default 0: exit 3 at once); one run writes a store at a time
  --wait-for-store <seconds>               wait this long for the store to answer (a MinIO starting, its bucket or
                                           users not made yet) before the command begins (default 0: fail at once)
  --release-snapshot <file|url>            a Higress release's plugin snapshot (plugins/release/snapshots/<version>.json):
                                           every plugin pulled by its manifest digest, published under the snapshot's
                                           version beside the older ones, and the release recorded in the store (repeatable)
  --lock <file>                            write what the run published (source, manifest digest, module sha256) to <file>
  --locked                                 hold the run to --lock <file>: any drift (other digest or bytes, a version added
                                           or dropped) fails by name
  --from-cluster                           read the WasmPlugin resources of the cluster (in a pod: its service account;
                                           else the kubeconfig: --kubeconfig, KUBECONFIG or ~/.kube/config)
  --kubeconfig <file>                      the kubeconfig to read
  --context <name>                         the kubeconfig context (default: its current one)
  --namespace <ns>                         one namespace only (default: every namespace)
  --controller <ns>/<name>|none            the Higress controller Deployment whose MCP_SERVER_WASM_IMAGE_URL is a plugin URL
                                           too (default higress-system/higress-controller)
  --cluster-timeout <seconds>              limit of one Kubernetes API request (default 30)
  --server-url <url>                       a base URL gateways reach this store's server at (repeatable; default
                                           http://higress-plugin-server.higress-system.svc); other hosts are not ours
  --console-pattern <pattern>              the Console's HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: every version
                                           any Console offers is checked too, enabled or not
  --record                                 keep the report in the store (cluster-check.json): the server shows it
  --fix                                    print the kubectl command that switches each oci:// resource to our URL
  --strict                                 warnings (oci://, other hosts) fail the check too
  --all                                    list the references that are fine as well
  --watch                                  keep checking: on every WasmPlugin change (a watch from the list's
                                           resourceVersion, listed again after 410 Gone) and every --interval seconds
                                           (default 300; the store changes too), until SIGTERM
  --interval <seconds>                     with --watch: how often to check again without a change
  --layout bundle|file                     export: an offline bundle (default), or the store as <dir>/<name>/<version>/plugin.wasm
                                           for the gateway's own /opt/plugins mount (Higress's global.volumeWasmPlugins)
  --mount-path <path>                      export --layout file: where the gateway mounts the tree (default /opt/plugins)
  --print-patch                            export --layout file: with --from-cluster, the kubectl commands that switch each
                                           resource served by this store to its file:// URL
  --keep-referenced                        prune: keep what a resource, the Console or a recorded release reaches
  --yes                                    prune: remove for real (without it, only say what would go)
  --exit-zero                              exit 0 whenever the check ran, problems or not (a scheduled --record, whose
                                           report the server's metrics alert on)
  --json                                   print the report as JSON on stdout
  --verbose                                every registry and store exchange on stderr (method, URL, status, time)

Exit codes: 0 success, 1 some plugins failed (verify: problems found), 2 usage or configuration error,
3 another run holds the store's lease.`;

const OPTIONS = {
  config: { type: "string" },
  to: { type: "string" },
  out: { type: "string" },
  dir: { type: "string" },
  "plugin-name": { type: "string" },
  "plugin-version": { type: "string" },
  version: { type: "boolean", short: "V" },
  mirror: { type: "string", multiple: true },
  "plain-http": { type: "string", multiple: true },
  credentials: { type: "string", multiple: true },
  "password-stdin": { type: "boolean" },
  concurrency: { type: "string" },
  "registry-timeout": { type: "string" },
  "max-unpacked-mb": { type: "string" },
  "wait-for-lease": { type: "string" },
  "wait-for-store": { type: "string" },
  "from-cluster": { type: "boolean" },
  "release-snapshot": { type: "string", multiple: true },
  lock: { type: "string" },
  locked: { type: "boolean" },
  kubeconfig: { type: "string" },
  context: { type: "string" },
  namespace: { type: "string" },
  controller: { type: "string" },
  "cluster-timeout": { type: "string" },
  "server-url": { type: "string", multiple: true },
  "console-pattern": { type: "string" },
  record: { type: "boolean" },
  fix: { type: "boolean" },
  strict: { type: "boolean" },
  all: { type: "boolean" },
  "exit-zero": { type: "boolean" },
  layout: { type: "string" },
  "print-patch": { type: "boolean" },
  "mount-path": { type: "string" },
  "keep-referenced": { type: "boolean" },
  yes: { type: "boolean" },
  watch: { type: "boolean" },
  interval: { type: "string" },
  force: { type: "boolean" },
  replace: { type: "boolean" },
  prune: { type: "boolean" },
  "dry-run": { type: "boolean" },
  "create-bucket": { type: "boolean" },
  "purge-cloudflare": { type: "boolean" },
  json: { type: "boolean" },
  verbose: { type: "boolean", short: "v" },
  wait: { type: "string" },
  "s3-endpoint": { type: "string" },
  "s3-region": { type: "string" },
  "s3-force-path-style": { type: "string" },
  "s3-access-key-id": { type: "string" },
  "s3-secret-access-key": { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS; allowPositionals: true }>>["values"];
type Option = keyof typeof OPTIONS;

const STORE_OPTIONS: Option[] = ["verbose", "to", "wait-for-store", "s3-endpoint", "s3-region", "s3-force-path-style", "s3-access-key-id", "s3-secret-access-key"];
const REGISTRY_OPTIONS: Option[] = ["config", "mirror", "plain-http", "credentials", "password-stdin", "registry-timeout"];
const CLUSTER_OPTIONS: Option[] = ["from-cluster", "kubeconfig", "context", "namespace", "controller", "cluster-timeout"];
const PIPELINE_OPTIONS: Option[] = ["concurrency", "force", "replace", "prune", "dry-run", "create-bucket", "json", "wait-for-lease", "purge-cloudflare"];
/** What each command takes; anything else is refused by name instead of being silently ignored. */
const COMMANDS: Record<string, { readonly usage: string; readonly options: readonly Option[] }> = {
  sync: {
    usage: "sync [--config <file>] [--to <store>] | sync --from-cluster [--server-url <url>]... [--config <file>]",
    options: [...STORE_OPTIONS, ...REGISTRY_OPTIONS, ...PIPELINE_OPTIONS, ...CLUSTER_OPTIONS, "server-url", "console-pattern", "record", "release-snapshot", "lock", "locked"],
  },
  "import-dir": { usage: "import-dir <dir|file.wasm> [--to <store>] [--plugin-name N --plugin-version V]", options: [...STORE_OPTIONS, ...PIPELINE_OPTIONS, "plugin-name", "plugin-version"] },
  import: { usage: "import <bundle.tar.gz> [--to <store>]", options: [...STORE_OPTIONS, ...PIPELINE_OPTIONS, "max-unpacked-mb"] },
  export: {
    usage: "export [--config <file> | --dir <dir>] --out <bundle.tar.gz> | export --layout file [--to <store>] --out <dir> [--print-patch --from-cluster]",
    options: [...REGISTRY_OPTIONS, ...STORE_OPTIONS, ...CLUSTER_OPTIONS, "dir", "out", "concurrency", "json", "layout", "print-patch", "mount-path", "server-url"],
  },
  "create-bucket": { usage: "create-bucket [--to s3://<bucket>] [--wait <seconds>]", options: [...STORE_OPTIONS, "wait"] },
  verify: { usage: "verify [--to <store>] [--json]", options: [...STORE_OPTIONS, "json"] },
  list: { usage: "list [--to <store>] [--json]", options: [...STORE_OPTIONS, "json"] },
  index: { usage: "index [--to <store>]", options: [...STORE_OPTIONS, "wait-for-lease"] },
  prune: {
    usage: "prune --keep-referenced --from-cluster --console-pattern <pattern> [--server-url <url>]... [--to <store>] [--yes]",
    options: [...STORE_OPTIONS, ...CLUSTER_OPTIONS, "server-url", "console-pattern", "keep-referenced", "yes", "json", "wait-for-lease"],
  },
  check: {
    usage: "check --from-cluster [--server-url <url>]... [--to <store>]",
    options: [...STORE_OPTIONS, ...CLUSTER_OPTIONS, "server-url", "console-pattern", "record", "fix", "strict", "all", "exit-zero", "watch", "interval", "json"],
  },
};

/** The lines of the option list that document `options`. */
function commandHelp(name: string): string {
  const command = COMMANDS[name]!;
  const lines: string[] = [];
  let keep = false;
  for (const line of USAGE.slice(USAGE.indexOf("Options:")).split("\n").slice(1)) {
    const option = /^ {2}--([a-z0-9-]+)/.exec(line)?.[1];
    if (option) keep = command.options.includes(option as Option);
    else if (!line.startsWith("    ")) keep = false; // a continuation line belongs to the option above
    if (keep) lines.push(line);
  }
  return `Usage: plugin-uploader ${command.usage}\n\nOptions:\n${lines.join("\n")}\n  --help                                   this text\n`;
}

async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    const unknown = /^Unknown option '(--?[^']+)'/.exec((error as Error).message)?.[1];
    if (!unknown) return usage((error as Error).message, false);
    const near = closest(unknown.replace(/^-+/, ""), Object.keys(OPTIONS));
    const command = argv.find((a) => COMMANDS[a]);
    return usage(`unknown option ${unknown}${near ? ` (did you mean --${near}?)` : ""}; plugin-uploader ${command ?? "<command>"} --help lists the options`, false);
  }
  const { values, positionals } = parsed;
  const [command, ...rest] = positionals;
  // `help <command>` as well as `<command> --help`.
  if (command === "help") {
    const near = rest[0] && !COMMANDS[rest[0]] ? (closest(rest[0], Object.keys(COMMANDS)) ?? "") : undefined;
    if (near !== undefined) return usage(`unknown command "${rest[0]}"${near ? ` (did you mean ${near}?)` : ""}; plugin-uploader help lists the commands`, false);
    process.stdout.write(rest[0] ? commandHelp(rest[0]) : `${USAGE}\n`);
    return 0;
  }
  if (command && !COMMANDS[command]) {
    const near = closest(command, Object.keys(COMMANDS));
    return usage(`unknown command "${command}"${near ? ` (did you mean ${near}?)` : ""}; plugin-uploader help lists the commands`, false);
  }
  if (values.version) {
    process.stdout.write(`plugin-uploader ${VERSION}\n`);
    return 0;
  }
  if (command && values.help && COMMANDS[command]) {
    process.stdout.write(commandHelp(command));
    return 0;
  }
  if (values.help || !command) {
    process.stdout.write(`${USAGE}\n`);
    return values.help ? 0 : 2;
  }
  const allowed = COMMANDS[command]?.options;
  const stray = allowed ? Object.keys(values).filter((o) => !allowed.includes(o as Option)) : [];
  if (stray.length > 0) return usage(`${command} does not take ${stray.map((o) => `--${o}`).join(", ")} (plugin-uploader ${command} --help)`);
  try {
    const concurrency = values.concurrency === undefined ? 4 : Number(values.concurrency);
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 64) throw new UsageError("--concurrency takes a whole number from 1 to 64");
    const progress = progressPrinter(values.json ?? false);
    const common = { concurrency, force: values.force ?? false, replace: values.replace ?? false, dryRun: values["dry-run"] ?? false, prune: values.prune ?? false, onProgress: progress.event };
    const leaseWait = seconds(values, "wait-for-lease", 86_400);
    // One writer per store at a time (see lease.ts); a dry run writes nothing and needs none.
    const leased = <T>(store: WritableStore, name: string, work: () => Promise<T>): Promise<T> =>
      common.dryRun
        ? work()
        : withLease(store, { command: name, waitMs: leaseWait * 1000, onWait: (h) => process.stderr.write(`waiting for the store's lease: held by ${h.command} on ${h.host} (pid ${h.pid}) until ${h.expires}\n`) }, work);
    // Checked before anything is written: a run that cannot purge would leave stale edges behind.
    const zone = values["purge-cloudflare"] ? cloudflareZone(env) : undefined;
    let report: Report;
    switch (command) {
      case "sync": {
        expectPositionals(rest, 0, "sync");
        if (values["from-cluster"]) {
          report = await syncFromCluster(values, env, common, leased);
          break;
        }
        for (const flag of ["server-url", "console-pattern", "record", ...CLUSTER_OPTIONS.slice(1)] as const) {
          if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with --from-cluster`);
        }
        const releases = await Promise.all((values["release-snapshot"] ?? []).map(loadSnapshot));
        const plan = releases.length > 0 ? withConfig(releasePlan(releases), values.config ? await loadPlan(values.config, env) : undefined) : await loadPlan(values.config, env);
        if (values.locked && !values.lock) throw new UsageError("--locked needs --lock <file>: the lock to hold the run to");
        const store = await target(values, env);
        let jobs = registryJobs(plan, await registryOptions(values, env, plan));
        let drift: { name: string; version: string; source: string; error: string }[] = [];
        if (values.locked) ({ jobs, drift } = lockedJobs(jobs, await readLock(values.lock!), values.lock!));
        for (const d of drift) progress.event({ name: d.name, version: d.version, phase: "failed", detail: d.error });
        const ran = await leased(store, "sync", () => runPipeline(store, jobs, plan.aliases, common));
        report = { ...ran, versions: [...ran.versions, ...drift.map((d) => ({ ...d, status: "failed" as const }))], failed: ran.failed + drift.length };
        if (!common.dryRun) {
          await recordReleases(store, releases, report, (line) => process.stderr.write(`${line}\n`));
          if (values.lock && !values.locked) process.stderr.write(`${"lock".padEnd(13)} ${values.lock}  ${await writeLock(values.lock, report)} versions\n`);
        }
        break;
      }
      case "import-dir": {
        expectPositionals(rest, 1, "import-dir <dir|file.wasm>");
        const name = values["plugin-name"];
        const version = values["plugin-version"];
        const jobs = await localJobs(rest[0]!, { ...(name ? { name } : {}), ...(version ? { version } : {}) });
        const store = await target(values, env);
        report = await leased(store, "import-dir", () => runPipeline(store, jobs, new Map(), common));
        break;
      }
      case "import": {
        expectPositionals(rest, 1, "import <bundle.tar.gz>");
        const maxMb = values["max-unpacked-mb"] === undefined ? DEFAULT_MAX_UNPACKED_BYTES / 1048576 : Number(values["max-unpacked-mb"]);
        if (!Number.isInteger(maxMb) || maxMb < 1 || maxMb > 1_048_576) throw new UsageError("--max-unpacked-mb takes a whole number of MiB from 1 to 1048576");
        const bundle = await readBundle(rest[0]!, { maxUnpackedBytes: maxMb * 1048576 });
        try {
          const store = await target(values, env);
          report = await leased(store, "import", () => runPipeline(store, bundle.jobs, bundle.aliases, common));
        } finally {
          await bundle.close();
        }
        break;
      }
      case "export": {
        expectPositionals(rest, 0, "export");
        if (values.layout !== undefined && values.layout !== "file" && values.layout !== "bundle") throw new UsageError(`--layout takes bundle or file, not "${values.layout}"`);
        if (values.layout === "file") return await exportFiles(values, env);
        for (const flag of ["print-patch", "mount-path", "to", "from-cluster"] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} goes with --layout file`);
        if (!values.out) throw new UsageError("export needs --out <bundle.tar.gz>");
        let jobs;
        let aliases = new Map<string, Record<string, string>>();
        if (values.dir) {
          jobs = await localJobs(values.dir);
        } else {
          const plan = await loadPlan(values.config, env);
          jobs = registryJobs(plan, await registryOptions(values, env, plan));
          aliases = new Map(plan.aliases);
        }
        const result = await exportBundle(jobs, aliases, values.out, { concurrency, onProgress: progress.event });
        report = { ...result, aliases: [], pruned: [] };
        break;
      }
      case "verify": {
        expectPositionals(rest, 0, "verify");
        const { versions, problems } = await verifyStore(await target(values, env, READ_ONLY));
        if (versions === 0) problems.push("the store holds no plugin version: nothing to verify (is --to the right store?)");
        if (values.json) process.stdout.write(`${JSON.stringify({ versions, problems }, null, 2)}\n`);
        else process.stdout.write(`${versions} versions checked, ${problems.length} problems\n${problems.map((p) => `PROBLEM ${p}\n`).join("")}`);
        return problems.length > 0 ? 1 : 0;
      }
      case "list": {
        expectPositionals(rest, 0, "list");
        const { entries, problems } = await listStore(await target(values, env, READ_ONLY));
        if (values.json) {
          process.stdout.write(`${JSON.stringify({ versions: entries.map((e) => ({ name: e.name, version: e.version, ...(e.aliasOf ? { aliasOf: e.aliasOf } : {}), size: e.metadata?.size, sha256: e.metadata?.sha256, source: e.metadata?.source })), problems }, null, 2)}\n`);
        } else {
          for (const e of entries) {
            const facts = e.metadata ? `${e.metadata.size} bytes  ${e.metadata.sha256.slice(0, 12)}  ${e.metadata.source ?? ""}` : "(no metadata.json)";
            process.stdout.write(`${e.name}  ${e.version}${e.aliasOf ? ` -> ${e.aliasOf}` : ""}  ${facts}\n`);
          }
          for (const p of problems) process.stdout.write(`PROBLEM ${p}\n`);
        }
        return 0;
      }
      case "index": {
        expectPositionals(rest, 0, "index");
        const store = await target(values, env, READ_ONLY);
        const index = await leased(store, "index", () => writeIndex(store));
        process.stdout.write(`index.json written: ${Object.keys(index.plugins).length} plugins\n`);
        return 0;
      }
      case "prune": {
        expectPositionals(rest, 0, "prune --keep-referenced");
        if (!values["keep-referenced"]) throw new UsageError("prune takes --keep-referenced (it removes only what nothing can reach; see plugin-uploader prune --help)");
        if (!values["from-cluster"]) throw new UsageError("prune --keep-referenced needs --from-cluster: what the resources reference is what it keeps");
        if (!values["console-pattern"]) throw new UsageError("prune --keep-referenced needs --console-pattern: the versions the Console offers but nobody enabled yet must stay");
        const store = await target(values, env, READ_ONLY);
        const report = await checkCluster({ store, ...checkInputs(values) });
        const plan = prunePlan(report, await recordedReleases(store));
        if (values.yes && plan.remove.length > 0) {
          await leased(store, "prune", async () => {
            await removeVersions(store, plan.remove);
            await writeIndex(store);
          });
        }
        const verb = values.yes ? "removed" : "would remove";
        if (values.json) process.stdout.write(`${JSON.stringify({ ...plan, removed: values.yes ?? false }, null, 2)}\n`);
        else {
          for (const r of plan.remove) process.stdout.write(`${verb} ${r.plugin} ${r.version}\n`);
          for (const k of plan.kept) process.stdout.write(`kept ${k.plugin} ${k.version}: ${k.why}\n`);
          process.stdout.write(`${plan.remove.length} versions ${verb}${values.yes ? "" : " (a dry run: --yes removes them)"}; ${plan.kept.length} unreferenced kept\n`);
        }
        return 0;
      }
      case "check": {
        expectPositionals(rest, 0, "check --from-cluster");
        if (values.watch) return await watchCheck(values, env);
        if (values.interval !== undefined) throw new UsageError("--interval goes with --watch");
        const report = await checkCluster({
          store: await target(values, env, READ_ONLY),
          fromCluster: values["from-cluster"] ?? false,
          ...checkInputs(values),
          record: values.record ?? false,
        });
        process.stdout.write(values.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report, { all: values.all ?? false, fix: values.fix ?? false }));
        if (values["exit-zero"]) return 0;
        const uncovered = report.releases.some((r) => !r.covered);
        return uncovered || report.summary.errors > 0 || (values.strict && report.summary.warnings > 0) ? 1 : 0;
      }
      case "create-bucket": {
        expectPositionals(rest, 0, "create-bucket");
        const store = await openTarget(values, env);
        if (!(store instanceof S3Store)) throw new UsageError("create-bucket needs an s3:// store");
        await createBucket(store, seconds(values, "wait", 3600), (line) => process.stderr.write(`${line}\n`));
        return 0;
      }
      default:
        return usage(`unknown command "${command}"`);
    }
    progress.done();
    const purge = zone && !common.dryRun ? changedTags(report) : [];
    let purgeError: UploaderError | undefined;
    if (zone && purge.length > 0) {
      await purgeTags(zone, purge, (line) => process.stderr.write(`${line}\n`)).catch((error: unknown) => {
        if (!(error instanceof UploaderError)) throw error;
        purgeError = error;
      });
    }
    printReport(zone ? { ...report, purged: purgeError ? [] : purge } : report, values.json ?? false);
    if (purgeError) process.stderr.write(`plugin-uploader: ${purgeError.message}\n`);
    for (const v of zone ? [] : report.versions.filter((x) => x.status === "replaced")) {
      // Published versions are served immutable for a year: a CDN in front keeps the old bytes.
      process.stderr.write(`note: edge caches may still serve the old bytes of ${v.name} ${v.version}: --purge-cloudflare purges them (Cache-Tag ${versionTag(v.name, v.version)})\n`);
    }
    return report.failed > 0 || purgeError ? 1 : 0;
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof LocationError) {
      return usage(error.message, false);
    }
    if (error instanceof UploaderError) {
      process.stderr.write(`plugin-uploader: ${error.message}\n`);
      return error.exitCode;
    }
    // Anything else is still one line for the operator; the stack only on request.
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`plugin-uploader: ${message}${env.DEBUG ? `\n${(error as Error).stack ?? ""}` : " (DEBUG=1 shows where)"}\n`);
    return 1;
  }
}

function usage(message: string, showUsage = true): number {
  process.stderr.write(`plugin-uploader: ${message}\n${showUsage ? `\n${USAGE}\n` : ""}`);
  return 2;
}

/**
 * `export --layout file --to <store> --out DIR`: the gateway's own /opt/plugins tree; with
 * --print-patch, the kubectl commands that switch the cluster's resources to file:// URLs.
 */
async function exportFiles(values: Values, env: NodeJS.ProcessEnv): Promise<number> {
  if (!values.out) throw new UsageError("export --layout file needs --out <dir>");
  const mount = (values["mount-path"] ?? "/opt/plugins").replace(/\/+$/, "");
  if (!mount.startsWith("/")) throw new UsageError(`--mount-path ${mount} must be an absolute path (where the gateway mounts the tree)`);
  if (values["print-patch"] && !values["from-cluster"]) throw new UsageError("--print-patch needs --from-cluster: the patches are for the cluster's resources");
  const store = await target(values, env, READ_ONLY);
  const written = await exportFileLayout(store, values.out, (line) => process.stderr.write(`${"written".padEnd(13)} ${line}\n`));
  process.stdout.write(`${written.length} versions written to ${values.out} (mount it at ${mount} in the gateway)\n`);
  if (values["print-patch"]) {
    const report = await checkCluster({ store, ...checkInputs(values) });
    for (const f of report.findings) {
      if (f.source.kind !== "wasmplugin" || f.status !== "ok" || !f.plugin || !f.version) continue;
      const spec = JSON.stringify({ spec: { url: `file://${mount}/${f.plugin}/${f.version}/plugin.wasm` } });
      process.stdout.write(`kubectl -n ${f.source.namespace} patch wasmplugins.${f.source.group} ${f.source.name} --type merge -p '${spec}'\n`);
    }
  }
  return 0;
}

/**
 * `sync --from-cluster`: check, resolve what is missing through the user's config and the default
 * one, publish it (never pruning: the cluster's view is not the whole plan), and with --record
 * check again and keep that report in the store.
 */
async function syncFromCluster(
  values: Values,
  env: NodeJS.ProcessEnv,
  common: PipelineOptions,
  leased: <T>(store: WritableStore, name: string, work: () => Promise<T>) => Promise<T>,
): Promise<Report> {
  if (values.prune) throw new UsageError("--prune with --from-cluster would remove every version the cluster does not use now; `check --from-cluster` lists the prune candidates");
  const store = await target(values, env);
  const checkOptions = { store, ...checkInputs(values) };
  const plans = [
    ...(values.config ? [{ plan: await loadPlan(values.config, env), name: values.config }] : []),
    { plan: await loadPlan(undefined, env), name: DEFAULT_CONFIG_NAME },
  ];
  const { plan, unresolved } = clusterPlan(await checkCluster(checkOptions), plans);
  for (const u of unresolved) process.stderr.write(`${"unresolved".padEnd(13)} ${u.plugin}${u.version ? ` ${u.version}` : ""}  ${u.why} (asked by ${u.from.join(", ")})\n`);
  const jobs = registryJobs(plan, await registryOptions(values, env, plan));
  const report = await leased(store, "sync --from-cluster", () => runPipeline(store, jobs, plan.aliases, common));
  if (values.record && !common.dryRun) await checkCluster({ ...checkOptions, record: true });
  return { ...report, unresolved, failed: report.failed + unresolved.length };
}

/** `check --from-cluster --watch`: one line per check on stdout (the whole report with --json), until SIGTERM or SIGINT. */
async function watchCheck(values: Values, env: NodeJS.ProcessEnv): Promise<number> {
  if (!values["from-cluster"]) throw new UsageError("--watch needs --from-cluster");
  const seconds = values.interval === undefined ? 300 : Number(values.interval);
  if (!Number.isInteger(seconds) || seconds < 10 || seconds > 86_400) throw new UsageError("--interval takes a whole number of seconds from 10 to 86400");
  const stop = new AbortController();
  const quit = () => stop.abort();
  process.once("SIGTERM", quit);
  process.once("SIGINT", quit);
  await watchCluster({
    store: await target(values, env, READ_ONLY),
    ...checkInputs(values),
    record: values.record ?? false,
    intervalMs: seconds * 1000,
    signal: stop.signal,
    onReport: (r) => {
      const s = r.summary;
      process.stdout.write(values.json ? `${JSON.stringify(r)}\n` : `${r.checkedAt} ${s.references} references: ${s.ok} ok, ${s.errors} errors, ${s.warnings} warnings${values.record ? " (recorded)" : ""}\n`);
    },
    onError: (error) => process.stderr.write(`plugin-uploader: ${error.message} (checking again)\n`),
  });
  return 0;
}

/** Release snapshots with a --config beside them: its versions, aliases, mirrors and credentials join the snapshots' plugins. */
function withConfig(releases: SyncPlan, config: SyncPlan | undefined): SyncPlan {
  if (!config) return releases;
  const pinned = new Set(releases.sources.map((s) => `${s.name}/${s.version}`));
  return {
    sources: [...releases.sources, ...config.sources.filter((s) => !pinned.has(`${s.name}/${s.version}`))],
    aliases: config.aliases,
    mirrors: config.mirrors,
    credentials: config.credentials,
  };
}

/** What every cluster command checks against: the cluster reader's options, --server-url and --console-pattern. */
function checkInputs(values: Values): Omit<CheckOptions, "store"> {
  return {
    ...clusterOptions(values),
    serverUrls: values["server-url"] ?? [],
    ...(values["console-pattern"] ? { consolePattern: values["console-pattern"] } : {}),
  };
}

/** --kubeconfig, --context, --namespace, --controller, as the cluster reader takes them. */
function clusterOptions(values: Values): ClusterOptions {
  const controller = values.controller;
  let parsed: ClusterOptions["controller"];
  if (controller === "none") parsed = false;
  else if (controller !== undefined) {
    const m = /^([a-z0-9-]{1,63})\/([a-z0-9.-]{1,253})$/.exec(controller);
    if (!m) throw new UsageError(`--controller takes <namespace>/<deployment> or none, got "${controller}"`);
    parsed = { namespace: m[1]!, name: m[2]! };
  }
  if (values.namespace !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    throw new UsageError(`--namespace ${values.namespace} is not a Kubernetes namespace name`);
  }
  const timeout = values["cluster-timeout"] === undefined ? 30 : Number(values["cluster-timeout"]);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 600) throw new UsageError("--cluster-timeout takes a whole number of seconds from 1 to 600");
  return {
    timeoutMs: timeout * 1000,
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(parsed !== undefined ? { controller: parsed } : {}),
  };
}

function expectPositionals(rest: string[], count: number, form: string) {
  if (rest.length !== count) throw new UsageError(`usage: plugin-uploader ${form}`);
}

/** The S3 flags, as the variables they stand for; a flag wins over the environment. */
const S3_FLAGS = {
  "s3-endpoint": "S3_ENDPOINT",
  "s3-region": "S3_REGION",
  "s3-force-path-style": "S3_FORCE_PATH_STYLE",
  "s3-access-key-id": "AWS_ACCESS_KEY_ID",
  "s3-secret-access-key": "AWS_SECRET_ACCESS_KEY",
} as const;

/**
 * The store to publish to, behind the server's policy layer: a write or read that fails with a
 * 5xx, a reset or a timeout is retried with backoff (a whole-object PUT is idempotent); one that
 * still fails fails its version, which the pipeline then rolls back.
 */
/** For commands that only read the store (verify, list, check) or rebuild what is in it (index): a mistyped --to is an error, never a new empty store. */
const READ_ONLY = { create: false } as const;

async function target(values: Values, env: NodeJS.ProcessEnv, options: { create: boolean } = { create: true }): Promise<WritableStore> {
  const store = await openTarget(values, env, options);
  return new PolicyStore(store, { timeoutMs: 10 * 60_000, stallMs: 120_000, retries: 4, backoffMs: 250, failureThreshold: 50, ...verbose(values) });
}

async function openTarget(values: Values, env: NodeJS.ProcessEnv, options: { create: boolean } = { create: true }): Promise<WritableStore> {
  const overrides = Object.fromEntries(
    Object.entries(S3_FLAGS).flatMap(([flag, variable]) => {
      const value = values[flag as keyof typeof S3_FLAGS];
      return value === undefined ? [] : [[variable, value]];
    }),
  );
  const read = new EnvReader({ ...env, ...overrides });
  const text = values.to ?? read.get("STORE");
  if (!text) throw new UsageError("no target store: pass --to <store> or set STORE");
  let location;
  try {
    location = parseStoreLocation(text);
  } catch (error) {
    throw new UsageError(`--to ${text}: ${(error as Error).message}`);
  }
  const s3 = read.s3();
  read.check();
  let store;
  try {
    store = await openStore(location, s3, options);
  } catch (error) {
    if (error instanceof LocationError) throw new UsageError(`--to ${text}: ${error.message}${options.create ? "" : " (this command does not create a store)"}`);
    throw error;
  }
  const wait = seconds(values, "wait-for-store", 3600);
  if (wait > 0) await waitForStore(store, wait, (line) => process.stderr.write(`${line}\n`));
  if (values["create-bucket"] && store instanceof S3Store) await store.ensureBucket();
  return store;
}

async function registryOptions(values: Values, env: NodeJS.ProcessEnv, plan: SyncPlan): Promise<RegistryOptions> {
  const pairs = (list: string[] | undefined, flag: string) =>
    (list ?? []).map((item) => {
      const eq = item.indexOf("=");
      if (eq <= 0 || eq === item.length - 1) throw new UsageError(`${flag} takes <left>=<right>, got "${item}"`);
      return [item.slice(0, eq), item.slice(eq + 1)] as const;
    });
  const mirrors = new Map(pairs(values.mirror, "--mirror"));
  const merged = new Map([...plan.mirrors, ...mirrors]); // as registryJobs applies them
  const hosts = plan.sources.map((s) => applyMirrors(s.ref, merged).host);
  const credentials = await dockerConfigCredentials([...new Set(hosts)]);
  const fromStdin = values["password-stdin"] ? await readStdin() : undefined;
  for (const [host, userPass] of pairs(values.credentials, "--credentials")) {
    const colon = userPass.indexOf(":");
    if (colon === 0) throw new UsageError(`--credentials takes <host>=<user>[:<password>]`);
    if (colon < 0 && fromStdin === undefined) throw new UsageError(`--credentials ${host}=<user> needs a password: add :<password> or --password-stdin`);
    credentials.set(host, colon < 0 ? { username: userPass, password: fromStdin! } : { username: userPass.slice(0, colon), password: userPass.slice(colon + 1) });
  }
  if (env.REGISTRY_USERNAME && !env.REGISTRY_PASSWORD) throw new UsageError("REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not");
  if (env.REGISTRY_PASSWORD && !env.REGISTRY_USERNAME) throw new UsageError("REGISTRY_PASSWORD is set but REGISTRY_USERNAME is not");
  const fallback: Credentials | undefined =
    env.REGISTRY_USERNAME && env.REGISTRY_PASSWORD ? { username: env.REGISTRY_USERNAME, password: env.REGISTRY_PASSWORD } : undefined;
  // Like Docker, credentials belong to hosts: REGISTRY_HOSTS names them, and without it they go
  // nowhere (a config that lists one more registry must not hand it the password).
  const scope = env.REGISTRY_HOSTS?.split(",").map((h) => h.trim()).filter(Boolean) ?? [];
  const timeout = values["registry-timeout"] === undefined ? 60 : Number(values["registry-timeout"]);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 3600) throw new UsageError("--registry-timeout takes a whole number of seconds from 1 to 3600");
  return {
    mirrors,
    timeoutMs: timeout * 1000,
    ...verbose(values),
    plainHttp: new Set(values["plain-http"] ?? []),
    credentials,
    ...(fallback ? { defaultCredentials: fallback, defaultCredentialHosts: new Set(scope) } : {}),
  };
}

/** One line per plugin on stderr; on a terminal, a live counter line as well. */
function progressPrinter(json: boolean) {
  const tty = process.stderr.isTTY && !json;
  let started = 0;
  let finished = 0;
  const line = (text: string) => process.stderr.write(tty ? `\r\x1b[K${text}\n` : `${text}\n`);
  const bar = () => {
    if (tty) process.stderr.write(`\r\x1b[K[${finished}/${started}] working...`);
  };
  return {
    event(e: ProgressEvent) {
      const what = `${e.name}${e.version ? ` ${e.version}` : ""}`;
      if (e.phase === "start") started++;
      else if (e.phase !== "alias" && e.phase !== "prune") finished++;
      const whole = e.phase === "failed" || e.phase === "conflict" || e.phase === "replaced";
      if (e.phase !== "start") line(`${e.phase.padEnd(13)} ${what}${e.detail ? `  ${whole ? e.detail : e.detail.slice(0, 80)}` : ""}`);
      bar();
    },
    done() {
      if (tty) process.stderr.write("\r\x1b[K");
    },
  };
}

function printReport(report: Report & { purged?: readonly string[] }, json: boolean) {
  if (json) {
    process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const count = (status: string) => report.versions.filter((v) => v.status === status).length;
  const parts = ["published", "unchanged", "would-publish", "failed"].map((s) => `${count(s)} ${s}`);
  for (const rare of ["replaced", "conflict"]) if (count(rare) > 0) parts.push(`${count(rare)} ${rare}`);
  process.stdout.write(`${report.versions.length} versions: ${parts.join(", ")}; ${report.aliases.length} alias sets; ${report.pruned.length} pruned\n`);
  for (const v of report.versions.filter((x) => x.status === "failed")) process.stdout.write(`FAILED ${v.name} ${v.version}: ${v.error}\n`);
  for (const v of report.versions.filter((x) => x.status === "conflict")) process.stdout.write(`CONFLICT ${v.name} ${v.version}: published ${v.previousSha256}, source ${v.sha256} (not written; --replace overwrites)\n`);
  for (const v of report.versions.filter((x) => x.status === "replaced")) process.stdout.write(`REPLACED ${v.name} ${v.version}: ${v.previousSha256} -> ${v.sha256}\n`);
  for (const a of report.aliases.filter((x) => x.status === "failed")) process.stdout.write(`FAILED aliases of ${a.name}: ${a.error}\n`);
  for (const u of report.unresolved ?? []) process.stdout.write(`UNRESOLVED ${u.plugin}${u.version ? ` ${u.version}` : ""}: ${u.why} (asked by ${u.from.join(", ")})\n`);
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`plugin-uploader: ${(error as Error)?.stack ?? error}\n`);
    process.exitCode = 1;
  },
);

/** The password piped in (`... | plugin-uploader sync --credentials host=user --password-stdin`), without its final newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (text === "") throw new UsageError("--password-stdin: nothing on standard input");
  return text;
}

/** A `--<flag> <seconds>` option; 0 when absent. */
function seconds(values: Values, flag: "wait-for-lease" | "wait-for-store" | "wait", max: number): number {
  const text = values[flag];
  if (text === undefined) return 0;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > max) throw new UsageError(`--${flag} takes a whole number of seconds from 0 to ${max}`);
  return value;
}

function verbose(values: Values): { log?: (line: string) => void } {
  return values.verbose ? { log: (line) => process.stderr.write(`  ${line}\n`) } : {};
}
