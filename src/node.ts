import { createHash } from "node:crypto";
import { createServer } from "node:http";
import { fileURLToPath } from "node:url";
import { getRequestListener } from "@hono/node-server";
import { createApp } from "./app.ts";
import type { Digest } from "./core/metadata.ts";
import { accessLog } from "./node/access-log.ts";
import { ConfigError, loadConfig } from "./node/config.ts";
import { LocationError } from "./storage/location.ts";
import { CachedStore } from "./storage/cached.ts";
import { openStore } from "./storage/open.ts";
import type { Store } from "./storage/store.ts";

/** The embedded default: example plugins shipped beside the code (`dist/` and `src/` are both one level down). */
const EXAMPLE_STORE = fileURLToPath(new URL("../examples/store", import.meta.url));

const nodeDigest: Digest = async (algorithm, data) =>
  createHash(algorithm === "MD5" ? "md5" : "sha256").update(data).digest("hex");

async function main(): Promise<void> {
  let config;
  try {
    config = loadConfig(process.env);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exitCode = 1;
    return;
  }
  const location = config.store ?? { kind: "file" as const, root: EXAMPLE_STORE };
  let store: Store;
  try {
    store = await openStore(location, { ...config.s3 });
  } catch (error) {
    if (!(error instanceof LocationError)) throw error;
    console.error(`invalid configuration:\n  - STORE: ${error.message}`);
    process.exitCode = 1;
    return;
  }

  if (config.cache.ttlSeconds > 0) {
    store = new CachedStore(store, { ttlMs: config.cache.ttlSeconds * 1000, maxBytes: config.cache.maxBytes });
  }
  const app = createApp({ store, cacheControl: config.cacheControl, digest: nodeDigest });
  const server = createServer(getRequestListener(app.fetch));
  server.on("request", accessLog(config.logFormat));
  server.keepAliveTimeout = 65_000; // longer than common load balancer idle timeouts, so they close first

  server.listen(config.port, config.host, () => {
    const address = server.address();
    const port = typeof address === "object" && address ? address.port : config.port;
    console.log(`listening on http://${config.host}:${port} serving ${store.description}`);
  });
  server.on("error", (error) => {
    console.error(`cannot listen on ${config.host}:${config.port}: ${error.message}`);
    process.exitCode = 1;
  });

  // Readiness is reported by /readyz; at start only warn, since the store (MinIO in the same
  // chart, for instance) may come up after us.
  store.list("plugins/").catch((error: Error) => console.error(`warning: store not reachable yet: ${error.message}`));

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      server.closeAllConnections();
      return;
    }
    stopping = true;
    console.log(`${signal}: finishing requests in flight (up to ${config.shutdownGraceMs / 1000}s)`);
    const force = setTimeout(() => server.closeAllConnections(), config.shutdownGraceMs);
    force.unref();
    // close() only drops connections idle at this moment; a keep-alive connection whose
    // download finishes later would hold shutdown open until its idle timeout.
    const sweep = setInterval(() => server.closeIdleConnections(), 100);
    server.close(() => {
      clearTimeout(force);
      clearInterval(sweep);
      void Promise.resolve(store.close?.()).finally(() => console.log("stopped"));
    });
    server.closeIdleConnections();
  };
  process.on("SIGTERM", () => stop("SIGTERM"));
  process.on("SIGINT", () => stop("SIGINT"));
}

await main();
