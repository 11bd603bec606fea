import { versionPrefix } from "../../src/core/layout.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import type { RecordedRelease } from "../release.ts";
import type { CheckReport } from "./check.ts";

/**
 * `prune --keep-referenced`: the versions nothing can reach any more. A version stays while a
 * resource, the Console's pattern (every version any Console offers) or a recorded release
 * snapshot reaches it, directly or through an alias; aliases themselves are left in place, and so
 * is every version an alias points at. The check must have read the Console's pattern, or the
 * versions the Console offers but nobody enabled yet would go.
 */
export interface PrunePlan {
  readonly remove: readonly { readonly plugin: string; readonly version: string }[];
  /** Unreferenced, but kept: why. */
  readonly kept: readonly { readonly plugin: string; readonly version: string; readonly why: string }[];
}

export function prunePlan(report: CheckReport, releases: readonly RecordedRelease[]): PrunePlan {
  const released = new Map<string, string>();
  for (const release of releases) for (const p of release.plugins) released.set(`${p.name}/${p.version}`, release.gatewayVersion);
  const aliasTargets = new Set(report.unreferenced.filter((u) => u.aliasOf).map((u) => `${u.plugin}/${u.aliasOf}`));
  const remove: { plugin: string; version: string }[] = [];
  const kept: { plugin: string; version: string; why: string }[] = [];
  for (const u of report.unreferenced) {
    if (u.aliasOf) continue; // an alias is a line in aliases.json, not files: left as it is
    const key = `${u.plugin}/${u.version}`;
    if (released.has(key)) kept.push({ ...u, why: `part of the recorded Higress ${released.get(key)} release` });
    else if (aliasTargets.has(key)) kept.push({ ...u, why: "an alias points at it" });
    else remove.push({ plugin: u.plugin, version: u.version });
  }
  return { remove, kept };
}

/** Removes each version's files; the caller rebuilds index.json afterwards. */
export async function removeVersions(store: WritableStore, remove: PrunePlan["remove"]): Promise<void> {
  for (const { plugin, version } of remove) {
    for (const object of (await store.list(versionPrefix(plugin, version))).objects) await store.delete(object.key);
  }
}
