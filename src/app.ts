import { Hono, type Context } from "hono";
import { parsePreconditions } from "./core/conditional.ts";
import { BadRequestError, HttpError, MethodNotAllowedError, NotFoundError } from "./core/errors.ts";
import { checkName } from "./core/names.ts";
import { PLUGINS } from "./core/layout.ts";
import { webDigest, type Digest } from "./core/metadata.ts";
import { prefersJson } from "./core/negotiate.ts";
import { parsePluginPath } from "./core/paths.ts";
import { catalog, pluginDetail, versionFiles } from "./http/listing.ts";
import { servePluginFile } from "./http/plugin-file.ts";
import { objectRequest } from "./http/serve-object.ts";
import type { Store } from "./storage/store.ts";

export interface AppOptions {
  readonly store: Store;
  /** Cache-Control for files under versioned paths; they never change once published. */
  readonly cacheControl?: string;
  /** MD5 and SHA-256, for metadata derived on the fly; defaults to Web Crypto. */
  readonly digest?: Digest;
  /** Where unexpected errors go; defaults to console.error. */
  readonly logError?: (error: unknown) => void;
}

export const DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable";
const ALLOWED_METHODS = ["GET", "HEAD"] as const;

/** The whole HTTP surface, free of any runtime: the Node and Worker entries only adapt it. */
export function createApp(options: AppOptions): Hono {
  const { store } = options;
  const files = {
    store,
    cacheControl: options.cacheControl ?? DEFAULT_CACHE_CONTROL,
    digest: options.digest ?? webDigest,
  };
  const logError = options.logError ?? ((error: unknown) => console.error(error));
  const app = new Hono();

  app.use(async (c, next) => {
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD") throw new MethodNotAllowedError(method, ALLOWED_METHODS);
    await next();
    c.res.headers.set("X-Content-Type-Options", "nosniff");
  });

  // The catalog; also what Higress's docker-compose health check (`curl -sf /`) reads.
  app.get("/", (c) => catalog(c, store));
  app.get("/api/v1/plugins", (c) => catalog(c, store, true));
  app.get("/api/v1/plugins/:name", (c) => {
    const name = c.req.param("name");
    const problem = checkName(name);
    if (problem) throw new BadRequestError(problem);
    return pluginDetail(c, store, name, true);
  });

  app.get("/healthz", (c) => c.text("ok\n"));

  app.get("/readyz", async (c) => {
    await store.list(PLUGINS); // throws StoreUnavailableError (503) when the store cannot be read
    c.header("Cache-Control", "no-store");
    return c.text("ready\n");
  });

  const plugins = async (c: Context) => {
    const path = parsePluginPath(new URL(c.req.url).pathname);
    switch (path.kind) {
      case "index":
        return catalog(c, store);
      case "plugin":
        return pluginDetail(c, store, path.name);
      case "version":
        return versionFiles(c, store, path.name, path.version);
      case "file": {
        const method = c.req.method === "HEAD" ? "HEAD" : "GET";
        const req = objectRequest(method, c.req.raw.headers, parsePreconditions(c.req.raw.headers));
        return servePluginFile(files, req, path.name, path.version, path.file);
      }
    }
  };
  app.get("/plugins", plugins);
  app.get("/plugins/*", plugins);

  app.notFound(() => {
    throw new NotFoundError("not found: plugins are served under /plugins/<name>/<version>/plugin.wasm");
  });

  app.onError((error, c) => {
    const known = error instanceof HttpError ? error : undefined;
    if (!known || known.status >= 500) logError(error);
    const status = known?.status ?? 500;
    const message = known?.message ?? "internal error";
    const headers: Record<string, string> = { "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", ...known?.headers };
    if (prefersJson(c.req.header("accept"))) {
      return c.json({ error: { status, message, ...known?.details } }, status, headers);
    }
    return c.text(`${message}\n`, status, headers);
  });

  return app;
}
