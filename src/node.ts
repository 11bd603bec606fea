import { createHash } from "node:crypto";
import type { IncomingMessage, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { forwardedClient } from "./access/addresses.ts";
import { createApp, createFileHandler, createHealthHandler } from "./app.ts";
import { StoreUnavailableError } from "./core/errors.ts";
import { PLUGINS } from "./core/layout.ts";
import type { HasherFactory } from "./core/metadata.ts";
import { requestId } from "./core/request-id.ts";
import { isDownload, routeKind } from "./core/routes.ts";
import { loadClusterView } from "./http/listing.ts";
import { ConfigError } from "./config/env.ts";
import { loadConfig } from "./node/config.ts";
import { errorLog } from "./node/error-log.ts";
import { accessLog, track, traces, type Exchange, type RequestTrace } from "./node/exchange.ts";
import { threadedCompare } from "./node/bcrypt-thread.ts";
import { ownMemorySettings } from "./node/memory.ts";
import { serverMetrics } from "./node/metrics.ts";
import { nodeSender } from "./node/send.ts";
import { CachedStore, type CacheOutcome } from "./storage/cached.ts";
import { DiskCache } from "./storage/disk-cache.ts";
import { LocationError } from "./storage/location.ts";
import { ObservedStore } from "./storage/observed.ts";
import { openStore } from "./storage/open.ts";
import { PolicyStore } from "./storage/policy.ts";
import type { Store } from "./storage/store.ts";

/**
 * Required, not imported: an ES import of node:http reads every export, WebSocket among them,
 * which loads undici and node:http2 (5 MiB of the idle server; nodejs/node#59686).
 */
const { createServer } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";

/** Segments that start with a letter, digit or `_` hold no dot segment and nothing a URL parser would change. */
const PLAIN_PLUGIN_PATH = /^\/plugins(?:\/[A-Za-z0-9_][A-Za-z0-9._+-]*)+$/;

/** The embedded default: example plugins shipped beside the code (`dist/` and `src/` are both one level down). */
const EXAMPLE_STORE = fileURLToPath(new URL("../examples/store", import.meta.url));

/** MD5 and SHA-256 as the module streams by. */
const nodeHasher: HasherFactory = () => {
  const md5 = createHash("md5");
  const sha256 = createHash("sha256");
  let size = 0;
  return {
    update(chunk) {
      md5.update(chunk);
      sha256.update(chunk);
      size += chunk.length;
    },
    digest: async () => ({ md5: md5.digest("hex"), sha256: sha256.digest("hex"), size }),
  };
};

/**
 * V8 collects a dropped buffer when its own heap needs it, not when the process's memory does:
 * a burst that cycles more plugins through the cache than it holds would leave hundreds of MiB of
 * dead buffers behind. Once 32 MiB of cached buffers are dropped, a collection runs.
 */
function collectEarly(): ((bytes: number) => void) | undefined {
  let gc: unknown;
  try {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc");
  } catch {
    // a runtime without it: V8's own schedule then
  }
  if (typeof gc !== "function") return undefined;
  let dropped = 0;
  let scheduled = false;
  return (bytes) => {
    dropped += bytes;
    if (dropped < 32 * 1024 * 1024 || scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      dropped = 0;
      (gc as () => void)();
    });
  };
}

/**
 * During a burst, a request's objects live for seconds (the download), so V8 learns to allocate
 * them in the old generation from then on ("pretenuring"); after the burst, small answers then
 * fill the old space and bring a mark-compact every 600 ms (p99 of metadata.txt 9-15 ms instead
 * of 4). Request objects die young in the steady state this server spends most of its life in.
 */
function keepRequestsYoung(): void {
  try {
    setFlagsFromString("--no-allocation-site-pretenuring");
  } catch {
    // a runtime without the flag: V8's own heuristics then
  }
}

