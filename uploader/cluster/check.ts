import type { CatalogPlugin } from "../../src/core/catalog.ts";
import { compareVersions } from "../../src/core/versions.ts";
import { checkName, checkVersion } from "../../src/core/names.ts";
import { UsageError } from "../errors.ts";
import type { RecordedRelease } from "../release.ts";
import { describeSource, type Reference, type ReferenceSource } from "./references.ts";

/**
 * The coverage check: for every URL the cluster will ask for, what the gateway would get. Pure:
 * the references and the store's catalog in, a report out (the same one `check` prints, records in
 * the store for the server, and `sync --from-cluster` fills from).
 */

export type FindingStatus =
  | "ok"
  /** Our URL, but the store has no such plugin or version: the gateway gets a 404 and the listener keeps warming. */
  | "missing"
  /** `spec.sha256` differs from the bytes served at the URL: the gateway refuses the module. */
  | "sha256-mismatch"
  /** Our host, but not a plugin path (`/plugins/<name>/<version>/plugin.wasm`). */
  | "bad-path"
  /** Pulled from an OCI registry, past the store (an air-gapped gateway cannot). */
  | "oci"
  /** Another host: not ours to check. */
  | "other-host";

export type Severity = "ok" | "error" | "warning";

const SEVERITY: Record<FindingStatus, Severity> = {
  ok: "ok",
  missing: "error",
  "sha256-mismatch": "error",
  "bad-path": "error",
  oci: "warning",
  "other-host": "warning",
};

export interface Finding {
  readonly source: ReferenceSource;
  /** One line naming the source (`WasmPlugin higress-system/key-auth-1.0.0`). */
  readonly from: string;
  /** The URL with any password replaced by `***`. */
  readonly url: string;
  readonly status: FindingStatus;
  readonly severity: Severity;
  readonly message: string;
  readonly plugin?: string;
  readonly version?: string;
  /** What the store serves at the URL. */
  readonly servedSha256?: string;
  readonly aliasOf?: string;
  /** For `oci`: the URL of ours to switch to, and the command that does it. */
  readonly switchTo?: string;
  readonly patch?: string;
}

export interface CheckReport {
  readonly schemaVersion: 1;
  readonly checkedAt: string;
  /** Where the references came from (the API server's URL, never a credential). */
  readonly cluster?: string;
  readonly serverUrls: readonly string[];
  readonly summary: { readonly references: number; readonly ok: number; readonly errors: number; readonly warnings: number; readonly unreferenced: number };
  readonly findings: readonly Finding[];
  /** Versions and aliases in the store that no reference reaches: candidates for pruning, never removed by `check`. */
  readonly unreferenced: readonly { readonly plugin: string; readonly version: string; readonly aliasOf?: string }[];
  /** The Higress releases mirrored into the store (sync --release-snapshot), and whether it still holds each one's bytes. */
  readonly releases: readonly ReleaseCoverage[];
  readonly notes: readonly string[];
}

export interface ReleaseCoverage {
  readonly gatewayVersion: string;
  readonly plugins: number;
  readonly covered: boolean;
  /** Each plugin version of the release the store no longer serves as recorded. */
  readonly problems: readonly string[];
}

/** Whether the store still serves every plugin of each recorded release with the recorded bytes. */
export function releaseCoverage(releases: readonly RecordedRelease[], catalog: readonly CatalogPlugin[]): ReleaseCoverage[] {
  const served = servedIndex(catalog);
  return releases
    .map((release) => {
      const problems = release.plugins.flatMap((p) => {
        const here = served.get(p.name)?.get(p.version);
        if (!here) return [`${p.name} ${p.version} is not in the store`];
        return here.sha256 !== p.sha256 ? [`${p.name} ${p.version} serves sha256 ${here.sha256 ?? "unknown"}, the release recorded ${p.sha256}`] : [];
      });
      return { gatewayVersion: release.gatewayVersion, plugins: release.plugins.length, covered: problems.length === 0, problems };
    })
    .sort((a, b) => compareVersions(a.gatewayVersion, b.gatewayVersion));
}

/** A base URL of ours: scheme, host (lower case), port (explicit) and path prefix. */
export interface ServerUrl {
  readonly text: string;
  readonly protocol: string;
  readonly hosts: ReadonlySet<string>;
  readonly port: string;
  readonly prefix: string;
}

const DEFAULT_PORTS: Record<string, string> = { "http:": "80", "https:": "443" };

