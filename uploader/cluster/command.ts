import { loadCatalog } from "../../src/plugins/catalog.ts";
import { CLUSTER_CHECK } from "../../src/core/layout.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import { putVerified } from "../publish.ts";
import { recordedReleases } from "../release.ts";
import consoleVersions from "../console-versions.json" with { type: "json" };
import { checkReferences, parseServerUrl, type CheckReport } from "./check.ts";
import { readCluster, type ClusterOptions } from "./kube.ts";
import { consoleUrl, type Reference } from "./references.ts";

/** The in-cluster name the Console chart's default pattern hard-codes (higress-compat.md section 3). */
export const DEFAULT_SERVER_URL = "http://higress-plugin-server.higress-system.svc";

export interface CheckOptions extends ClusterOptions {
  readonly store: WritableStore;
  /** Read the cluster's references (else only the store's recorded releases are checked). */
  readonly fromCluster?: boolean;
  readonly serverUrls?: readonly string[];
  /** The Console's HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN: every version a Console offers is checked too. */
  readonly consolePattern?: string;
  /** Write the report into the store (cluster-check.json), where the server shows it. */
  readonly record?: boolean;
}

/** Every URL the Consoles would generate with `pattern`, enabled or not: a Console creates a WasmPlugin only when a user enables one. */
export function consoleReferences(pattern: string): Reference[] {
  return Object.entries(consoleVersions.plugins as Record<string, string[]>).flatMap(([name, versions]) =>
    versions.map((version): Reference => ({ source: { kind: "console", release: "2.1.5 to newest" }, url: consoleUrl(pattern, name, version), pluginHint: name })),
  );
}

/** One list call per WasmPlugin group and one store read (index.json): fast on a big cluster. */
export async function checkCluster(options: CheckOptions): Promise<CheckReport> {
  return (await runCheck(options)).report;
}

/** The check, and the list's resourceVersion a watch continues from. */
export async function runCheck(options: CheckOptions): Promise<{ report: CheckReport; resourceVersion: string | undefined }> {
  const servers = (options.serverUrls?.length ? options.serverUrls : [DEFAULT_SERVER_URL]).map(parseServerUrl);
  const fromCluster = options.fromCluster ?? true;
  const [cluster, catalog, releases] = await Promise.all([fromCluster ? readCluster(options) : undefined, loadCatalog(options.store), recordedReleases(options.store)]);
  const references = [...(cluster?.references ?? []), ...(options.consolePattern ? consoleReferences(options.consolePattern) : [])];
  const notes = [...(cluster?.notes ?? [])];
  if (!fromCluster) notes.push("the cluster was not read (--from-cluster): only the store's recorded releases are checked");
  else if (!options.consolePattern) notes.push("the Console's pattern was not given (--console-pattern): versions the Console offers but nobody enabled yet are not checked, and count as unreferenced");
  const report = checkReferences(references, catalog, servers, { ...(cluster ? { cluster: cluster.server } : {}), notes, releases });
  if (options.record) await recordReport(options.store, report);
  return { report, resourceVersion: cluster?.resourceVersion };
}

export async function recordReport(store: WritableStore, report: CheckReport): Promise<void> {
  await putVerified(store, CLUSTER_CHECK, new TextEncoder().encode(`${JSON.stringify(report, null, 2)}\n`));
}

/** The human report: one line per reference that needs attention, then the summary. */
export function formatReport(report: CheckReport, options: { all?: boolean; fix?: boolean } = {}): string {
  const lines: string[] = [];
  for (const f of report.findings) {
    if (f.severity === "ok" && !options.all) continue;
    lines.push(`${f.severity.toUpperCase().padEnd(8)}${f.status.padEnd(16)}${f.from}\n${" ".repeat(24)}${f.url}\n${" ".repeat(24)}${f.message}`);
    if (options.fix && f.patch) lines.push(`${" ".repeat(24)}fix: ${f.patch}`);
  }
  for (const note of report.notes) lines.push(`NOTE    ${note}`);
  const s = report.summary;
  const prune = report.unreferenced.slice(0, 20).map((u) => `${u.plugin} ${u.version}${u.aliasOf ? ` (alias of ${u.aliasOf})` : ""}`);
  if (prune.length) lines.push(`unreferenced (prune candidates, not removed): ${prune.join(", ")}${report.unreferenced.length > 20 ? `, and ${report.unreferenced.length - 20} more` : ""}`);
  const covered = report.releases.filter((r) => r.covered).map((r) => r.gatewayVersion);
  for (const r of report.releases.filter((x) => !x.covered)) lines.push(`ERROR   release         Higress ${r.gatewayVersion} is no longer covered: ${r.problems.join("; ")}`);
  if (covered.length > 0) lines.push(`the store covers Higress ${covered.length === 1 ? covered[0] : `${covered.slice(0, -1).join(", ")} and ${covered.at(-1)}`}`);
  lines.push(`${s.references} references: ${s.ok} ok, ${s.errors} errors, ${s.warnings} warnings; ${s.unreferenced} stored versions unreferenced`);
  return `${lines.join("\n")}\n`;
}
