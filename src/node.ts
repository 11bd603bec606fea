import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { createApp, createFileHandler, createHealthHandler } from "./app.ts";
import { ConfigError } from "./config/env.ts";
import { PLUGINS } from "./core/layout.ts";
import type { HasherFactory } from "./core/metadata.ts";
import { requestId } from "./core/request-id.ts";
import { loadClusterView } from "./http/listing.ts";
import { threadedCompare } from "./node/bcrypt-thread.ts";
import { loadConfig, type ServerConfig } from "./node/config.ts";
import { errorLog } from "./node/error-log.ts";
import { accessLog, traces } from "./node/exchange.ts";
import { readiness, serve } from "./node/lifecycle.ts";
import { requestListener } from "./node/listener.ts";
import { keepRequestsYoung, ownMemorySettings } from "./node/memory.ts";
import { serverMetrics } from "./node/metrics.ts";
import { nodeSender } from "./node/send.ts";
import { loadSendfile, type Sendfile } from "./node/sendfile.ts";
import { sharedDescriptors, storeStack, type StoreStack } from "./node/store-stack.ts";
import { LocationError } from "./storage/location.ts";
import type { OpenFiles } from "./storage/open-files.ts";
import { openStore } from "./storage/open.ts";
import type { Store } from "./storage/store.ts";

/**
 * The Node entry: configuration, the store and its layers (node/store-stack.ts), the handlers
 * (app.ts), the request listener (node/listener.ts), and listening, draining and stopping
 * (node/lifecycle.ts). The Workers entry (worker.ts) wires the same app over R2.
 */

declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";

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

/** The configuration, or undefined with the problems printed (exit 1). */
function configuration(compare: ReturnType<typeof threadedCompare>): ServerConfig | undefined {
  try {
    return loadConfig(process.env, { compare });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    console.error(error.message);
    process.exitCode = 1;
    return undefined;
  }
}

/** sendfile as SENDFILE asks, or undefined with the reason printed (exit 1) when it is required and missing. */
function kernelSender(config: ServerConfig): Sendfile | undefined {
  try {
    return loadSendfile(config.sendfile);
  } catch (error) {
    console.error(`invalid configuration:\n  - ${(error as Error).message}`);
    process.exitCode = 1;
    return undefined;
  }
}

async function backendOf(location: NonNullable<ServerConfig["store"]>, config: ServerConfig, openFiles: OpenFiles | undefined): Promise<Store | undefined> {
  try {
    return await openStore(location, { ...config.s3, timeoutMs: config.storePolicy.stallMs }, { openFiles });
  } catch (error) {
    if (!(error instanceof LocationError)) throw error;
    console.error(`invalid configuration:\n  - STORE: ${error.message}`);
    process.exitCode = 1;
    return undefined;
  }
}

async function main(): Promise<void> {
  const tuning = ownMemorySettings(); // first: it may replace the process
  keepRequestsYoung();
  const bcrypt = threadedCompare();
  const config = configuration(bcrypt);
  if (!config) return;
  const location = config.store ?? { kind: "file" as const, root: EXAMPLE_STORE };
  const openFiles = sharedDescriptors(config);
  const backend = await backendOf(location, config, openFiles);
  if (!backend) return;

  // The metrics read the stack and the stack reports to the metrics: each sees the other late.
  let stack: StoreStack | undefined;
  const ready = readiness(() => stack!.policy);
  const metrics = config.metrics.enabled
    ? serverMetrics({
        version: VERSION,
        ready: ready.ready,
        cacheBytes: () => stack?.memory?.size ?? 0,
        cacheObjects: () => stack?.memory?.entries.objects ?? 0,
        clusterCheck: () => loadClusterView(stack!.store),
      })
    : undefined;
  const sendfile = kernelSender(config);
  if (!sendfile) return;
  stack = storeStack(backend, location, config, () => metrics, sendfile.send !== undefined, openFiles);
  const { store } = stack;

  const logError = errorLog(config.logFormat, () => traces.getStore()?.id);
  const serveFile = createFileHandler({ store, cacheControl: config.cacheControl, aliasCacheControl: config.aliasCacheControl, hasher: nodeHasher, access: config.access, logError });
  const app = createApp({
    store,
    fileHandler: serveFile,
    ready: ready.ready,
    access: config.access,
    clientAddress: () => traces.getStore()?.client,
    requestId: () => traces.getStore()?.id ?? requestId(undefined),
    logError,
    ...(metrics && config.metrics.port === undefined ? { metrics: metrics.render } : {}),
  });
  const log = accessLog(config.logFormat);
  const listener = requestListener({
    trustedProxies: config.access.trustedProxies,
    serveFile,
    probe: createHealthHandler(ready.ready, logError),
    fetch: app.fetch,
    send: nodeSender({ streamBudget: config.streamBudget, sendfile: sendfile.send }),
    started: () => metrics?.started(),
    finished: (exchange) => {
      log(exchange);
      metrics?.finished(exchange);
    },
    logError,
  });

  serve({
    config,
    listener,
    metrics,
    readiness: ready,
    summary: `serving ${store.description} (higress-plugin-server ${VERSION}, Node ${process.versions.node}; ${tuning.summary}; ${sendfile.summary})`,
    close: () => Promise.all([store.close?.(), bcrypt.close()]),
  });
  // Readiness is reported by /readyz; at start only say it, since the store (MinIO in the same
  // chart, for instance) may come up after us.
  backend.list(PLUGINS).catch(logError);
}

await main();
