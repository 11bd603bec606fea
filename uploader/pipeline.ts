import { INDEX, PLUGINS, pluginPrefix, versionPrefix } from "../src/core/layout.ts";
import { isName, isVersion } from "../src/core/names.ts";
import type { WritableStore } from "../src/storage/store.ts";
import { sha256Hex } from "./digest.ts";
import type { Unresolved } from "./cluster/fill.ts";
import { ByteBudget, mapPool } from "./pool.ts";
import { MAX_WASM_BYTES } from "./wasm.ts";
import { ConflictError, intact, publishAliases, publishVersion, storedMetadata, type PluginVersion } from "./publish.ts";
import type { PluginMetadata } from "../src/core/metadata.ts";
import { writeIndex } from "./store-index.ts";

/**
 * The publishing pipeline every source feeds (registries, local files, bundles): load each
 * version (pull, read, unpack), verify and publish it, then the aliases; a failure is recorded
 * against its plugin and never stops the others.
 */

export interface Job {
  readonly name: string;
  readonly version: string;
  /** Where the bytes come from, for messages (`oci://...`, `file:...`). */
  readonly source: string;
  readonly load: () => Promise<PluginVersion>;
  /** The bytes `load` will hold, when known before loading (a bundle's spooled version): see MODULE_BUDGET_BYTES. */
  readonly size?: number;
  /** True when what the store holds (its metadata) already is this job's plugin, judged without loading it (a registry's manifest digest). */
  readonly published?: (stored: PluginMetadata) => Promise<boolean>;
}

/** `conflict`: the source has other bytes than the published version (not written; `--replace` overwrites). */
export type VersionStatus = "published" | "unchanged" | "replaced" | "would-publish" | "conflict" | "failed";

/** The run left this version in the store with the result's sha256 (what a lock or a release record may name). */
export const stands = (r: VersionResult): r is VersionResult & { sha256: string } =>
  r.sha256 !== undefined && (r.status === "published" || r.status === "unchanged" || r.status === "replaced");

export interface VersionResult {
  readonly name: string;
  readonly version: string;
  readonly source: string;
  readonly status: VersionStatus;
  readonly sha256?: string;
  readonly size?: number;
  /** For `conflict` and `replaced`: the sha256 the store held. */
  readonly previousSha256?: string;
  /** The image manifest the bytes came from (registry sources). */
  readonly manifestDigest?: string;
  readonly error?: string;
}

export interface AliasResult {
  readonly name: string;
  readonly aliases: Readonly<Record<string, string>>;
  readonly status: "published" | "would-publish" | "failed";
  /** Aliases that point elsewhere now (or are gone, with prune). */
  readonly moved?: readonly string[];
  readonly error?: string;
}

export interface Report {
  readonly versions: readonly VersionResult[];
  readonly aliases: readonly AliasResult[];
  readonly pruned: readonly string[];
  readonly failed: number;
  /** `sync --from-cluster`: what the cluster asks for that no config can supply. */
  readonly unresolved?: readonly Unresolved[];
}

export type ProgressEvent = {
  readonly name: string;
  readonly version?: string;
  readonly phase: "start" | VersionStatus | "alias" | "prune";
  readonly detail?: string;
};

export interface PipelineOptions {
  readonly concurrency?: number;
  readonly force?: boolean;
  /** Publish over a version whose bytes differ (otherwise a `conflict`). */
  readonly replace?: boolean;
  readonly dryRun?: boolean;
  /** Remove versions, plugins and aliases the jobs do not list. */
  readonly prune?: boolean;
  readonly onProgress?: (event: ProgressEvent) => void;
}

/**
 * Versions of known size are loaded only while those held stay within this: a bundle of five
 * 200 MiB modules is published one at a time, not five at once.
 */
export const MODULE_BUDGET_BYTES = MAX_WASM_BYTES;

