import { evaluatePreconditions, formatHttpDate, ifRangeHolds, type Preconditions } from "../core/conditional.ts";
import { acceptsGzip } from "../core/negotiate.ts";
import { contentRange, parseRange, resolveRange, unsatisfiedRange, type ByteRange } from "../core/range.ts";
import { StoreUnavailableError } from "../core/errors.ts";
import { discard, type ObjectInfo, type Store, type StoredObject } from "../storage/store.ts";
import type { Reply } from "./reply.ts";

export interface ObjectRequest {
  readonly method: "GET" | "HEAD";
  readonly conditions: Preconditions;
  /** The Range header, parsed; only GET uses it (RFC 9110 section 14.2). */
  readonly range: ByteRange | undefined;
  readonly acceptsGzip: boolean;
}

export function objectRequest(method: "GET" | "HEAD", header: (name: string) => string | undefined, conditions: Preconditions): ObjectRequest {
  return {
    method,
    conditions,
    range: method === "GET" ? parseRange(header("range")) : undefined,
    acceptsGzip: acceptsGzip(header("accept-encoding")),
  };
}

export interface ServeOptions {
  readonly contentType: string;
  readonly cacheControl: string;
  /** Key of a gzip-encoded variant to prefer when the client accepts gzip (RFC 9110 section 8.4). */
  readonly gzipKey?: string;
  readonly extraHeaders?: Readonly<Record<string, string>>;
  /**
   * The entity-tag to send instead of the store's (content-based, or marked per alias target).
   * The store then cannot evaluate conditions for us: they are checked here only.
   */
  readonly etag?: (info: ObjectInfo, encoding: "gzip" | undefined) => string;
}

/**
 * Answers GET or HEAD for one stored object: 200, 206, 304, 412 or 416. `null` when the
 * object does not exist, so the caller can try an alias or answer 404.
 */
export async function serveObject(store: Store, key: string, req: ObjectRequest, options: ServeOptions): Promise<Reply | null> {
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
): Promise<Reply | null> {
  const validated = (stored: ObjectInfo): ObjectInfo => (options.etag ? { ...stored, etag: options.etag(stored, encoding) } : stored);
  const headers = (info: ObjectInfo): Record<string, string> => {
    const h: Record<string, string> = {
      "Content-Type": options.contentType,
      ETag: info.etag,
      "Last-Modified": formatHttpDate(info.lastModified),
      "Cache-Control": options.cacheControl,
      "Accept-Ranges": "bytes",
    };
    if (encoding) h["Content-Encoding"] = encoding;
    if (options.gzipKey) h.Vary = "Accept-Encoding";
    if (options.extraHeaders) Object.assign(h, options.extraHeaders);
    return h;
  };

  if (req.method === "HEAD") {
    // HEAD never opens a body: an unread SDK stream would pin a pooled connection.
    const stored = await store.head(key);
    if (!stored) return null;
    const info = validated(stored);
    const h = headers(info);
    const answer = preconditionAnswer(req, info, h);
    if (answer) return answer;
    h["Content-Length"] = String(info.size);
    return { status: 200, headers: h, body: null };
  }

  const pushDown = options.etag ? {} : { conditions: req.conditions };
  let object = await store.get(key, { ...pushDown, ...(req.range ? { range: req.range } : {}) });
  if (!object) return null;
  const info = validated(object.info);
  const h = headers(info);
  const answer = preconditionAnswer(req, info, h);
  if (answer) {
    discard(object);
    return answer;
  }

  // RFC 9110 section 13.1.5: a stale If-Range turns the request into a plain GET.
  const range = req.range && ifRangeHolds(req.conditions.ifRange, info) ? req.range : undefined;
  if (range) {
    const wanted = resolveRange(range, info.size);
    if (!wanted) {
      discard(object);
      // Section 15.5.17: a 416 names the current length so the client can ask again correctly.
      h["Content-Range"] = unsatisfiedRange(info.size);
      return text(416, `range not satisfiable: the object is ${info.size} bytes\n`, h);
    }
    if (!holds(object) || object.range?.start !== wanted.start || object.range.end !== wanted.end) {
      const before = object.info.etag;
      object = await refetch(store, key, object, range);
      if (!object) return null;
      // The object changed meanwhile, or the backend sent another part: never send bytes that do not
      // match Content-Range (a keep-alive connection would desync); the whole object instead.
      if (object.info.etag !== before || object.range?.start !== wanted.start || object.range.end !== wanted.end) {
        return whole(object, headers(validated(object.info)));
      }
    }
    h["Content-Range"] = contentRange(wanted, info.size);
    h["Content-Length"] = String(wanted.end - wanted.start + 1);
    return reply(206, h, object);
  }
  if (!holds(object) || object.range) {
    object = await refetch(store, key, object, undefined);
    if (!object) return null;
  }
  return whole(object, h);
}

function whole(object: StoredObject, h: Record<string, string>): Reply {
  if (object.range || !holds(object)) {
    discard(object);
    throw new StoreUnavailableError(`store sent a part of ${object.info.key} when asked for all of it`);
  }
  h["Content-Length"] = String(object.info.size);
  delete h["Content-Range"];
  return reply(200, h, object);
}

const holds = (object: StoredObject) => object.bytes !== undefined || object.reader !== undefined || object.body !== null;

/** The cheapest form of the body the object has: shared bytes, a chunk reader, or its stream. */
function reply(status: number, headers: Record<string, string>, object: StoredObject): Reply {
  const body = object.bytes ?? object.reader ?? object.body;
  return { status, headers, body, ...(object.release ? { release: object.release } : {}) };
}

/** The backend's answer did not fit what we decided to send (it skipped the body, or sent the wrong part). */
async function refetch(store: Store, key: string, previous: StoredObject, range: ByteRange | undefined) {
  discard(previous);
  return store.get(key, range ? { range } : {});
}

/** RFC 9110 section 13.2.2: 304 for GET/HEAD whose cached copy is current, 412 when a precondition is false. */
function preconditionAnswer(req: ObjectRequest, info: ObjectInfo, h: Record<string, string>): Reply | null {
  const outcome = evaluatePreconditions(req.conditions, info, req.method);
  if (outcome === "proceed") return null;
  delete h["Content-Type"];
  if (outcome === "not-modified") {
    // Section 15.4.5: a 304 carries the validators and caching fields a 200 would, and no content.
    delete h["Accept-Ranges"];
    return { status: 304, headers: h, body: null };
  }
  return text(412, "precondition failed: the object does not match If-Match or If-Unmodified-Since\n", h);
}

function text(status: number, body: string, headers: Record<string, string>): Reply {
  headers["Content-Type"] = "text/plain; charset=utf-8";
  headers["Cache-Control"] = "no-store";
  delete headers["Content-Encoding"];
  return { status, headers, body: new TextEncoder().encode(body) };
}
