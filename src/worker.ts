import { guard, unrestricted } from "./access/guard.ts";
import { accessSettings, type AccessSettings, type Source } from "./access/settings.ts";
import { createApp } from "./app.ts";
import { requestId } from "./core/request-id.ts";
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
  /** Secrets (`wrangler secret put`): htpasswd lines with bcrypt hashes, and bearer tokens one per line. */
  readonly AUTH_BASIC?: string;
  readonly AUTH_TOKENS?: string;
  /** public, auth or off (default: auth when credentials are set, else public). */
  readonly CATALOG?: string;
  /** Networks that may download, by CF-Connecting-IP. */
  readonly ALLOW_CIDRS?: string;
}

type App = ReturnType<typeof createApp>;
type Built = { readonly app: App; readonly access: AccessSettings } | { readonly problems: readonly string[] };
let cached: { env: Env; built: Built } | undefined;

/** Cloudflare's own view of the client; nothing else in front of a Worker can be trusted to set it. */
const client = (request: Request) => request.headers.get("cf-connecting-ip") ?? undefined;

function build(env: Env): Built {
  const problems: string[] = [];
  const source = (name: keyof Env): Source | undefined => {
    const text = env[name];
    return typeof text === "string" && text.trim() !== "" ? { text, from: name } : undefined;
  };
  const sources = { basic: source("AUTH_BASIC"), tokens: source("AUTH_TOKENS"), catalog: source("CATALOG"), allow: source("ALLOW_CIDRS") };
  const access = accessSettings(Object.fromEntries(Object.entries(sources).filter(([, v]) => v)), problems);
  if (problems.length > 0) return { problems };
  const store = new R2Store(env.PLUGINS, normalisePrefix(env.STORE_PREFIX));
  const app = createApp({
    store,
    access,
    clientAddress: (c) => client(c.req.raw),
    // Cloudflare's CF-Ray names the request in Cloudflare's own logs too.
    requestId: (c) => requestId(c.req.header("cf-ray")),
    ...(env.CACHE_CONTROL ? { cacheControl: env.CACHE_CONTROL } : {}),
    ...(env.ALIAS_CACHE_CONTROL ? { aliasCacheControl: env.ALIAS_CACHE_CONTROL } : {}),
  });
  return { app, access };
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

export default {
  async fetch(request: Request, env: Env, ctx?: WaitUntil): Promise<Response> {
    if (!env.PLUGINS) return plain(503, "the R2 binding PLUGINS is missing; bind a bucket in wrangler.toml\n");
    const built = builtFor(env);
    if ("problems" in built) {
      console.error(`invalid configuration:\n${built.problems.map((p) => `  - ${p}`).join("\n")}`);
      return plain(503, "this server's configuration is invalid; its log says why\n");
    }
    const { app, access } = built;
    const r = clientEncoding(request);
    // The edge cache answers without the app: under access control, only once the request passed
    // it (a refused one goes to the app, which renders the refusal).
    if (!unrestricted(access)) {
      const pathname = new URL(r.url).pathname;
      const allowed = await guard(access, { pathname, authorization: r.headers.get("authorization") ?? undefined, client: client(r) }).then(
        () => true,
        () => false,
      );
      if (!allowed) return app.fetch(r);
    }
    return withEdgeCache(r, edgeCache(), ctx, async (req) => {
      const response = await app.fetch(req);
      return respond(response.body, response.status, response.headers); // plugin.wasm.gz goes out as stored
    }, { checked: !!access.auth });
  },
};