export async function runPipeline(
  store: WritableStore,
  jobs: readonly Job[],
  aliases: ReadonlyMap<string, Readonly<Record<string, string>>>,
  options: PipelineOptions = {},
): Promise<Report> {
  const progress = options.onProgress ?? (() => {});
  // Two jobs for one version would race each other's writes and rollbacks: the second is refused.
  const seen = new Set<string>();
  const held = new ByteBudget(MODULE_BUDGET_BYTES);
  const versions = await mapPool(jobs, options.concurrency ?? 4, async (job): Promise<VersionResult> => {
    const base = { name: job.name, version: job.version, source: job.source };
    const id = `${job.name}/${job.version}`;
    if (seen.has(id)) {
      const error = `${job.name} ${job.version} is listed more than once; published from its first source only`;
      progress({ name: job.name, version: job.version, phase: "failed", detail: error });
      return { ...base, status: "failed", error };
    }
    seen.add(id);
    progress({ name: job.name, version: job.version, phase: "start", detail: job.source });
    const release = await held.take(job.size ?? 0);
    try {
      // Decided without loading when the source can tell (a registry's manifest digest): a no-op rerun downloads no blob.
      const stored = job.published && !options.force ? await storedMetadata(store, job.name, job.version) : undefined;
      if (stored && (await job.published!(stored).catch(() => false)) && (await intact(store, stored))) {
        progress({ name: job.name, version: job.version, phase: "unchanged", detail: stored.sha256 });
        return { ...base, status: "unchanged", sha256: stored.sha256, size: stored.size, ...(stored.manifestDigest ? { manifestDigest: stored.manifestDigest } : {}) };
      }
      const plugin = await job.load();
      const result: { status: VersionStatus; sha256: string; previousSha256?: string } = options.dryRun
        ? await dryRun(store, plugin, options.replace ?? false)
        : await publishVersion(store, plugin, { force: options.force ?? false, replace: options.replace ?? false });
      const { previousSha256 } = result;
      progress({ name: job.name, version: job.version, phase: result.status, detail: previousSha256 ? `${previousSha256} -> ${result.sha256}` : result.sha256 });
      return {
        ...base,
        status: result.status,
        sha256: result.sha256,
        size: plugin.wasm.length,
        ...(previousSha256 ? { previousSha256 } : {}),
        ...(plugin.manifestDigest ? { manifestDigest: plugin.manifestDigest } : {}),
      };
    } catch (error) {
      if (error instanceof ConflictError) {
        progress({ name: job.name, version: job.version, phase: "conflict", detail: error.message });
        return { ...base, status: "conflict", sha256: error.offered, previousSha256: error.published, error: error.message };
      }
      const message = error instanceof Error ? error.message : String(error);
      progress({ name: job.name, version: job.version, phase: "failed", detail: message });
      return { ...base, status: "failed", error: message };
    } finally {
      release();
    }
  });

  const aliasResults: AliasResult[] = [];
  for (const [name, pluginAliases] of aliases) {
    const failedTarget = Object.values(pluginAliases).find((to) =>
      versions.some((v) => v.name === name && v.version === to && v.status === "failed"),
    );
    if (failedTarget) {
      aliasResults.push({ name, aliases: pluginAliases, status: "failed", error: `target version ${failedTarget} failed` });
    } else if (options.dryRun) {
      aliasResults.push({ name, aliases: pluginAliases, status: "would-publish" });
    } else {
      try {
        const moved = await publishAliases(store, name, pluginAliases, { replace: options.prune ?? false });
        progress({ name, phase: "alias", detail: Object.entries(pluginAliases).map(([f, t]) => `${f} -> ${t}`).join(", ") });
        aliasResults.push({ name, aliases: pluginAliases, status: "published", ...(moved.length > 0 ? { moved } : {}) });
      } catch (error) {
        aliasResults.push({ name, aliases: pluginAliases, status: "failed", error: (error as Error).message });
      }
    }
  }

  const pruned = options.prune ? await prune(store, jobs, aliases, options.dryRun ?? false, progress) : [];
  let failed = versions.filter((v) => v.status === "failed" || v.status === "conflict").length + aliasResults.filter((a) => a.status === "failed").length;
  if (!options.dryRun) {
    try {
      await writeIndex(store);
    } catch (error) {
      failed++;
      progress({ name: INDEX, phase: "failed", detail: `store index not written: ${(error as Error).message}` });
    }
  }
  return { versions, aliases: aliasResults, pruned, failed };
}

async function dryRun(store: WritableStore, plugin: PluginVersion, replace: boolean): Promise<{ status: VersionStatus; sha256: string }> {
  const sha256 = sha256Hex(plugin.wasm);
  const existing = await storedMetadata(store, plugin.name, plugin.version);
  if (existing && existing.sha256 !== sha256 && !replace) throw new ConflictError(plugin.name, plugin.version, existing.sha256, sha256);
  return { status: existing?.sha256 === sha256 ? "unchanged" : "would-publish", sha256 };
}

async function prune(
  store: WritableStore,
  jobs: readonly Job[],
  aliases: ReadonlyMap<string, Readonly<Record<string, string>>>,
  dryRun: boolean,
  progress: (event: ProgressEvent) => void,
): Promise<string[]> {
  const wanted = new Set(jobs.map((j) => `${j.name}/${j.version}`));
  const names = new Set(jobs.map((j) => j.name));
  const removed: string[] = [];
  for (const name of (await store.list(PLUGINS)).prefixes.filter(isName)) {
    const { prefixes, objects } = await store.list(pluginPrefix(name));
    for (const version of prefixes.filter(isVersion)) {
      if (wanted.has(`${name}/${version}`)) continue;
      const files = (await store.list(versionPrefix(name, version))).objects;
      if (!dryRun) for (const f of files) await store.delete(f.key);
      removed.push(`${name}/${version}`);
      progress({ name, version, phase: "prune" });
    }
    // Plugin-level files (aliases.json) go with the plugin, or when the plan has no aliases for it.
    if (!names.has(name) || !aliases.has(name)) {
      for (const o of objects) {
        if (!dryRun) await store.delete(o.key);
        removed.push(o.key);
      }
    }
  }
  return removed;
}