async function main(): Promise<void> {
  const tuning = ownMemorySettings(); // first: it may replace the process
  keepRequestsYoung();
  const bcrypt = threadedCompare();
  let config;
  try {
    config = loadConfig(process.env, { compare: bcrypt });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exitCode = 1;
    return;
  }
  const location = config.store ?? { kind: "file" as const, root: EXAMPLE_STORE };
  let backend: Store;
  try {
    backend = await openStore(location, { ...config.s3, timeoutMs: config.storePolicy.stallMs });
  } catch (error) {
    if (!(error instanceof LocationError)) throw error;
    console.error(`invalid configuration:\n  - STORE: ${error.message}`);
    process.exitCode = 1;
    return;
  }

  let draining = false;
  let readyUntil = 0;
  const ready = async () => {
    if (draining) throw new StoreUnavailableError("shutting down", { retryAfter: 1 });
    if (Date.now() < readyUntil) return;
    // Past the caches, with a deadline of its own and no retries: the kubelet must see "not ready" in time.
    await policy.list(PLUGINS, { timeoutMs: 1_500, retries: 0 });
    readyUntil = Date.now() + 1_000; // a flood of probes costs the store one listing a second at most
  };
  let memory: CachedStore | undefined;
  const metrics = config.metrics.enabled
    ? serverMetrics({ version: VERSION, ready, cacheBytes: () => memory?.size ?? 0, cacheObjects: () => memory?.entries.objects ?? 0, clusterCheck: () => loadClusterView(store) })
    : undefined;

  // Layers, innermost first: the backend, observed; deadlines, retries and the breaker; disk
  // copies of large objects (remote stores only: a file store is a disk already); the memory cache.
  const observed = new ObservedStore(backend, (operation, outcome, seconds) => {
    metrics?.store(operation, outcome, seconds);
    const trace = traces.getStore();
    if (trace) {
      trace.storeSeconds += seconds;
      trace.storeCalls++;
    }
  });
  const policy = new PolicyStore(observed, config.storePolicy);
  const lookup = (outcome: CacheOutcome) => {
    metrics?.cache(outcome);
    const trace = traces.getStore();
    if (trace) trace.cache = outcome;
  };
  let store: Store = policy;
  const diskDir = config.diskCache?.dir ?? (location.kind === "s3" ? path.join(tmpdir(), "higress-plugin-server-cache") : undefined);
  if (location.kind === "s3" && diskDir && config.cache.ttlSeconds > 0) {
    store = new DiskCache(store, { dir: diskDir, maxBytes: config.diskCache?.maxBytes ?? 2048 * 1024 * 1024, ttlMs: config.cache.ttlSeconds * 1000, onLookup: lookup });
  }
  if (config.cache.ttlSeconds > 0) {
    const onDrop = collectEarly();
    store = memory = new CachedStore(store, {
      ttlMs: config.cache.ttlSeconds * 1000,
      maxBytes: config.cache.maxBytes,
      onLookup: lookup,
      ...(metrics ? { onEvict: metrics.evicted } : {}),
      ...(onDrop ? { onDrop } : {}),
    });
  }

  const logError = errorLog(config.logFormat, () => traces.getStore()?.id);
  const send = nodeSender({ streamBudget: config.streamBudget });
  const serveFile = createFileHandler({
    store,
    cacheControl: config.cacheControl,
    aliasCacheControl: config.aliasCacheControl,
    hasher: nodeHasher,
    access: config.access,
    logError,
  });
  const app = createApp({
    store,
    fileHandler: serveFile,
    ready,
    access: config.access,
    clientAddress: () => traces.getStore()?.client,
    requestId: () => traces.getStore()?.id ?? requestId(undefined),
    logError,
    ...(metrics && config.metrics.port === undefined ? { metrics: metrics.render } : {}),
  });
  const probe = createHealthHandler(ready, logError);
  // The Hono adapter works with web Requests and Responses, and so loads undici: only for the
  // first request that needs it (the catalog, the API, a 404); gateways and probes never do.
  let adapter: Promise<(req: IncomingMessage, res: ServerResponse) => Promise<void>> | undefined;
  const viaApp = (req: IncomingMessage, res: ServerResponse) =>
    (adapter ??= import("@hono/node-server").then(({ getRequestListener }) => getRequestListener(app.fetch))).then(
      (listener) => listener(req, res),
      (error: unknown) => {
        logError(error);
        res.destroy();
      },
    );
  const log = accessLog(config.logFormat);
  const trusted = config.access.trustedProxies;
  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const peer = req.socket.remoteAddress;
    // Headers a client could forge are read only from a trusted proxy (and not at all without one).
    const fromProxy = trusted?.contains(peer) ?? false;
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(",") : value;
    };
    const trace: RequestTrace = {
      id: requestId(fromProxy ? header("x-request-id") : undefined),
      client: fromProxy ? forwardedClient(peer, header("x-forwarded-for"), trusted!) : peer,
      storeSeconds: 0,
      storeCalls: 0,
      cache: undefined,
    };
    metrics?.started();
    const target = req.url ?? "/";
    const method = req.method === "GET" || req.method === "HEAD" ? req.method : undefined;
    // Plugin files (every gateway download, metadata.txt, revalidations) skip the Hono adapter:
    // the same handler, called with the Node request as it is and answered straight on the socket.
    const fast = method !== undefined && target.startsWith("/plugins/");
    // As the app sees the path (dot segments resolved); a plain one, the usual, needs no URL parser.
    const pathname = fast ? (PLAIN_PLUGIN_PATH.test(target) ? target : new URL(target, "http://localhost").pathname) : target.split("?", 1)[0]!;
    const route = routeKind(pathname);
    const finished = (exchange: Exchange) => {
      log(exchange);
      metrics?.finished(exchange);
    };
    // Probes too: the kubelet must not be what loads the adapter.
    const direct = fast ? (isDownload(route) ? serveFile : undefined) : route === "health" ? probe : undefined;
    if (method && direct) {
      // The reply says what is sent and the sender how much left: no watcher around the response.
      const started = performance.now();
      return traces.run(trace, () =>
        direct({ method, pathname, header, client: trace.client, id: trace.id })
          .then((reply) =>
            send(reply, res, (bytes) =>
              finished({
                trace,
                method,
                path: target,
                route,
                status: reply.status,
                encoding: reply.headers["Content-Encoding"] ?? "identity",
                bytes,
                seconds: (performance.now() - started) / 1000,
                userAgent: req.headers["user-agent"] ?? "-",
              }),
            ),
          )
          .catch((error: unknown) => {
            logError(error); // a reply Node refused to write (never expected): drop the connection, not the process
            res.destroy();
          }),
      );
    }
    track(req, res, trace, route, finished);
    return traces.run(trace, () => viaApp(req, res));
  };
  const server = createServer(handle);
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts, so they close first

  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    console.log(`listening on http://${config.host}:${port} serving ${store.description} (higress-plugin-server ${VERSION}, Node ${process.versions.node}; ${tuning.summary})`);
  });
  server.on("error", (error) => {
    console.error(`cannot listen on ${config.host}:${config.port}: ${error.message}`);
    process.exitCode = 1;
  });

  // Metrics on a port of their own: open (no credentials), for a Service that stays inside the cluster.
  const metricsServer =
    metrics && config.metrics.port !== undefined
      ? createServer((req, res) => {
          if (req.url?.split("?", 1)[0] !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
            res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("only /metrics is served on this port\n");
            return;
          }
          void metrics.render().then(
            ({ contentType, body }) => res.writeHead(200, { "Content-Type": contentType, "Cache-Control": "no-store" }).end(req.method === "HEAD" ? undefined : body),
            () => res.writeHead(500).end(),
          );
        })
      : undefined;
  metricsServer?.listen(config.metrics.port, config.host, () => {
    const address = metricsServer.address();
    console.log(`metrics on http://${config.host}:${typeof address === "object" && address ? address.port : config.metrics.port}/metrics`);
  });
  metricsServer?.on("error", (error) => {
    console.error(`cannot listen on ${config.host}:${config.metrics.port} for metrics: ${error.message}`);
    process.exitCode = 1;
  });

  // Readiness is reported by /readyz; at start only warn, since the store (MinIO in the same
  // chart, for instance) may come up after us.
  backend.list(PLUGINS).catch(logError);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      server.closeAllConnections();
      return;
    }
    stopping = true;
    // Rollout order: report not ready first and keep accepting while endpoints are updated
    // (the load balancer still sends requests for a moment), then stop accepting and let
    // downloads in flight finish within the grace period.
    draining = true;
    const delay = signal === "SIGTERM" ? config.drainDelayMs : 0; // Ctrl-C needs no load balancer to catch up
    console.log(`${signal}: not ready; accepting for ${delay / 1000}s, then finishing requests in flight (up to ${config.shutdownGraceMs / 1000}s)`);
    setTimeout(() => {
      const force = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
      force.unref();
      // close() only drops connections idle at this moment; a keep-alive connection whose
      // download finishes later would hold shutdown open until its idle timeout.
      const sweep = setInterval(() => server.closeIdleConnections(), 100);
      metricsServer?.close();
      server.close(() => {
        clearTimeout(force);
        clearInterval(sweep);
        void Promise.all([store.close?.(), bcrypt.close()]).finally(() => console.log("stopped"));
      });
      server.closeIdleConnections();
    }, delay).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

await main();
