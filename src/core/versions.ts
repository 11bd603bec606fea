import compare from "semver/functions/compare.js";
import valid from "semver/functions/valid.js";
import type { Aliases } from "./aliases.ts";

export interface PluginVersions {
  readonly name: string;
  /** Versions with their own directory. */
  readonly versions: readonly string[];
  readonly aliases: Aliases;
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
