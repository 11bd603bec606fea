import { isName, isVersion } from "./names.ts";

/**
 * The uploader's last coverage check as the server shows it (catalog, `/api/v1/cluster`,
 * metrics). The store is trusted, but this file is still read field by field into bounded
 * values: a hand-edited or truncated report must not break the catalog, and no extra field of it
 * reaches a page. The server needs no Kubernetes credentials: the uploader writes this file
 * (`plugin-uploader check --from-cluster --record`; schema in uploader/cluster/check.ts).
 */

export type ProblemSeverity = "error" | "warning";

export interface ClusterProblem {
  readonly from: string;
  readonly url: string;
  readonly status: string;
  readonly severity: ProblemSeverity;
  readonly message: string;
  readonly plugin?: string;
  readonly version?: string;
}

export interface ClusterView {
  readonly checkedAt: string;
  readonly cluster?: string;
  readonly summary: { readonly references: number; readonly ok: number; readonly errors: number; readonly warnings: number; readonly unreferenced: number };
  /** What would fail or needs a look, errors first; at most MAX_PROBLEMS. */
  readonly problems: readonly ClusterProblem[];
  /** `<name>/<version>` -> the sources that reference it, directly or through an alias (at most MAX_USERS named each). */
  readonly usage: ReadonlyMap<string, { readonly count: number; readonly from: readonly string[] }>;
}

export const MAX_PROBLEMS = 200;
const MAX_USERS = 20;
const MAX_TEXT = 600;

const text = (value: unknown): string | undefined => (typeof value === "string" && value.length > 0 ? value.slice(0, MAX_TEXT) : undefined);
const count = (value: unknown): number => (typeof value === "number" && Number.isSafeInteger(value) && value >= 0 ? value : 0);

export function parseClusterCheck(body: string): ClusterView | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(body);
  } catch {
    return undefined;
  }
  if (typeof raw !== "object" || raw === null || (raw as { schemaVersion?: unknown }).schemaVersion !== 1) return undefined;
  const r = raw as Record<string, unknown>;
  const checkedAt = text(r.checkedAt);
  if (!checkedAt || Number.isNaN(Date.parse(checkedAt))) return undefined;
  const s = (typeof r.summary === "object" && r.summary !== null ? r.summary : {}) as Record<string, unknown>;
  const problems: ClusterProblem[] = [];
  const usage = new Map<string, { count: number; from: string[] }>();
  for (const f of Array.isArray(r.findings) ? (r.findings as unknown[]) : []) {
    if (typeof f !== "object" || f === null) continue;
    const finding = f as Record<string, unknown>;
    const from = text(finding.from) ?? "?";
    const plugin = typeof finding.plugin === "string" && isName(finding.plugin) ? finding.plugin : undefined;
    const version = typeof finding.version === "string" && isVersion(finding.version) ? finding.version : undefined;
    const severity = finding.severity;
    const use = (key: string, who: string) => {
      const entry = usage.get(key) ?? { count: 0, from: [] };
      entry.count++;
      if (entry.from.length < MAX_USERS) entry.from.push(who);
      usage.set(key, entry);
    };
    if (plugin && version && finding.status !== "oci") {
      use(`${plugin}/${version}`, from);
      // The version an alias serves is in use too, by whoever uses the alias.
      const target = finding.aliasOf;
      if (typeof target === "string" && isVersion(target)) use(`${plugin}/${target}`, `${from} (through ${version})`);
    }
    if ((severity === "error" || severity === "warning") && problems.length < MAX_PROBLEMS) {
      problems.push({
        from,
        url: text(finding.url) ?? "",
        status: text(finding.status) ?? "?",
        severity,
        message: text(finding.message) ?? "",
        ...(plugin ? { plugin } : {}),
        ...(version ? { version } : {}),
      });
    }
  }
  problems.sort((a, b) => (a.severity === b.severity ? 0 : a.severity === "error" ? -1 : 1));
  const cluster = text(r.cluster);
  return {
    checkedAt,
    ...(cluster ? { cluster } : {}),
    summary: { references: count(s.references), ok: count(s.ok), errors: count(s.errors), warnings: count(s.warnings), unreferenced: count(s.unreferenced) },
    problems,
    usage,
  };
}

/** The view as JSON (the API's answer): the usage map as a plain object. */
export function clusterViewJson(view: ClusterView): Record<string, unknown> {
  return { ...view, usage: Object.fromEntries(view.usage) };
}
