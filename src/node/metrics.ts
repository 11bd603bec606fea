import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
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
}

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

  const requests = new Counter({
    name: `${PREFIX}http_requests_total`,
    help: "Requests answered, by route kind, status class and content encoding.",
    labelNames: ["route", "status_class", "encoding"],
    registers,
  });
  const responseBytes = new Counter({
    name: `${PREFIX}http_response_bytes_total`,
    help: "Body bytes sent (what really left: an aborted download counts what it got).",
    labelNames: ["route"],
    registers,
  });
  const duration = new Histogram({
    name: `${PREFIX}http_request_duration_seconds`,
    help: "Request start to the last byte sent.",
    labelNames: ["route"],
    buckets: [0.001, 0.005, 0.025, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
    registers,
  });
  const inFlight = new Gauge({ name: `${PREFIX}http_requests_in_flight`, help: "Requests being answered now.", registers });
  const storeCalls = new Counter({
    name: `${PREFIX}store_operations_total`,
    help: "Calls to the object store (each retry counts), by operation and outcome.",
    labelNames: ["operation", "outcome"],
    registers,
  });
  const storeLatency = new Histogram({
    name: `${PREFIX}store_operation_duration_seconds`,
    help: "Time the object store took to answer a call (to the first byte of a body).",
    labelNames: ["operation"],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers,
  });
  const cacheLookups = new Counter({
    name: `${PREFIX}cache_lookups_total`,
    help: "Object reads by how the caches answered: hit (memory), shared (waited for another request's load), miss, bypass (too large for memory), disk (a disk copy).",
    labelNames: ["outcome"],
    registers,
  });
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
  for (const route of ["plugin", "metadata"] satisfies RouteKind[]) {
    for (const status_class of ["2xx", "4xx", "5xx"]) requests.labels({ route, status_class, encoding: "identity" });
  }

  return {
    registry,
    started: () => inFlight.inc(),
    finished(e) {
      inFlight.dec();
      const encoding = ENCODINGS.has(e.encoding) ? e.encoding : "other";
      requests.inc({ route: e.route, status_class: `${Math.floor(e.status / 100)}xx`, encoding });
      responseBytes.inc({ route: e.route }, e.bytes);
      duration.observe({ route: e.route }, e.seconds);
    },
    store(operation, outcome, seconds) {
      storeCalls.inc({ operation, outcome });
      storeLatency.observe({ operation }, seconds);
    },
    cache: (outcome) => cacheLookups.inc({ outcome }),
    evicted: () => evictions.inc(),
    render: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  };
}
