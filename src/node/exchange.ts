import { AsyncLocalStorage } from "node:async_hooks";
import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { RouteKind } from "../core/routes.ts";
import type { CacheOutcome } from "../storage/cached.ts";

/** What the layers below learn about the request they serve; reached through `traces`. */
export interface RequestTrace {
  readonly id: string;
  /** The client's address, X-Forwarded-For resolved from trusted proxies. */
  readonly client: string | undefined;
  /** Time the store took to answer this request's calls (to first byte), and how many it made. */
  storeSeconds: number;
  storeCalls: number;
  /** How the innermost cache that saw the request answered it; undefined: no object was read. */
  cache: CacheOutcome | undefined;
}

export const traces = new AsyncLocalStorage<RequestTrace>();

/** One request, once the connection is done with its response. */
export interface Exchange {
  readonly trace: RequestTrace;
  readonly method: string;
  /** The request target as logged: userinfo of an absolute-form target removed. */
  readonly path: string;
  readonly route: RouteKind;
  readonly status: number;
  readonly encoding: string;
  /** Body bytes that really left (an aborted download sends fewer than declared; an aborted in-memory body, which leaves in one write, counts none). */
  readonly bytes: number;
  /** Of those, the bytes the kernel sent from a file (sendfile). */
  readonly byKernel?: number;
  /** Request start to the last byte written, or to the connection's close. */
  readonly seconds: number;
  readonly userAgent: string;
}

/** `http://user:secret@host/x` as a request target must not put the secret in a log. */
export function redactTarget(target: string): string {
  if (target.startsWith("/")) return target; // origin-form, the usual: no authority, no userinfo
  return target.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/?#]*@/i, "$1");
}

/** Content-Encoding from writeHead's headers argument (an object, or a flat [name, value, ...] array). */
function contentEncoding(headers: unknown): string | undefined {
  if (Array.isArray(headers)) {
    for (let i = 0; i + 1 < headers.length; i += 2) if (String(headers[i]).toLowerCase() === "content-encoding") return String(headers[i + 1]);
    return undefined;
  }
  if (!headers || typeof headers !== "object") return undefined;
  // The two spellings the senders use, before a look at every header.
  const h = headers as OutgoingHttpHeaders;
  const direct = h["content-encoding"] ?? h["Content-Encoding"];
  if (direct !== undefined) return String(direct);
  for (const [key, value] of Object.entries(h)) if (key.toLowerCase() === "content-encoding") return String(value);
  return undefined;
}

/**
 * Watches a response: its Content-Encoding (passed to writeHead, where getHeader cannot see
 * it), the body bytes written, and when it ends. `done` runs once, when the connection is done.
 */
export function track(req: IncomingMessage, res: ServerResponse, trace: RequestTrace, route: RouteKind, done: (exchange: Exchange) => void): void {
  const started = performance.now();
  let bytes = 0;
  let encoding: string | undefined;
  const { write, end, writeHead } = res;
  const count = (chunk: unknown) => {
    if (typeof chunk === "string") bytes += Buffer.byteLength(chunk);
    else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
  };
  res.writeHead = function (this: ServerResponse, ...args: unknown[]) {
    encoding = contentEncoding(args.at(-1));
    return (writeHead as (...a: unknown[]) => ServerResponse).apply(this, args);
  } as ServerResponse["writeHead"];
  res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
    count(chunk);
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as ServerResponse["write"];
  res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk !== "function") count(chunk);
    return (end as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
  } as ServerResponse["end"];
  res.once("close", () => {
    const target = req.url ?? "/";
    done({
      trace,
      method: req.method ?? "-",
      path: redactTarget(target),
      route,
      status: res.statusCode,
      encoding: encoding ?? String(res.getHeader("content-encoding") ?? "identity"),
      bytes,
      seconds: (performance.now() - started) / 1000,
      userAgent: req.headers["user-agent"] ?? "-",
    });
  });
}

export type LogFormat = "text" | "json";

/** What would let a logged path forge a line or a field: escaped (JSON style) when present. */
const UNSAFE = /["\\\u0000-\u001f\u007f]/;

/**
 * The access log: one line per request. Authorization and URL userinfo never appear; the store
 * time and cache outcome tell a slow download from a slow client.
 */
export function accessLog(format: LogFormat, write: (line: string) => void = batchedStdout()): (exchange: Exchange) => void {
  const time = isoClock();
  return (e) => {
    const { trace } = e;
    const durationMs = Math.round(e.seconds * 1e6) / 1000;
    const storeMs = Math.round(trace.storeSeconds * 1e6) / 1000;
    if (format === "json") {
      const entry = { time: time(), requestId: trace.id, remote: trace.client ?? "-", method: e.method, path: e.path, status: e.status, bytes: e.bytes, durationMs, storeMs, cache: trace.cache ?? "-", userAgent: e.userAgent };
      write(`${JSON.stringify(entry)}\n`);
      return;
    }
    // Built directly, without an intermediate record: this runs for every request.
    write(`${time()} ${trace.client ?? "-"} "${e.method} ${UNSAFE.test(e.path) ? JSON.stringify(e.path).slice(1, -1) : e.path}" ${e.status} ${e.bytes} ${durationMs}ms store=${storeMs}ms cache=${trace.cache ?? "-"} id=${trace.id} ${UNSAFE.test(e.userAgent) ? JSON.stringify(e.userAgent) : `"${e.userAgent}"`}\n`);
  };
}

/** The current time in ISO 8601, formatted once per millisecond however many lines share it. */
function isoClock(): () => string {
  let last = -1;
  let text = "";
  return () => {
    const now = Date.now();
    if (now !== last) {
      last = now;
      text = new Date(now).toISOString();
    }
    return text;
  };
}

/**
 * Copies lines into one buffer, written when it is full or 25 ms after its first line: a write
 * per request, or per event-loop turn, costs a small answer more than everything else it does.
 * Whatever is pending is written at exit.
 */
function batchedStdout(size = 64 * 1024): (line: string) => void {
  let buffer = Buffer.allocUnsafe(size);
  let used = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (used === 0) return;
    const full = buffer.subarray(0, used);
    buffer = Buffer.allocUnsafe(size); // the stream may still hold the previous one
    used = 0;
    process.stdout.write(full);
  };
  process.once("exit", flush);
  return (line) => {
    const length = Buffer.byteLength(line);
    if (used + length > size) {
      flush();
      if (length > size) return void process.stdout.write(line);
    }
    used += buffer.write(line, used);
    timer ??= setTimeout(flush, 25).unref();
  };
}
