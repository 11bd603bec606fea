import { collectDefaultMetrics, Counter, Gauge, Registry } from "prom-client";
import type { ClusterView } from "../core/cluster-check.ts";
import type { RouteKind } from "../core/routes.ts";
import type { CacheOutcome } from "../storage/cached.ts";
import type { StoreOperation, StoreOutcome } from "../storage/observed.ts";
import type { Exchange } from "./exchange.ts";

/**
 * Prometheus metrics of the Node entry. Every label has a fixed, small set of values (route
 * kinds, status classes, encodings, store operations): nothing taken from a request path, so a
 * scanner cannot grow the series.
 */
export interface ServerMetrics {
  readonly registry: Registry;
  started(): void;
  finished(exchange: Exchange): void;
  store(operation: StoreOperation, outcome: StoreOutcome, seconds: number): void;
  cache(outcome: CacheOutcome): void;
  evicted(): void;
  /** The Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

export interface MetricsSources {
  readonly version: string;
  /** Bytes the memory cache holds now (pinned buffers included), and objects. */
  readonly cacheBytes?: () => number;
  readonly cacheObjects?: () => number;
  /** Resolves when the store answers (the readiness check, with its own short reuse). */
  readonly ready: () => Promise<void>;
  /** The uploader's last recorded cluster check, if any (read through the caches at scrape time). */
  readonly clusterCheck?: () => Promise<ClusterView | undefined>;
}

/** Series of plugin_server_cluster_references at most: only versions resources reference, and no more than this. */
export const MAX_REFERENCE_SERIES = 500;

const PREFIX = "plugin_server_";
const ENCODINGS = new Set(["gzip", "identity"]);

export function serverMetrics(sources: MetricsSources): ServerMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];

  new Gauge({
    name: `${PREFIX}build_info`,
    help: "Version of the server and of Node; always 1.",
    labelNames: ["version", "node"],
    registers,
  }).set({ version: sources.version, node: process.versions.node }, 1);

  const requests = tally(registry, `${PREFIX}http_requests_total`, "Requests answered, by route kind, status class and content encoding.");
  const responseBytes = tally(registry, `${PREFIX}http_response_bytes_total`, "Body bytes sent (what really left: an aborted download counts what it got).");
  const kernelBytes = new Counter({ name: `${PREFIX}sendfile_bytes_total`, help: "Body bytes the kernel sent from files with sendfile(2), part of http_response_bytes_total (SENDFILE).", registers });
  const duration = histogram(registry, `${PREFIX}http_request_duration_seconds`, "Request start to the last byte sent.", [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]);
  let inFlight = 0;
  new Gauge({ name: `${PREFIX}http_requests_in_flight`, help: "Requests being answered now.", registers, collect() { this.set(inFlight); } });
  const storeCalls = tally(registry, `${PREFIX}store_operations_total`, "Calls to the object store (each retry counts), by operation and outcome.");
  const storeLatency = histogram(registry, `${PREFIX}store_operation_duration_seconds`, "Time the object store took to answer a call (to the first byte of a body).", [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]);
  const cacheLookups = tally(registry, `${PREFIX}cache_lookups_total`, "Object reads by how the caches answered: hit (memory), shared (waited for another request's load), miss, bypass (too large for memory), disk (a disk copy).");
  const evictions = new Counter({ name: `${PREFIX}cache_evictions_total`, help: "Objects pushed out of the memory cache to make room.", registers });
  if (sources.cacheBytes) {
    const bytes = sources.cacheBytes;
    new Gauge({ name: `${PREFIX}cache_bytes`, help: "Bytes the memory cache holds, buffers still being sent included.", registers, collect() { this.set(bytes()); } });
  }
  if (sources.cacheObjects) {
    const objects = sources.cacheObjects;
    new Gauge({ name: `${PREFIX}cache_objects`, help: "Objects in the memory cache.", registers, collect() { this.set(objects()); } });
  }
  new Gauge({
    name: `${PREFIX}store_ready`,
    help: "1 when the store answers a listing (what /readyz checks), else 0.",
    registers,
    async collect() {
      this.set(await sources.ready().then(() => 1, () => 0));
    },
  });

  // Zero series for the commonest combinations, so rate() works from the first scrape on.
  if (sources.clusterCheck) {
    const view = sources.clusterCheck;
    // One read per scrape, shared by the three families.
    let scrape: Promise<ClusterView | undefined> | undefined;
    const current = () => (scrape ??= view().catch(() => undefined).finally(() => setTimeout(() => (scrape = undefined), 1000).unref()));
    new Gauge({
      name: `${PREFIX}cluster_check_findings`,
      help: "References in the last recorded cluster check (plugin-uploader check --record), by severity: error means a gateway would fail.",
      labelNames: ["severity"],
      registers,
      async collect() {
        const v = await current();
        this.reset();
        if (!v) return;
        this.set({ severity: "ok" }, v.summary.ok);
        this.set({ severity: "error" }, v.summary.errors);
        this.set({ severity: "warning" }, v.summary.warnings);
      },
    });
    new Gauge({
      name: `${PREFIX}cluster_check_timestamp_seconds`,
      help: "When the last recorded cluster check ran (absent: none recorded).",
      registers,
      async collect() {
        const v = await current();
        this.reset();
        if (v) this.set(Date.parse(v.checkedAt) / 1000);
      },
    });
    new Gauge({
      name: `${PREFIX}cluster_references`,
      help: `Resources that reference a plugin version of this store, by plugin and version (versions nothing references have no series; at most ${MAX_REFERENCE_SERIES}).`,
      labelNames: ["plugin", "version"],
      registers,
      async collect() {
        const v = await current();
        this.reset();
        let n = 0;
        for (const [key, { count }] of v?.usage ?? []) {
          if (n++ >= MAX_REFERENCE_SERIES) break;
          const [plugin, version] = key.split("/") as [string, string];
          this.set({ plugin, version }, count);
        }
      },
    });
  }

  for (const route of ["plugin", "metadata"] satisfies RouteKind[]) {
    for (const status_class of ["2xx", "4xx", "5xx"]) requests.add(`${route} ${status_class} identity`, () => ({ route, status_class, encoding: "identity" }), 0);
  }

  return {
    registry,
    started: () => void inFlight++,
    finished(e) {
      inFlight--;
      const encoding = ENCODINGS.has(e.encoding) ? e.encoding : "other";
      const status_class = `${Math.floor(e.status / 100)}xx`;
      const route = e.route;
      requests.add(`${route} ${status_class} ${encoding}`, () => ({ route, status_class, encoding }));
      responseBytes.add(route, () => ({ route }), e.bytes);
      if (e.byKernel) kernelBytes.inc(e.byKernel);
      duration.observe(route, () => ({ route }), e.seconds);
    },
    store(operation, outcome, seconds) {
      storeCalls.add(`${operation} ${outcome}`, () => ({ operation, outcome }));
      storeLatency.observe(operation, () => ({ operation }), seconds);
    },
    cache: (outcome) => cacheLookups.add(outcome, () => ({ outcome })),
    evicted: () => evictions.inc(),
    render: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  };
}

