import { Hono, type Context } from "hono";
import { guard, privateCacheControl, unrestricted } from "./access/guard.ts";
import type { AccessSettings } from "./access/settings.ts";
import { parsePreconditions } from "./core/conditional.ts";
import { BadRequestError, MethodNotAllowedError, NotFoundError } from "./core/errors.ts";
import { checkName } from "./core/names.ts";
import { PLUGINS } from "./core/layout.ts";
import { webHasher, type HasherFactory } from "./core/metadata.ts";
import { parsePluginPath } from "./core/paths.ts";
import { requestId } from "./core/request-id.ts";
import { rawPath, routeKind } from "./core/routes.ts";
import { catalog, clusterCheck, pluginDetail, versionFiles } from "./http/listing.ts";
import { derivedMetadataCache, servePluginFile } from "./http/plugin-file.ts";
import { errorReply, isServerError } from "./http/error-reply.ts";
import { toResponse, type Reply } from "./http/reply.ts";
import { objectRequest } from "./http/serve-object.ts";
import type { Store } from "./storage/store.ts";

export interface AppOptions {
  readonly store: Store;
  /** Cache-Control for files under versioned paths; they never change once published. */
  readonly cacheControl?: string;
  /** Cache-Control for files served through an alias: an alias can be re-pointed, so never immutable. */
  readonly aliasCacheControl?: string;
  /** MD5 and SHA-256, for metadata derived on the fly; defaults to Web Crypto. */
  readonly hasher?: HasherFactory;
  /** Resolves when the server can serve (its store answers); throws an HttpError when not. Defaults to listing the store. */
  readonly ready?: () => Promise<void>;
  /** Where errors of the server (5xx) go, with their details; defaults to console.error. */
  readonly logError?: (error: unknown) => void;
  /** Who may download and browse; undefined: everyone. */
  readonly access?: AccessSettings;
  /** The client's address (X-Forwarded-For resolved from trusted proxies), for ALLOW_CIDRS. */
  readonly clientAddress?: (c: Context) => string | undefined;
  /** The Prometheus exposition, served at /metrics when given. */
  readonly metrics?: () => Promise<{ readonly contentType: string; readonly body: string }>;
  /** The request's id; defaults to a new UUID per request. An entry may take a trusted proxy's. */
  readonly requestId?: (c: Context) => string;
  /** The plugin file handler, when the entry also calls it directly (the Node entry's fast path): one set of caches for both. */
  readonly fileHandler?: FileHandler;
}

/** A plugin file request (GET or HEAD of /plugins/<name>/<version>/<file>), free of any runtime's request type. */
export interface FileRequest {
  readonly method: "GET" | "HEAD";
  readonly pathname: string;
  /** A request header by its lower-case name. */
  header(name: string): string | undefined;
  /** The client's address (X-Forwarded-For resolved from trusted proxies), for ALLOW_CIDRS. */
  readonly client: string | undefined;
  readonly id: string;
  /** The caller ran the access guard already (the Hono middleware, the worker before its edge cache). */
  readonly accessChecked?: boolean;
}

/** Answers a plugin file request with a reply, errors included (rendered as every route renders them). */
export type FileHandler = (request: FileRequest) => Promise<Reply>;

/**
 * The plugin file route without Hono: access, path, conditionals, ranges, encoding, the store.
 * It is most of the traffic (every gateway download, metadata.txt, 304s), so the Node entry calls
 * it straight from its request listener; the app's route calls the same function.
 */
export function createFileHandler(options: Pick<AppOptions, "store" | "cacheControl" | "aliasCacheControl" | "hasher" | "access" | "logError">): FileHandler {
  const { access } = options;
  const restricted = !unrestricted(access);
  const cacheControl = options.cacheControl ?? DEFAULT_CACHE_CONTROL;
  const aliasCacheControl = options.aliasCacheControl ?? DEFAULT_ALIAS_CACHE_CONTROL;
  const files = {
    store: options.store,
    cacheControl: access?.auth ? privateCacheControl(cacheControl) : cacheControl,
    aliasCacheControl: access?.auth ? privateCacheControl(aliasCacheControl) : aliasCacheControl,
    hasher: options.hasher ?? webHasher,
    derived: derivedMetadataCache(),
  };
  const logError = options.logError ?? logToConsole;
  return async (request) => {
    try {
      if (restricted && !request.accessChecked) {
        await guard(access, { pathname: request.pathname, authorization: request.header("authorization"), client: request.client });
      }
      const path = parsePluginPath(request.pathname);
      if (path.kind !== "file") throw new NotFoundError("not a plugin file path");
      const conditions = parsePreconditions({ get: (name) => request.header(name) ?? null });
      const reply = await servePluginFile(files, objectRequest(request.method, request.header, conditions), path.name, path.version, path.file);
      reply.headers["X-Request-Id"] = request.id; // the handlers build a fresh header record per reply
      return reply;
    } catch (error) {
      if (isServerError(error)) logError(error);
      return errorReply(error, request.header("accept"), request.id);
    }
  };
}

/** A liveness or readiness probe (`/healthz`, `/readyz`), free of any runtime's request type. */
export type HealthHandler = (request: Pick<FileRequest, "pathname" | "header" | "id">) => Promise<Reply>;

const OK = new TextEncoder().encode("ok\n");
const READY = new TextEncoder().encode("ready\n");

/**
 * The probes as plain replies: the Node entry answers the kubelet with them without web Request
 * and Response objects, whose implementation (undici) Node loads on their first use.
 */