/**
 * Parses `--server-url`: `http://higress-plugin-server.higress-system.svc`, with or without a
 * path prefix or userinfo. An in-cluster Service name also matches its other spellings
 * (`<svc>.<ns>`, `<svc>.<ns>.svc`, `<svc>.<ns>.svc.cluster.local`): gateways use all of them.
 */
export function parseServerUrl(text: string): ServerUrl {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--server-url ${text} is not a URL (like http://higress-plugin-server.higress-system.svc)`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--server-url ${text} must be http:// or https://`);
  if (url.search || url.hash) throw new UsageError(`--server-url ${text} must not have a query or fragment`);
  const host = url.hostname.toLowerCase();
  const hosts = new Set([host]);
  const service = /^([a-z0-9-]+)\.([a-z0-9-]+)(?:\.svc(?:\.cluster\.local)?)?$/.exec(host);
  if (service && (host.endsWith(".svc") || host.endsWith(".svc.cluster.local") || host.split(".").length === 2)) {
    const [, svc, ns] = service;
    for (const form of [`${svc}.${ns}`, `${svc}.${ns}.svc`, `${svc}.${ns}.svc.cluster.local`]) hosts.add(form);
  }
  const safe = new URL(url);
  safe.username = "";
  safe.password = "";
  return { text: safe.toString().replace(/\/$/, ""), protocol: url.protocol, hosts, port: url.port || DEFAULT_PORTS[url.protocol]!, prefix: url.pathname.replace(/\/+$/, "") };
}

/** The URL as it may be shown: a password in it becomes `***`. */
export function redact(text: string): string {
  try {
    const url = new URL(text);
    if (!url.password) return text;
    url.password = "***";
    return url.toString();
  } catch {
    return text.replace(/\/\/([^/@:]*):[^/@]*@/, "//$1:***@");
  }
}

interface Served {
  readonly sha256?: string;
  readonly aliasOf?: string;
  readonly republished?: string;
}

/** What the store serves for each name and version (aliases with their target's facts). */
function servedIndex(catalog: readonly CatalogPlugin[]): Map<string, Map<string, Served>> {
  const index = new Map<string, Map<string, Served>>();
  for (const plugin of catalog) {
    const versions = new Map<string, Served>();
    for (const v of plugin.versions) {
      const republished = v.created && v.lastModified && v.created !== v.lastModified ? v.lastModified : undefined;
      versions.set(v.version, { ...(v.sha256 ? { sha256: v.sha256 } : {}), ...(v.aliasOf ? { aliasOf: v.aliasOf } : {}), ...(republished ? { republished } : {}) });
    }
    index.set(plugin.name, versions);
  }
  return index;
}

function ociPlugin(url: string): { repository: string; tag?: string } | undefined {
  const m = /^oci:\/\/[^/]+\/(.+?)(?::([A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@sha256:[0-9a-f]{64})?$/.exec(url);
  return m ? { repository: m[1]!, ...(m[2] ? { tag: m[2] } : {}) } : undefined;
}

const patchFor = (source: ReferenceSource, url: string, sha256: string | undefined): string | undefined => {
  if (source.kind === "wasmplugin") {
    const spec = JSON.stringify({ spec: { url, ...(sha256 ? { sha256 } : {}) } });
    return `kubectl -n ${source.namespace} patch wasmplugins.${source.group} ${source.name} --type merge -p '${spec}'`;
  }
  if (source.kind === "controller") return `kubectl -n ${source.namespace} set env deployment/${source.deployment} ${source.variable}=${url}`;
  return undefined;
};

export function checkReferences(
  references: readonly Reference[],
  catalog: readonly CatalogPlugin[],
  servers: readonly ServerUrl[],
  extra: { readonly cluster?: string; readonly notes?: readonly string[]; readonly now?: Date; readonly releases?: readonly RecordedRelease[] } = {},
): CheckReport {
  const served = servedIndex(catalog);
  const reached = new Set<string>();
  const findings = references.map((reference): Finding => {
    const from = describeSource(reference.source);
    const url = redact(reference.url);
    const base = { source: reference.source, from, url };
    const finding = (status: FindingStatus, message: string, more: Partial<Finding> = {}): Finding => ({ ...base, status, severity: SEVERITY[status], message, ...more });

    if (reference.url.startsWith("oci://")) {
      const oci = ociPlugin(reference.url);
      const name = reference.pluginHint ?? oci?.repository.split("/").at(-1);
      const versions = name ? served.get(name) : undefined;
      if (!name || !versions || servers.length === 0) {
        return finding("oci", `pulls from an OCI registry${name ? `; the store has no ${name} to serve instead (sync --from-cluster fetches it)` : ""}`, name ? { plugin: name } : {});
      }
      const version = oci?.tag && versions.has(oci.tag) ? oci.tag : [...versions.keys()].sort(compareVersions).at(-1)!;
      const switchTo = `${servers[0]!.text}/plugins/${name}/${version}/plugin.wasm`;
      const sha256 = versions.get(version)?.sha256;
      const patch = patchFor(reference.source, switchTo, sha256);
      return finding("oci", `pulls from an OCI registry, past the store, which serves ${name} ${version}: switch to ${switchTo}`, {
        plugin: name,
        version,
        switchTo,
        ...(patch ? { patch } : {}),
        ...(sha256 ? { servedSha256: sha256 } : {}),
      });
    }

    let parsed: URL;
    try {
      parsed = new URL(reference.url);
    } catch {
      return finding("bad-path", "is not a URL the gateway can fetch");
    }
    const port = parsed.port || DEFAULT_PORTS[parsed.protocol];
    const server = servers.find((s) => s.protocol === parsed.protocol && s.port === port && s.hosts.has(parsed.hostname.toLowerCase()) && (s.prefix === "" || parsed.pathname.startsWith(`${s.prefix}/`)));
    if (!server) return finding("other-host", `is served by ${parsed.host}, not by this store's server (--server-url names ours)`);

    const m = /^\/plugins\/([^/]+)\/([^/]+)\/plugin\.wasm$/.exec(parsed.pathname.slice(server.prefix.length));
    let name: string | undefined;
    let version: string | undefined;
    try {
      name = m ? decodeURIComponent(m[1]!) : undefined;
      version = m ? decodeURIComponent(m[2]!) : undefined;
    } catch {
      // percent-encoding that is not: a bad path
    }
    if (!name || !version || checkName(name) || checkVersion(version)) {
      return finding("bad-path", "is not a plugin path /plugins/<name>/<version>/plugin.wasm: the gateway gets a 400 or 404");
    }
    const versions = served.get(name);
    const here = versions?.get(version);
    if (!versions) return finding("missing", `${name} is not in the store at all`, { plugin: name, version });
    if (!here) {
      const known = [...versions.keys()].sort(compareVersions).join(", ");
      return finding("missing", `${name} ${version} is not in the store (it has ${known}): the gateway gets a 404`, { plugin: name, version });
    }
    reached.add(`${name}/${version}`);
    if (here.aliasOf) reached.add(`${name}/${here.aliasOf}`);
    const facts = { plugin: name, version, ...(here.sha256 ? { servedSha256: here.sha256 } : {}), ...(here.aliasOf ? { aliasOf: here.aliasOf } : {}) };
    if (reference.sha256 && here.sha256 && reference.sha256 !== here.sha256) {
      const why = here.aliasOf
        ? `${version} is an alias of ${here.aliasOf}, whose bytes these are (was the alias re-pointed?)`
        : here.republished
          ? `the version was published again at ${here.republished}`
          : "the resource pins other bytes";
      return finding("sha256-mismatch", `spec.sha256 ${reference.sha256} differs from the served module's ${here.sha256}: the gateway refuses it (${why})`, facts);
    }
    return finding("ok", here.aliasOf ? `served from ${here.aliasOf} (alias)` : "served", facts);
  });

  // Without references (no cluster read) nothing can be called unreferenced.
  const unreferenced = references.length === 0 ? [] : catalog.flatMap((plugin) =>
    plugin.versions.filter((v) => !reached.has(`${plugin.name}/${v.version}`)).map((v) => ({ plugin: plugin.name, version: v.version, ...(v.aliasOf ? { aliasOf: v.aliasOf } : {}) })),
  );
  const count = (severity: Severity) => findings.filter((f) => f.severity === severity).length;
  return {
    schemaVersion: 1,
    checkedAt: (extra.now ?? new Date()).toISOString(),
    ...(extra.cluster ? { cluster: extra.cluster } : {}),
    serverUrls: servers.map((s) => s.text),
    summary: { references: findings.length, ok: count("ok"), errors: count("error"), warnings: count("warning"), unreferenced: unreferenced.length },
    findings,
    unreferenced,
    releases: releaseCoverage(extra.releases ?? [], catalog),
    notes: [...(extra.notes ?? [])],
  };
}
