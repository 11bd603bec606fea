import type { ExportedHandler, Response as WorkerResponse } from "@cloudflare/workers-types/index.ts";
import { guard, unrestricted } from "./access/guard.ts";
import { accessSettings, type AccessSettings, type Source } from "./access/settings.ts";
import { cacheControlProblems, createApp, type AccessChecked } from "./app.ts";
import { requestId } from "./core/request-id.ts";
import { rawPath } from "./core/routes.ts";
import { errorReply } from "./http/error-reply.ts";
import { toResponse } from "./http/reply.ts";
import { R2Store, type R2BucketLike } from "./storage/r2.ts";
import { normalisePrefix } from "./storage/store.ts";
import { respond, withEdgeCache, type EdgeCache, type WaitUntil } from "./worker/edge-cache.ts";

/*
 * Cloudflare Workers / workerd entry. `Env` is generated from wrangler.toml and .dev.vars.example by
 * `npm run types` (worker-configuration.d.ts): the R2 binding PLUGINS, the variables documented in
 * wrangler.toml, and the secrets AUTH_BASIC and AUTH_TOKENS. Any of the strings may be missing or
 * empty at run time (a secret not put, a variable removed), so they are read as optional.
 */
type Settings = { readonly [K in Exclude<keyof Env, "PLUGINS">]?: string };

type App = ReturnType<typeof createApp>;
type Built = { readonly app: App; readonly access: AccessSettings; readonly client: (request: Request) => string | undefined } | { readonly problems: readonly string[] };
let cached: { env: Env; built: Built } | undefined;
const settings = (env: Env): Settings => env;

/**
 * Cloudflare's own view of the client. Believed only where Cloudflare set it: on its network every
 * request carries the `cf` object, and a client's own CF-Connecting-IP is replaced. A self-hosted
 * workerd has neither, so there anyone could name any address, unless TRUST_CF_CONNECTING_IP=true
 * says a proxy of yours sets the header.
 */
export function clientAddress(request: Request, trust: "auto" | "true" | "false"): string | undefined {
  const fromCloudflare = trust === "true" || (trust === "auto" && typeof (request as { cf?: unknown }).cf === "object");
  return fromCloudflare ? (request.headers.get("cf-connecting-ip") ?? undefined) : undefined;
}

function build(env: Env): Built {
  const problems: string[] = [];
  const source = (name: keyof Settings): Source | undefined => {
    const text = settings(env)[name];
    return typeof text === "string" && text.trim() !== "" ? { text, from: name } : undefined;
  };
  const sources = { basic: source("AUTH_BASIC"), tokens: source("AUTH_TOKENS"), catalog: source("CATALOG"), allow: source("ALLOW_CIDRS") };
  const access = accessSettings(Object.fromEntries(Object.entries(sources).filter(([, v]) => v)), problems);
  const { STORE_PREFIX, CACHE_CONTROL, ALIAS_CACHE_CONTROL, TRUST_CF_CONNECTING_IP } = settings(env);
  problems.push(...cacheControlProblems(CACHE_CONTROL || undefined, ALIAS_CACHE_CONTROL || undefined));
  const trust = TRUST_CF_CONNECTING_IP?.trim().toLowerCase() || "auto";
  if (trust !== "auto" && trust !== "true" && trust !== "false") problems.push("TRUST_CF_CONNECTING_IP must be true, false or empty (believed on Cloudflare's network only)");
  if (problems.length > 0) return { problems };
  const client = (request: Request) => clientAddress(request, trust as "auto" | "true" | "false");
  // The binding as the runtime types it, seen through the part R2Store uses (the core compiles
  // against the DOM library, not the Workers types; the shapes agree at run time).
  const store = new R2Store(env.PLUGINS as unknown as R2BucketLike, normalisePrefix(STORE_PREFIX));
  const app = createApp({
    store,
    access,
    clientAddress: (c) => client(c.req.raw),
    // Cloudflare's CF-Ray names the request in Cloudflare's own logs too.
    requestId: (c) => requestId(c.req.header("cf-ray")),
    ...(CACHE_CONTROL ? { cacheControl: CACHE_CONTROL } : {}),
    ...(ALIAS_CACHE_CONTROL ? { aliasCacheControl: ALIAS_CACHE_CONTROL } : {}),
  });
  return { app, access, client };
}

function builtFor(env: Env): Built {
  // Bindings are fixed for the life of an isolate, so the app is built once per isolate.
  if (cached?.env !== env) cached = { env, built: build(env) };
  return cached.built;
}

const plain = (status: number, text: string) =>
  new Response(text, { status, headers: { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" } });

/**
 * Cloudflare hands every Worker `Accept-Encoding: br, gzip` and re-encodes the response for
 * the real client afterwards; the client's own header is kept in `cf.clientAcceptEncoding`.
 * Negotiating on that one lets an identity client get plugin.wasm with its exact length,
 * and a gzip client get the stored plugin.wasm.gz untouched.
 */
function clientEncoding(request: Request): Request {
  const original = (request as { cf?: { clientAcceptEncoding?: string } }).cf?.clientAcceptEncoding;
  if (original === undefined) return request;
  const headers = new Headers(request.headers);
  if (original === "") headers.delete("Accept-Encoding");
  else headers.set("Accept-Encoding", original);
  return new Request(request, { headers });
}

/** workerd's default cache, when the runtime has one (it does on Cloudflare and in workerd). */
const edgeCache = (): EdgeCache | undefined => (globalThis as { caches?: { default?: EdgeCache } }).caches?.default;

async function handle(request: Request, env: Env, ctx: WaitUntil): Promise<Response> {
  if (!env.PLUGINS) return plain(503, "the R2 binding PLUGINS is missing; bind a bucket in wrangler.toml\n");
  const built = builtFor(env);
  if ("problems" in built) {
    console.error(`invalid configuration:\n${built.problems.map((p) => `  - ${p}`).join("\n")}`);
    return plain(503, "this server's configuration is invalid; its log says why\n");
  }
  const { app, access, client } = built;
  const r = clientEncoding(request);
  // The edge cache answers without the app: under access control, only once the request passed
  // it. A refusal is rendered here, as the app renders errors: checking again in the app would
  // spend a second credential check (and budget) on the same request.
  if (!unrestricted(access)) {
    if (r.method !== "GET" && r.method !== "HEAD") return app.fetch(r); // 405 first, as the app orders it
    const refusal = await guard(access, { pathname: rawPath(r.url), authorization: r.headers.get("authorization") ?? undefined, client: client(r) }).then(
      () => undefined,
      (error: unknown) => error,
    );
    if (refusal !== undefined) return toResponse(errorReply(refusal, r.headers.get("accept") ?? undefined, requestId(r.headers.get("cf-ray") ?? undefined)));
  }
  return withEdgeCache(r, edgeCache(), ctx, async (req) => {
    // Checked above when restricted: the app need not check again.
    const response = await app.fetch(req, { accessChecked: true } satisfies AccessChecked);
    return respond(response.body, response.status, response.headers); // plugin.wasm.gz goes out as stored
  }, { checked: !!access.auth });
}

export default {
  // workerd's Request and Response are the web ones the app is written against; only their
  // TypeScript declarations differ (Workers types here, the DOM library in the app).
  fetch: (request, env, ctx) => handle(request as unknown as Request, env, ctx) as unknown as Promise<WorkerResponse>,
} satisfies ExportedHandler<Env>;