export function createHealthHandler(ready: () => Promise<void>, logError: (error: unknown) => void = logToConsole): HealthHandler {
  return async ({ pathname, header, id }) => {
    try {
      const readiness = pathname === "/readyz";
      if (readiness) await ready(); // throws StoreUnavailableError (503) when the store cannot be read
      const headers: Record<string, string> = { "Content-Type": "text/plain; charset=UTF-8", "X-Content-Type-Options": "nosniff", "X-Request-Id": id };
      if (readiness) headers["Cache-Control"] = "no-store";
      return { status: 200, headers, body: readiness ? READY : OK };
    } catch (error) {
      if (isServerError(error)) logError(error);
      return errorReply(error, header("accept"), id);
    }
  };
}

export type AppEnv = { Variables: { requestId: string } };

/** The env an entry passes to app.fetch when it ran the access guard itself (the worker does, before its edge cache). */
export interface AccessChecked {
  readonly accessChecked: true;
}

const logToConsole = (error: unknown) => console.error(error);

export const DEFAULT_CACHE_CONTROL = "public, max-age=31536000, immutable";
export const DEFAULT_ALIAS_CACHE_CONTROL = "public, max-age=300";
/** What is wrong with the Cache-Control settings (named as the Node variables and the worker's vars are). */
export function cacheControlProblems(cacheControl: string | undefined, aliasCacheControl: string | undefined): string[] {
  const problems: string[] = [];
  if (cacheControl !== undefined && /[\r\n\0]/.test(cacheControl)) problems.push("CACHE_CONTROL must be a single header value line");
  if (aliasCacheControl !== undefined && /[\r\n\0]/.test(aliasCacheControl)) problems.push("ALIAS_CACHE_CONTROL must be a single header value line");
  else if (aliasCacheControl !== undefined && /immutable/i.test(aliasCacheControl)) problems.push("ALIAS_CACHE_CONTROL must not be immutable: an alias can be re-pointed");
  return problems;
}

const ALLOWED_METHODS = ["GET", "HEAD"] as const;

/** The whole HTTP surface, free of any runtime: the Node and Worker entries only adapt it. */
export function createApp(options: AppOptions): Hono<AppEnv> {
  const { store, access } = options;
  const restricted = !unrestricted(access);
  const serveFile = options.fileHandler ?? createFileHandler(options);
  const ready = options.ready ?? (async () => void (await store.list(PLUGINS)));
  const logError = options.logError ?? logToConsole;
  const newId = options.requestId ?? (() => requestId(undefined));
  // Routed on the path as sent, which is what the access guard classifies (see rawPath).
  const app = new Hono<AppEnv>({ getPath: (request) => rawPath(request.url) });

  app.use(async (c, next) => {
    const id = newId(c);
    c.set("requestId", id);
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD") throw new MethodNotAllowedError(method, ALLOWED_METHODS);
    const pathname = c.req.path;
    if (restricted && !(c.env as AccessChecked | undefined)?.accessChecked) {
      await guard(access, { pathname, authorization: c.req.header("authorization"), client: options.clientAddress?.(c) });
    }
    // For what the handlers build with `c`; plugin file replies carry them themselves (touching
    // c.res afterwards would turn every response's headers into a Headers object).
    c.header("X-Content-Type-Options", "nosniff");
    c.header("X-Request-Id", id);
    await next();
    // Listings behind credentials: private too (plugin files have it from `files`).
    const listed = access?.catalog === "auth" && access.auth && ["catalog", "api"].includes(routeKind(pathname));
    if (listed && c.res.headers.has("Cache-Control")) c.res.headers.set("Cache-Control", privateCacheControl(c.res.headers.get("Cache-Control")!));
  });

  // The catalog; also what Higress's docker-compose health check (`curl -sf /`) reads.
  app.get("/", (c) => catalog(c, store));
  app.get("/api/v1/plugins", (c) => catalog(c, store, true));
  app.get("/api/v1/cluster", (c) => clusterCheck(c, store));
  app.get("/api/v1/plugins/:name", (c) => {
    const name = c.req.param("name");
    const problem = checkName(name);
    if (problem) throw new BadRequestError(problem);
    return pluginDetail(c, store, name, true);
  });

  const health = createHealthHandler(ready, logError);
  const probe = async (c: Context<AppEnv>) =>
    toResponse(await health({ pathname: c.req.path, header: (name) => c.req.header(name), id: c.get("requestId") }));
  app.get("/healthz", probe);
  app.get("/readyz", probe);

  const metrics = options.metrics;
  if (metrics) {
    app.get("/metrics", async (c) => {
      const { contentType, body } = await metrics();
      c.header("Cache-Control", "no-store");
      return c.body(body, 200, { "Content-Type": contentType });
    });
  }

  const plugins = async (c: Context) => {
    const pathname = c.req.path;
    const path = parsePluginPath(pathname);
    switch (path.kind) {
      case "index":
        return catalog(c, store);
      case "plugin":
        return pluginDetail(c, store, path.name);
      case "version":
        return versionFiles(c, store, path.name, path.version);
      case "file": {
        const headers = c.req.raw.headers;
        const reply = await serveFile({
          method: c.req.method === "HEAD" ? "HEAD" : "GET",
          pathname,
          header: (name) => headers.get(name) ?? undefined,
          client: options.clientAddress?.(c),
          id: c.get("requestId"),
          accessChecked: true, // by the middleware
        });
        return toResponse(reply);
      }
    }
  };
  app.get("/plugins", plugins);
  app.get("/plugins/*", plugins);

  app.notFound(() => {
    throw new NotFoundError("not found: plugins are served under /plugins/<name>/<version>/plugin.wasm");
  });

  app.onError((error, c) => {
    if (isServerError(error)) logError(error);
    // Set by the first middleware, unless it failed before (a request id of our own then).
    return toResponse(errorReply(error, c.req.header("accept"), c.get("requestId") ?? requestId(undefined)));
  });

  return app;
}
