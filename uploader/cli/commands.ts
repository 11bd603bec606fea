import { versionTag } from "../../src/core/cache-tags.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import { S3Store } from "../../src/storage/s3.ts";
import { createBucket } from "../bucket.ts";
import { DEFAULT_MAX_UNPACKED_BYTES, exportBundle, readBundle } from "../bundle.ts";
import { checkCluster, formatReport } from "../cluster/command.ts";
import { clusterPlan } from "../cluster/fill.ts";
import { prunePlan, removeVersions } from "../cluster/prune.ts";
import { watchCluster } from "../cluster/watch.ts";
import { DEFAULT_CONFIG_NAME, loadPlan, type SyncPlan } from "../config.ts";
import { UploaderError, UsageError } from "../errors.ts";
import { exportFileLayout } from "../file-layout.ts";
import { withLease } from "../lease.ts";
import { localJobs } from "../local.ts";
import { lockedJobs, readLock, writeLock } from "../lock.ts";
import { runPipeline, type PipelineOptions, type Report } from "../pipeline.ts";
import { changedTags, cloudflareZone, purgeTags } from "../purge.ts";
import { loadSnapshot, recordedReleases, recordReleases, releasePlan } from "../release.ts";
import { writeIndex } from "../store-index.ts";
import { registryJobs } from "../sync.ts";
import { listStore, verifyStore } from "../verify.ts";
import { checkInputs, READ_ONLY, registryOptions, seconds, target, openTarget } from "./inputs.ts";
import { printReport, progressPrinter } from "./report.ts";
import { CLUSTER, type CommandName, type Values } from "./spec.ts";

/**
 * The commands, each a list of steps over the library: read the inputs, open the store, run,
 * report. Usage errors are thrown (UsageError) and rendered by cli.ts; the result is the exit code.
 */
export async function run(command: CommandName, args: readonly string[], values: Values, env: NodeJS.ProcessEnv): Promise<number> {
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
      if (values["from-cluster"]) {
        report = await syncFromCluster(values, env, common, leased);
        break;
      }
      for (const flag of ["server-url", "console-pattern", "record", ...CLUSTER.slice(1)] as const) {
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
      const name = values["plugin-name"];
      const version = values["plugin-version"];
      const jobs = await localJobs(args[0]!, { ...(name ? { name } : {}), ...(version ? { version } : {}) });
      const store = await target(values, env);
      report = await leased(store, "import-dir", () => runPipeline(store, jobs, new Map(), common));
      break;
    }
    case "import": {
      const maxMb = values["max-unpacked-mb"] === undefined ? DEFAULT_MAX_UNPACKED_BYTES / 1048576 : Number(values["max-unpacked-mb"]);
      if (!Number.isInteger(maxMb) || maxMb < 1 || maxMb > 1_048_576) throw new UsageError("--max-unpacked-mb takes a whole number of MiB from 1 to 1048576");
      const bundle = await readBundle(args[0]!, { maxUnpackedBytes: maxMb * 1048576 });
      try {
        const store = await target(values, env);
        report = await leased(store, "import", () => runPipeline(store, bundle.jobs, bundle.aliases, common));
      } finally {
        await bundle.close();
      }
      break;
    }
    case "export": {
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
      const { versions, problems } = await verifyStore(await target(values, env, READ_ONLY));
      if (versions === 0) problems.push("the store holds no plugin version: nothing to verify (is --to the right store?)");
      if (values.json) process.stdout.write(`${JSON.stringify({ versions, problems }, null, 2)}\n`);
      else process.stdout.write(`${versions} versions checked, ${problems.length} problems\n${problems.map((p) => `PROBLEM ${p}\n`).join("")}`);
      return problems.length > 0 ? 1 : 0;
    }
    case "list": {
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
      const store = await target(values, env, READ_ONLY);
      const index = await leased(store, "index", () => writeIndex(store));
      process.stdout.write(`index.json written: ${Object.keys(index.plugins).length} plugins\n`);
      return 0;
    }
    case "prune": {
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
      const store = await openTarget(values, env);
      if (!(store instanceof S3Store)) throw new UsageError("create-bucket needs an s3:// store");
      await createBucket(store, seconds(values, "wait", 3600), (line) => process.stderr.write(`${line}\n`));
      return 0;
    }
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