type Labels = Record<string, string>;

/*
 * Series kept in plain numbers: a request costs a Map lookup and an addition, where prom-client's
 * own metrics hash their labels on every call (measured: 13% of a small request's CPU). The
 * registry formats them at scrape time like its own.
 */
function tally(registry: Registry, name: string, help: string) {
  const series = new Map<string, { labels: Labels; value: number }>();
  registry.registerMetric({
    name,
    get: async () => ({ name, help, type: "counter", aggregator: "sum", values: [...series.values()].map(({ labels, value }) => ({ labels, value })) }),
    reset: () => series.clear(),
  } as unknown as Parameters<Registry["registerMetric"]>[0]);
  return {
    /** `key` names the label set; `labels` makes it, once. */
    add(key: string, labels: () => Labels, n = 1) {
      let s = series.get(key);
      if (!s) series.set(key, (s = { labels: labels(), value: 0 }));
      s.value += n;
    },
  };
}

function histogram(registry: Registry, name: string, help: string, buckets: readonly number[]) {
  const series = new Map<string, { labels: Labels; counts: number[]; sum: number; count: number }>();
  registry.registerMetric({
    name,
    get: async () => ({
      name,
      help,
      type: "histogram",
      aggregator: "sum",
      values: [...series.values()].flatMap(({ labels, counts, sum, count }) => {
        let cumulative = 0;
        return [
          ...buckets.map((le, i) => ({ metricName: `${name}_bucket`, labels: { ...labels, le: String(le) }, value: (cumulative += counts[i]!) })),
          { metricName: `${name}_bucket`, labels: { ...labels, le: "+Inf" }, value: count },
          { metricName: `${name}_sum`, labels, value: sum },
          { metricName: `${name}_count`, labels, value: count },
        ];
      }),
    }),
    reset: () => series.clear(),
  } as unknown as Parameters<Registry["registerMetric"]>[0]);
  return {
    observe(key: string, labels: () => Labels, value: number) {
      let s = series.get(key);
      if (!s) series.set(key, (s = { labels: labels(), counts: buckets.map(() => 0), sum: 0, count: 0 }));
      const i = buckets.findIndex((le) => value <= le);
      if (i >= 0) s.counts[i]!++;
      s.sum += value;
      s.count++;
    },
  };
}
