import type { Preconditions } from "../core/conditional.ts";
import type { ByteRange, ResolvedRange } from "../core/range.ts";

/**
 * The one storage interface. Keys are `/`-separated paths relative to the store root
 * (`plugins/key-auth/2.0.0/plugin.wasm`); every backend maps them onto its own namespace.
 *
 * Backends stay plain: no caching, retries or timeouts of their own. Those wrap a Store
 * (a Store in, a Store out), so they compose with every backend alike.
 */
export interface Store {
  /** Human-readable location for logs (never includes credentials). */
  readonly description: string;
  /**
   * Reads an object. `null` when it does not exist. A backend may use `conditions` to skip
   * sending the body (then `body` is null); the caller re-evaluates them on `info` either way.
   * A backend honours `range` if it can and reports what it sent in `range`.
   */
  get(key: string, options?: GetOptions): Promise<StoredObject | null>;
  /** Object facts without a body. `null` when it does not exist. */
  head(key: string, options?: CallOptions): Promise<ObjectInfo | null>;
  /** Immediate children of `prefix` (which ends in `/`), like a directory listing. */
  list(prefix: string, options?: CallOptions): Promise<Listing>;
  /** Releases connections and handles; the store is unusable afterwards. */
  close?(): Promise<void>;
}

/** A store the uploader can publish to. The server only ever reads. */
export interface WritableStore extends Store {
  /** Writes an object whole; readers see the old object or the new one, never a part. */
  put(key: string, data: Uint8Array, options?: PutOptions): Promise<ObjectInfo>;
  /** Removes an object; no error if it is already gone. */
  delete(key: string): Promise<void>;
  /**
   * Writes an object only if none is there, as one atomic step: of two racing creators exactly
   * one gets "created". A backend that cannot promise that (S3-compatible stores before
   * conditional writes: radosgw Pacific ignores If-None-Match on PUT) leaves it out, or answers
   * "unsupported" where its file system cannot.
   */
  create?(key: string, data: Uint8Array, options?: PutOptions): Promise<"created" | "taken" | "unsupported">;
}

export interface PutOptions {
  readonly contentType?: string;
  /** The MD5 of `data` (hex) when the caller has it already: a backend that sends one need not hash the bytes again. */
  readonly md5?: string;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** The entity-tag as sent in an ETag header, quotes included (`"abc"` or `W/"abc"`). */
  readonly etag: string;
  readonly lastModified: Date;
}

export interface CallOptions {
  /** Aborts the operation (the policy layer's deadline); backends that can, stop waiting on the network. */
  readonly signal?: AbortSignal;
}

export interface GetOptions extends CallOptions {
  readonly range?: ByteRange;
  readonly conditions?: Preconditions;
}

export interface StoredObject {
  readonly info: ObjectInfo;
  /** null when the backend found a precondition false and sent no body. */
  readonly body: ReadableStream<Uint8Array> | null;
  /** The byte range `body` holds; absent when it holds the whole object. */
  readonly range?: ResolvedRange;
  /** The same bytes as `body`, when they are in memory already: a response can skip the stream. */
  readonly bytes?: Uint8Array;
  /**
   * The same bytes as `body`, pulled a chunk at a time: a runtime that can wait for its socket to
   * drain reads one chunk per drained socket, so nothing queues per connection.
   */
  readonly reader?: ChunkReader;
  /** Gives back what the object holds (a descriptor, a connection, a pinned buffer) when its body is not read to the end. */
  release?(): void;
}

/** A range of an open file, by descriptor. */
export interface FileRange {
  readonly fd: number;
  readonly start: number;
  readonly length: number;
  /**
   * Set while the file is still being written (a disk copy arriving): waits until the byte at
   * `position` may be sent and resolves the end of what may be sent now; rejects if the download
   * failed, and the reader must then be cut short (see `Arrival`).
   */
  readonly arriving?: ((position: number) => Promise<number>) | undefined;
}

