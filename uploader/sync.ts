import { PLUGINS, pluginPrefix, versionPrefix } from "../src/core/layout.ts";
import { sha256Hex } from "./digest.ts";
import { isName, isVersion } from "../src/core/names.ts";
import type { WritableStore } from "../src/storage/store.ts";
import type { PluginSource, SyncPlan } from "./config.ts";
import type { Credentials } from "./oci/auth.ts";
import { RegistryClient } from "./oci/client.ts";
import { pullPlugin } from "./oci/pull.ts";
import { applyMirrors, formatReference } from "./oci/reference.ts";
import { mapPool } from "./pool.ts";
import { publishAliases, publishVersion, storedMetadata, type PluginVersion } from "./publish.ts";

export type VersionStatus = "published" | "unchanged" | "would-publish" | "failed";

export interface VersionResult {
  readonly name: string;
  readonly version: string;
  readonly source: string;
  readonly status: VersionStatus;
  readonly sha256?: string;
  readonly size?: number;
  readonly error?: string;
}

export interface AliasResult {
  readonly name: string;
  readonly aliases: Readonly<Record<string, string>>;
  readonly status: "published" | "would-publish" | "failed";
  readonly error?: string;
}

export interface SyncReport {
  readonly versions: readonly VersionResult[];
  readonly aliases: readonly AliasResult[];
  readonly pruned: readonly string[];
  readonly failed: number;
}

export type Progress = (event: { name: string; version?: string; phase: "start" | VersionStatus | "alias" | "prune"; detail?: string }) => void;

export interface SyncOptions {
  readonly store: WritableStore;
  readonly plan: SyncPlan;
  /** Registry hosts reached over plain HTTP. */
  readonly plainHttp?: ReadonlySet<string>;
  /** Mirrors from the command line; they win over the config's. */
  readonly mirrors?: ReadonlyMap<string, string>;
  /** Credentials by host from flags, environment or Docker config; the config's win. */
  readonly credentials?: ReadonlyMap<string, Credentials>;
  readonly concurrency?: number;
  readonly force?: boolean;
  readonly dryRun?: boolean;
  readonly prune?: boolean;
  readonly onProgress?: Progress;
  /** For tests: retry pacing of the registry client. */
  readonly backoffMs?: number;
}

/** Pulls every planned version, verifies it, publishes it, then the aliases; one failure never stops the others. */
export async function sync(options: SyncOptions): Promise<SyncReport> {
  const { store, plan } = options;
  const progress = options.onProgress ?? (() => {});
  const mirrors = new Map([...plan.mirrors, ...(options.mirrors ?? [])]);
  const sources = plan.sources.map((s) => ({ ...s, ref: applyMirrors(s.ref, mirrors) }));
  const perRepository = new Map(
    sources.filter((s) => s.credentials).map((s) => [`${s.ref.host}/${s.ref.repository}`, s.credentials!]),
  );
  const client = new RegistryClient({
    plainHttp: options.plainHttp ?? new Set(),
    credentials: (host, repository) =>
      perRepository.get(`${host}/${repository}`) ?? plan.credentials.get(host) ?? options.credentials?.get(host),
    ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
  });

  const versions = await mapPool(sources, options.concurrency ?? 4, async (source): Promise<VersionResult> => {
    const base = { name: source.name, version: source.version, source: formatReference(source.ref) };
    progress({ name: source.name, version: source.version, phase: "start", detail: base.source });
    try {
      const pulled = await pullPlugin(client, source.ref);
      const plugin: PluginVersion = { name: source.name, version: source.version, ...pulled };
      const result = options.dryRun ? await dryRun(store, plugin) : await publishVersion(store, plugin, { force: options.force ?? false });
      const done = { ...base, status: result.status, sha256: result.sha256, size: plugin.wasm.length };
      progress({ name: source.name, version: source.version, phase: result.status, detail: result.sha256 });
      return done;
    } catch (error) {
      const message = (error as Error).message ?? String(error);
      progress({ name: source.name, version: source.version, phase: "failed", detail: message });
      return { ...base, status: "failed", error: message };
    }
  });

  const aliases: AliasResult[] = [];
  for (const [name, pluginAliases] of plan.aliases) {
    const failedTarget = Object.values(pluginAliases).find((to) =>
      versions.some((v) => v.name === name && v.version === to && v.status === "failed"),
    );
    if (failedTarget) {
      aliases.push({ name, aliases: pluginAliases, status: "failed", error: `target version ${failedTarget} failed` });
      continue;
    }
    if (options.dryRun) {
      aliases.push({ name, aliases: pluginAliases, status: "would-publish" });
      continue;
    }
    try {
      await publishAliases(store, name, pluginAliases, { replace: options.prune ?? false });
      progress({ name, phase: "alias", detail: Object.entries(pluginAliases).map(([f, t]) => `${f} -> ${t}`).join(", ") });
      aliases.push({ name, aliases: pluginAliases, status: "published" });
    } catch (error) {
      aliases.push({ name, aliases: pluginAliases, status: "failed", error: (error as Error).message });
    }
  }

  const pruned = options.prune ? await prune(store, plan.sources, plan.aliases, options.dryRun ?? false, progress) : [];
  const failed = versions.filter((v) => v.status === "failed").length + aliases.filter((a) => a.status === "failed").length;
  return { versions, aliases, pruned, failed };
}

async function dryRun(store: WritableStore, plugin: PluginVersion) {
  const sha256 = sha256Hex(plugin.wasm);
  const existing = await storedMetadata(store, plugin.name, plugin.version);
  return { status: existing?.sha256 === sha256 ? ("unchanged" as const) : ("would-publish" as const), sha256 };
}

/** Removes plugins, versions and aliases the plan does not list. */
async function prune(
  store: WritableStore,
  sources: readonly PluginSource[],
  aliases: ReadonlyMap<string, Readonly<Record<string, string>>>,
  dryRun: boolean,
  progress: Progress,
): Promise<string[]> {
  const wanted = new Set(sources.map((s) => `${s.name}/${s.version}`));
  const names = new Set(sources.map((s) => s.name));
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
