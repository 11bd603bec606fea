import { privateCacheControl } from "../access/guard.ts";
import { acceptsGzip } from "../core/negotiate.ts";
import { requestId } from "../core/request-id.ts";

/**
 * The Cloudflare Cache API in front of the app: complete 200 answers to plain GETs are kept in
 * the colo's cache, so repeated downloads in a region (a gateway fleet rolling out) do not reach
 * R2. A published version's bytes never change unless replaced on purpose (`--replace`); the
 * entries keep the app's Cache-Tag, so the uploader's `--purge-cloudflare` removes exactly those
 * (both encodings' entries, which a purge by URL would miss: the key carries the encoding).
 *
 * Why the Cache API and not Workers' own cache in front of the Worker (tiered, shared by colos):
 * its hits are answered before the Worker runs, so they would skip the credential and address
 * checks, and one tenant's authorised download would be served to anyone. Here every request,
 * hit or miss, passes the guard first.
 */

/** The minimal part of the Workers cache we use. */
export interface EdgeCache {
  match(request: Request): Promise<Response | undefined>;
  put(request: Request, response: Response): Promise<void>;
}

export interface WaitUntil {
  waitUntil(promise: Promise<unknown>): void;
}

export const CACHE_STATUS = "X-Edge-Cache";

/**
 * An entry is stored without its Content-Encoding, which rides in this header instead and is put
 * back on a hit: the cache keeps the gzip bytes as opaque bytes. Stored with the header, a
 * cache that answers through HTTP (workerd's, as Miniflare implements it) re-creates the
 * response without `encodeBody: "manual"`, so workerd gzips the gzip again on every hit (17 ms
 * of CPU for the median plugin, bench/worker-cpu.ts) and the hit loses its Content-Length.
 */
const STORED_ENCODING = "X-Edge-Stored-Encoding";

/**
 * A response whose body is already encoded (plugin.wasm.gz with Content-Encoding: gzip).
 * workerd encodes a body whose Content-Encoding it sees, in the cache as on the wire, unless
 * told the bytes are encoded already.
 */
export function respond(body: ReadableStream<Uint8Array> | null, status: number, headers: Headers): Response {
  const init = { status, headers, ...(headers.has("Content-Encoding") ? { encodeBody: "manual" } : {}) };
  return new Response(body, init as ResponseInit);
}

export interface EdgeCacheOptions {
  /**
   * Credentials were checked before the cache: an Authorization header does not stand in the way,
   * and the app's private responses are kept (this cache answers checked requests only; the copy
   * is stored as public, since Cloudflare's cache skips private ones, and leaves private again).
   */
  readonly checked?: boolean;
}

/** Only plain GETs: ranges and conditionals are answered by the app from R2's metadata. */
function cacheable(request: Request, checked: boolean): boolean {
  if (request.method !== "GET") return false;
  for (const h of ["range", "if-match", "if-none-match", "if-modified-since", "if-unmodified-since"]) {
    if (request.headers.has(h)) return false;
  }
  if (!checked && request.headers.has("authorization")) return false;
  return new URL(request.url).pathname.startsWith("/plugins/");
}

/**
 * The cache varies on what the client accepts, not on the raw header: one entry for gzip
 * clients and one for the rest (the Cache API does not honour Vary for us).
 */
function cacheKey(request: Request): Request {
  const url = new URL(request.url);
  url.searchParams.set("__encoding", acceptsGzip(request.headers.get("accept-encoding")) ? "gzip" : "identity");
  return new Request(url.toString(), { method: "GET" });
}

function storable(response: Response, checked: boolean): boolean {
  const cacheControl = response.headers.get("cache-control") ?? "";
  return response.status === 200 && !/no-store|no-cache/i.test(cacheControl) && (checked || !/private/i.test(cacheControl));
}


export async function withEdgeCache(
  request: Request,
  cache: EdgeCache | undefined,
  ctx: WaitUntil | undefined,
  handle: (request: Request) => Promise<Response>,
  options: EdgeCacheOptions = {},
): Promise<Response> {
  const checked = options.checked ?? false;
  if (!cache || !cacheable(request, checked)) return handle(request);
  const key = cacheKey(request);
  const hit = await cache.match(key);
  if (hit) {
    const headers = new Headers(hit.headers);
    const encoding = headers.get(STORED_ENCODING);
    if (encoding) {
      headers.set("Content-Encoding", encoding);
      headers.delete(STORED_ENCODING);
    }
    headers.set(CACHE_STATUS, "hit");
    headers.set("X-Request-Id", requestId(request.headers.get("cf-ray"))); // the stored copy has none: each answer is a request of its own
    if (checked) headers.set("Cache-Control", privateCacheControl(headers.get("Cache-Control") ?? ""));
    return respond(hit.body, hit.status, headers);
  }
  const response = await handle(request);
  if (!storable(response, checked)) return response;
  const headers = new Headers(response.headers);
  headers.set(CACHE_STATUS, "miss");
  const [forClient, forCache] = response.body ? response.body.tee() : [null, null];
  const storedHeaders = new Headers(response.headers);
  storedHeaders.delete("X-Request-Id");
  const encoding = storedHeaders.get("Content-Encoding");
  if (encoding) {
    storedHeaders.set(STORED_ENCODING, encoding);
    storedHeaders.delete("Content-Encoding");
  }
  if (checked) storedHeaders.set("Cache-Control", (storedHeaders.get("Cache-Control") ?? "").replace(/\bprivate\b/i, "public"));
  const stored = respond(forCache, 200, storedHeaders);
  const put = cache.put(key, stored).catch(() => {}); // a failed cache write must not fail the download
  if (ctx) ctx.waitUntil(put);
  return respond(forClient, response.status, headers);
}