export interface ChunkReader {
  /**
   * Up to `max` next bytes; `null` at the end. A reader may fill `into` (at least `max` bytes) and
   * return a part of it, so a sender can reuse one buffer for a whole download.
   */
  read(max: number, into?: Uint8Array): Promise<Uint8Array | null>;
  /** Chunks are views of memory the reader holds anyway (a cached buffer): a caller needs no buffer for them. */
  readonly views?: boolean;
  /**
   * The bytes still to read are this range of an open file, complete or still being written
   * (undefined when they are not in a file): a sender may have the kernel send them (sendfile)
   * instead of reading them, and reads no more then. close() still closes it.
   */
  readonly file?: FileRange | undefined;
  /** Idempotent; also called after the last chunk. */
  close(): void;
}

/**
 * An object whose body is in memory or behind a chunk reader; its web stream is made only if a
 * consumer asks for one (the Node entry never does). One class for every backend: an object
 * literal with a getter costs a request more than all of its other fields.
 */
export class Stored implements StoredObject {
  readonly bytes?: Uint8Array;
  readonly reader?: ChunkReader;
  readonly range?: ResolvedRange;
  readonly release?: () => void;
  #body: ReadableStream<Uint8Array> | undefined;

  constructor(
    readonly info: ObjectInfo,
    source: Uint8Array | ChunkReader,
    options: { readonly range?: ResolvedRange | undefined; readonly release?: (() => void) | undefined } = {},
  ) {
    if (source instanceof Uint8Array) this.bytes = source;
    else this.reader = source;
    if (options.range) this.range = options.range;
    if (options.release) this.release = options.release;
  }

  get body(): ReadableStream<Uint8Array> {
    if (this.#body) return this.#body;
    if (this.bytes) {
      this.release?.(); // a stream consumer copies what it reads: nothing is held for it
      return (this.#body = onceStream(this.bytes));
    }
    return (this.#body = readerStream(this.reader!));
  }
}

/** Drops an object without reading it. */
export function discard(object: StoredObject | null | undefined): void {
  if (!object) return;
  if (object.release) object.release();
  else if (!object.bytes) void object.body?.cancel().catch(() => {});
}

/** The whole body as bytes; uses the in-memory copy when there is one. */
export async function readBytes(object: StoredObject): Promise<Uint8Array> {
  if (object.bytes) {
    discard(object);
    return object.bytes;
  }
  return object.body ? new Uint8Array(await new Response(object.body).arrayBuffer()) : new Uint8Array();
}

export async function readText(object: StoredObject): Promise<string> {
  return new TextDecoder().decode(await readBytes(object));
}

/** A web stream over a chunk reader, for consumers that want one (the worker, `new Response`). */
export function readerStream(reader: ChunkReader, chunkSize = 256 * 1024): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      try {
        const chunk = await reader.read(chunkSize);
        if (chunk) controller.enqueue(chunk);
        else {
          reader.close();
          controller.close();
        }
      } catch (error) {
        reader.close();
        controller.error(error);
      }
    },
    cancel: () => reader.close(),
  }, { highWaterMark: 0 }); // pull only when read: creating the stream must not consume the reader
}

export interface Listing {
  /** Child "directories", as names without the trailing slash. */
  readonly prefixes: readonly string[];
  /** Child objects directly under the prefix. */
  readonly objects: readonly ObjectInfo[];
}

/** Joins a store-wide prefix (`""` or `"mirror/"`) and a key. */
export function joinKey(prefix: string, key: string): string {
  return prefix === "" ? key : `${prefix.replace(/\/+$/, "")}/${key}`;
}

/** Normalises a user-supplied prefix (`/a/b/` or `a/b`) to `a/b/` or `""`. */
export function normalisePrefix(prefix: string | undefined): string {
  const trimmed = (prefix ?? "").replace(/^\/+|\/+$/g, "");
  return trimmed === "" ? "" : `${trimmed}/`;
}

/** A stream of one chunk that is already in memory. */
export function onceStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    start(controller) {
      if (bytes.length > 0) controller.enqueue(bytes);
      controller.close();
    },
  });
}
