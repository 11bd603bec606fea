import compare from "semver/functions/compare.js";
import valid from "semver/functions/valid.js";
import { readAliases, type Aliases } from "./aliases.ts";
import { PLUGINS, pluginPrefix, versionPrefix } from "./layout.ts";
import { isName, isVersion } from "./names.ts";
import type { ObjectInfo, Store } from "../storage/store.ts";

/** What the store holds, read through the Store interface only. */

export async function listPlugins(store: Store): Promise<string[]> {
  const { prefixes } = await store.list(PLUGINS);
  return prefixes.filter(isName).sort();
}

export interface PluginVersions {
  readonly name: string;
  /** Versions with their own directory. */
  readonly versions: readonly string[];
  readonly aliases: Aliases;
}

/** `undefined` when the plugin has neither versions nor aliases. */
export async function listVersions(store: Store, name: string): Promise<PluginVersions | undefined> {
  const [{ prefixes }, aliases] = await Promise.all([store.list(pluginPrefix(name)), readAliases(store, name)]);
  const versions = prefixes.filter(isVersion).sort(compareVersions);
  if (versions.length === 0 && Object.keys(aliases).length === 0) return undefined;
  return { name, versions, aliases };
}

export async function listFiles(store: Store, name: string, version: string): Promise<readonly ObjectInfo[]> {
  return (await store.list(versionPrefix(name, version))).objects;
}

/** Every version and alias as one sorted list of strings, for messages. */
export function describeVersions(v: PluginVersions): string {
  const all = [...v.versions, ...Object.entries(v.aliases).map(([from, to]) => `${from} (alias of ${to})`)];
  return all.sort(compareVersions).join(", ") || "none";
}

/**
 * Semantic Versioning precedence where both are semver (1.9.0 before 1.10.0, 2.0.0-rc.1 before
 * 2.0.0); otherwise numeric-aware text order (2.0 before 10.0).
 */
export function compareVersions(a: string, b: string): number {
  const [x, y] = [valid(a), valid(b)];
  if (x && y) return compare(x, y) || a.localeCompare(b);
  return a.localeCompare(b, "en", { numeric: true });
}
