import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { createRequire } from "node:module";
import { StoreUnavailableError } from "../core/errors.ts";
import { PLUGINS } from "../core/layout.ts";
import type { PolicyStore } from "../storage/policy.ts";
import type { ServerConfig } from "./config.ts";
import type { ServerMetrics } from "./metrics.ts";

/**
 * Required, not imported: an ES import of node:http reads every export, WebSocket among them,
 * which loads undici and node:http2 (5 MiB of the idle server; nodejs/node#59686).
 */
const { createServer } = createRequire(import.meta.url)("node:http") as typeof import("node:http");

export interface Readiness {
  /** /readyz: throws while the store does not answer, and once draining. */
  readonly ready: () => Promise<void>;
  readonly drain: () => void;
}

export function readiness(policy: () => PolicyStore): Readiness {
  let draining = false;
  let readyUntil = 0;
  return {
    async ready() {
      if (draining) throw new StoreUnavailableError("shutting down", { retryAfter: 1 });
      if (Date.now() < readyUntil) return;
      // Past the caches, with a deadline of its own and no retries: the kubelet must see "not ready" in time.
      await policy().list(PLUGINS, { timeoutMs: 1_500, retries: 0 });
      readyUntil = Date.now() + 1_000; // a flood of probes costs the store one listing a second at most
    },
    drain: () => void (draining = true),
  };
}

export interface Serving {
  readonly config: ServerConfig;
  readonly listener: (req: IncomingMessage, res: ServerResponse) => void;
  readonly metrics: ServerMetrics | undefined;
  readonly readiness: Readiness;
  /** The rest of the start line: what is served, the version, the memory settings. */
  readonly summary: string;
  /** After the last connection: the store's and the bcrypt thread's own shutdown. */
  readonly close: () => Promise<unknown>;
}

/** Listens (and, with METRICS_PORT, serves /metrics apart), and stops gracefully on SIGTERM and SIGINT. */
export function serve(parts: Serving): void {
  const { config, metrics } = parts;
  const server = createServer(parts.listener);
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts, so they close first
  server.listen(config.port, config.host, () => {
    const address = server.address();
    console.log(`listening on http://${config.host}:${typeof address === "object" && address ? address.port : config.port} ${parts.summary}`);
  });
  server.on("error", (error) => {
    console.error(`cannot listen on ${config.host}:${config.port}: ${error.message}`);
    process.exitCode = 1;
  });
  const metricsServer = metrics && config.metrics.port !== undefined ? serveMetrics(config, metrics) : undefined;

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
    parts.readiness.drain();
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
        void parts.close().finally(() => console.log("stopped"));
      });
      server.closeIdleConnections();
    }, delay).unref();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

/** Metrics on a port of their own: open (no credentials), for a Service that stays inside the cluster. */
function serveMetrics(config: ServerConfig, metrics: ServerMetrics): Server {
  const server = createServer((req, res) => {
    if (req.url?.split("?", 1)[0] !== "/metrics" || (req.method !== "GET" && req.method !== "HEAD")) {
      res.writeHead(404, { "Content-Type": "text/plain; charset=utf-8" }).end("only /metrics is served on this port\n");
      return;
    }
    void metrics.render().then(
      ({ contentType, body }) => res.writeHead(200, { "Content-Type": contentType, "Cache-Control": "no-store" }).end(req.method === "HEAD" ? undefined : body),
      () => res.writeHead(500).end(),
    );
  });
  server.listen(config.metrics.port, config.host, () => {
    const address = server.address();
    console.log(`metrics on http://${config.host}:${typeof address === "object" && address ? address.port : config.metrics.port}/metrics`);
  });
  server.on("error", (error) => {
    console.error(`cannot listen on ${config.host}:${config.metrics.port} for metrics: ${error.message}`);
    process.exitCode = 1;
  });
  return server;
}
