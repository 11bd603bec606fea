import { evaluatePreconditions, ifRangeHolds, type Preconditions } from "../core/conditional.ts";
import { acceptsGzip } from "../core/negotiate.ts";
import { contentRange, parseRange, resolveRange, unsatisfiedRange, type ByteRange } from "../core/range.ts";
import type { ObjectInfo, Store, StoredObject } from "../storage/store.ts";

export interface ObjectRequest {
  readonly method: "GET" | "HEAD";
  readonly conditions: Preconditions;
  /** The Range header, parsed; only GET uses it (RFC 9110 section 14.2). */
  readonly range: ByteRange | undefined;
  readonly acceptsGzip: boolean;
}

export function objectRequest(method: "GET" | "HEAD", headers: Headers, conditions: Preconditions): ObjectRequest {
  return {
    method,
    conditions,
    range: method === "GET" ? parseRange(headers.get("range")) : undefined,
    acceptsGzip: acceptsGzip(headers.get("accept-encoding")),
  };
}

export interface ServeOptions {
  readonly contentType: string;
  readonly cacheControl: string;
  /** Key of a gzip-encoded variant to prefer when the client accepts gzip (RFC 9110 section 8.4). */
  readonly gzipKey?: string;
  readonly extraHeaders?: Readonly<Record<string, string>>;
}

/**
 * Answers GET or HEAD for one stored object: 200, 206, 304, 412 or 416. `null` when the
 * object does not exist, so the caller can try an alias or answer 404.
 */
export async function serveObject(store: Store, key: string, req: ObjectRequest, options: ServeOptions): Promise<Response | null> {
  // Ranges apply to the identity encoding only: a byte offset into gzip bytes is useless to the client.
  if (options.gzipKey && req.acceptsGzip && !req.range) {
    const gzip = await serveVariant(store, options.gzipKey, req, options, "gzip");
    if (gzip) return gzip;
  }
  return serveVariant(store, key, req, options, undefined);
}

async function serveVariant(
  store: Store,
  key: string,
  req: ObjectRequest,
  options: ServeOptions,
  encoding: "gzip" | undefined,
): Promise<Response | null> {
  const headers = (info: ObjectInfo) => {
    const h = new Headers({
      "Content-Type": options.contentType,
      ETag: info.etag,
      "Last-Modified": info.lastModified.toUTCString(),
      "Cache-Control": options.cacheControl,
      "Accept-Ranges": "bytes",
      ...options.extraHeaders,
    });
    if (encoding) h.set("Content-Encoding", encoding);
    if (options.gzipKey) h.set("Vary", "Accept-Encoding");
    return h;
  };

  if (req.method === "HEAD") {
    // HEAD never opens a body: an unread SDK stream would pin a pooled connection.
    const info = await store.head(key);
    if (!info) return null;
    const answer = preconditionAnswer(req, info, headers(info));
    if (answer) return answer;
    const h = headers(info);
    h.set("Content-Length", String(info.size));
    return new Response(null, { status: 200, headers: h });
  }

  let object = await store.get(key, { conditions: req.conditions, ...(req.range ? { range: req.range } : {}) });
  if (!object) return null;
  const { info } = object;
  const answer = preconditionAnswer(req, info, headers(info));
  if (answer) {
    await object.body?.cancel();
    return answer;
  }

  // RFC 9110 section 13.1.5: a stale If-Range turns the request into a plain GET.
  const range = req.range && ifRangeHolds(req.conditions.ifRange, info) ? req.range : undefined;
  const h = headers(info);
  if (range) {
    const wanted = resolveRange(range, info.size);
    if (!wanted) {
      await object.body?.cancel();
      // Section 15.5.17: a 416 names the current length so the client can ask again correctly.
      h.set("Content-Range", unsatisfiedRange(info.size));
      h.delete("Content-Type");
      return text(416, `range not satisfiable: the object is ${info.size} bytes\n`, h);
    }
    if (!object.body || object.range?.start !== wanted.start || object.range.end !== wanted.end) {
      object = await refetch(store, key, object, range);
      if (!object?.body) return null;
    }
    h.set("Content-Range", contentRange(wanted, info.size));
    h.set("Content-Length", String(wanted.end - wanted.start + 1));
    return new Response(bodyOf(object), { status: 206, headers: h });
  }
  if (!object.body || object.range) {
    object = await refetch(store, key, object, undefined);
    if (!object?.body) return null;
  }
  h.set("Content-Length", String(object.info.size));
  return new Response(bodyOf(object), { status: 200, headers: h });
}

/** In-memory bytes go out as they are (the Node adapter writes them without a stream); else the stream. */
function bodyOf(object: StoredObject): ReadableStream<Uint8Array> | Uint8Array<ArrayBuffer> | null {
  if (!object.bytes) return object.body;
  void object.body?.cancel();
  return object.bytes as Uint8Array<ArrayBuffer>;
}

/** The backend's answer did not fit what we decided to send (it skipped the body, or sent the wrong part). */
async function refetch(store: Store, key: string, previous: StoredObject, range: ByteRange | undefined) {
  await previous.body?.cancel();
  return store.get(key, range ? { range } : {});
}

/** RFC 9110 section 13.2.2: 304 for GET/HEAD whose cached copy is current, 412 when a precondition is false. */
function preconditionAnswer(req: ObjectRequest, info: ObjectInfo, h: Headers): Response | null {
  const outcome = evaluatePreconditions(req.conditions, info, req.method);
  if (outcome === "proceed") return null;
  if (outcome === "not-modified") {
    // Section 15.4.5: a 304 carries the validators and caching fields a 200 would, and no content.
    h.delete("Content-Type");
    h.delete("Accept-Ranges");
    return new Response(null, { status: 304, headers: h });
  }
  h.delete("Content-Type");
  return text(412, "precondition failed: the object does not match If-Match or If-Unmodified-Since\n", h);
}

function text(status: number, body: string, headers: Headers): Response {
  headers.set("Content-Type", "text/plain; charset=utf-8");
  headers.set("Cache-Control", "no-store");
  headers.delete("Content-Encoding");
  return new Response(body, { status, headers });
}
