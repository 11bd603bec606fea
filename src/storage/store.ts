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
  head(key: string): Promise<ObjectInfo | null>;
  /** Immediate children of `prefix` (which ends in `/`), like a directory listing. */
  list(prefix: string): Promise<Listing>;
  /** Releases connections and handles; the store is unusable afterwards. */
  close?(): Promise<void>;
}

/** A store the uploader can publish to. The server only ever reads. */
export interface WritableStore extends Store {
  /** Writes an object whole; readers see the old object or the new one, never a part. */
  put(key: string, data: Uint8Array, options?: { readonly contentType?: string }): Promise<ObjectInfo>;
  /** Removes an object; no error if it is already gone. */
  delete(key: string): Promise<void>;
}

export interface ObjectInfo {
  readonly key: string;
  readonly size: number;
  /** The entity-tag as sent in an ETag header, quotes included (`"abc"` or `W/"abc"`). */
  readonly etag: string;
  readonly lastModified: Date;
}

export interface GetOptions {
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
