import { createApp } from "./app.ts";
import { R2Store, type R2BucketLike } from "./storage/r2.ts";
import { normalisePrefix } from "./storage/store.ts";
import { respond, withEdgeCache, type EdgeCache, type WaitUntil } from "./worker/edge-cache.ts";

/** Cloudflare Workers / workerd entry: the R2 binding PLUGINS, and optional variables from wrangler.toml. */
export interface Env {
  readonly PLUGINS: R2BucketLike;
  /** Key prefix inside the bucket, as in `s3://bucket/<prefix>`. */
  readonly STORE_PREFIX?: string;
  readonly CACHE_CONTROL?: string;
  /** Cache-Control of files served through an alias (default `public, max-age=300`); the edge cache keeps them no longer. */
  readonly ALIAS_CACHE_CONTROL?: string;
}

type App = ReturnType<typeof createApp>;
let cached: { env: Env; app: App } | undefined;

function appFor(env: Env): App {
  // Bindings are fixed for the life of an isolate, so the app is built once per isolate.
  if (cached?.env !== env) {
    const store = new R2Store(env.PLUGINS, normalisePrefix(env.STORE_PREFIX));
    cached = {
      env,
      app: createApp({
        store,
        ...(env.CACHE_CONTROL ? { cacheControl: env.CACHE_CONTROL } : {}),
        ...(env.ALIAS_CACHE_CONTROL ? { aliasCacheControl: env.ALIAS_CACHE_CONTROL } : {}),
      }),
    };
  }
  return cached.app;
}

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

export default {
  async fetch(request: Request, env: Env, ctx?: WaitUntil): Promise<Response> {
    if (!env.PLUGINS) {
      return new Response("the R2 binding PLUGINS is missing; bind a bucket in wrangler.toml\n", {
        status: 503,
        headers: { "Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store" },
      });
    }
    const app = appFor(env);
    return withEdgeCache(clientEncoding(request), edgeCache(), ctx, async (r) => {
      const response = await app.fetch(r);
      return respond(response.body, response.status, response.headers); // plugin.wasm.gz goes out as stored
    });
  },
};
