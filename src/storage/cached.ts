import { evaluatePreconditions } from "../core/conditional.ts";
import { resolveRange } from "../core/range.ts";
import type { GetOptions, Listing, ObjectInfo, Store, StoredObject } from "./store.ts";

/**
 * An in-memory cache in front of any Store. A gateway rollout asks for the same few plugins
 * from every replica at once: concurrent reads of a key share one backend read (coalescing),
 * and small objects are then answered from memory, whole or by range, until their entry ages
 * out. Misses are remembered briefly, listings for a few seconds; errors are never cached.
 *
 * Freshness is bounded by the TTLs: plugin files never change at their URL, but aliases.json,
 * index.json and listings do, so a change in the store shows within `ttlMs` (30 s by default).
 */
export interface CacheOptions {
  /** Memory for object bytes, in total. */
  readonly maxBytes?: number;
  /** Larger objects are streamed from the backend every time (only their facts are cached). */
  readonly maxObjectBytes?: number;
  readonly ttlMs?: number;
  readonly missTtlMs?: number;
  readonly listTtlMs?: number;
  /** For tests. */
  readonly now?: () => number;
}

type Entry =
  | { readonly kind: "bytes"; readonly info: ObjectInfo; readonly bytes: Uint8Array; readonly expires: number }
  | { readonly kind: "info"; readonly info: ObjectInfo; readonly expires: number } // too large to keep
  | { readonly kind: "missing"; readonly expires: number };

export class CachedStore implements Store {
  readonly description: string;
  readonly #inner: Store;
  readonly #entries = new Map<string, Entry>(); // insertion order = least recently used first
  readonly #lists = new Map<string, { listing: Listing; expires: number }>();
  readonly #loading = new Map<string, Promise<Entry>>();
  readonly #listing = new Map<string, Promise<Listing>>();
  readonly #maxBytes: number;
  readonly #maxObjectBytes: number;
  readonly #ttl: number;
  readonly #missTtl: number;
  readonly #listTtl: number;
  readonly #now: () => number;
  #bytes = 0;

  constructor(inner: Store, options: CacheOptions = {}) {
    this.#inner = inner;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#maxObjectBytes = Math.min(options.maxObjectBytes ?? 8 * 1024 * 1024, this.#maxBytes);
    this.#ttl = options.ttlMs ?? 30_000;
    this.#missTtl = options.missTtlMs ?? 2_000;
    this.#listTtl = options.listTtlMs ?? 5_000;
    this.#now = options.now ?? Date.now;
    this.description = `${inner.description} (cached)`;
  }

  /** Bytes held in memory now. */
  get size(): number {
    return this.#bytes;
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    const entry = this.#fresh(key) ?? (await this.#load(key));
    if (entry.kind === "missing") return null;
    if (entry.kind === "info") return this.#inner.get(key, options); // large: stream it from the backend
    const { info, bytes } = entry;
    const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
    const range = options.range ? resolveRange(options.range, info.size) : undefined;
    if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
    const part = range ? bytes.subarray(range.start, range.end + 1) : bytes;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        if (part.length > 0) controller.enqueue(part);
        controller.close();
      },
    });
    return range ? { info, body, range, bytes: part } : { info, body, bytes: part };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    const entry = this.#fresh(key);
    if (entry) return entry.kind === "missing" ? null : entry.info;
    // A HEAD does not pull the body into memory; it shares a load already under way, if any.
    const loading = this.#loading.get(key);
    if (loading) {
      const loaded = await loading;
      return loaded.kind === "missing" ? null : loaded.info;
    }
    return this.#inner.head(key);
  }

  async list(prefix: string): Promise<Listing> {
    const cached = this.#lists.get(prefix);
    if (cached && cached.expires > this.#now()) return cached.listing;
    let pending = this.#listing.get(prefix);
    if (!pending) {
      pending = this.#inner.list(prefix).then(
        (listing) => {
          this.#lists.set(prefix, { listing, expires: this.#now() + this.#listTtl });
          return listing;
        },
      );
      pending.finally(() => this.#listing.delete(prefix)).catch(() => {});
      this.#listing.set(prefix, pending);
    }
    return pending;
  }

  async close(): Promise<void> {
    this.#entries.clear();
    this.#lists.clear();
    this.#bytes = 0;
    await this.#inner.close?.();
  }

  #fresh(key: string): Entry | undefined {
    const entry = this.#entries.get(key);
    if (!entry) return undefined;
    if (entry.expires <= this.#now()) {
      this.#forget(key, entry);
      return undefined;
    }
    // Move to the most recently used end.
    this.#entries.delete(key);
    this.#entries.set(key, entry);
    return entry;
  }

  /** One backend read per key at a time; everyone asking meanwhile waits for it. */
  #load(key: string): Promise<Entry> {
    let pending = this.#loading.get(key);
    if (!pending) {
      pending = this.#read(key);
      pending.finally(() => this.#loading.delete(key)).catch(() => {});
      this.#loading.set(key, pending);
    }
    return pending;
  }

  async #read(key: string): Promise<Entry> {
    const object = await this.#inner.get(key);
    const now = this.#now();
    if (!object) return this.#remember(key, { kind: "missing", expires: now + this.#missTtl });
    if (object.info.size > this.#maxObjectBytes) {
      await object.body?.cancel();
      return this.#remember(key, { kind: "info", info: object.info, expires: now + this.#ttl });
    }
    const bytes = object.body ? new Uint8Array(await new Response(object.body).arrayBuffer()) : new Uint8Array();
    if (bytes.length !== object.info.size) {
      // The backend sent something other than the object it described: do not keep it.
      return { kind: "info", info: object.info, expires: now };
    }
    return this.#remember(key, { kind: "bytes", info: object.info, bytes, expires: now + this.#ttl });
  }

  #remember(key: string, entry: Entry): Entry {
    const previous = this.#entries.get(key);
    if (previous) this.#forget(key, previous);
    this.#entries.set(key, entry);
    if (entry.kind === "bytes") {
      this.#bytes += entry.bytes.length;
      for (const [oldest, old] of this.#entries) {
        if (this.#bytes <= this.#maxBytes) break;
        this.#forget(oldest, old);
      }
    }
    return entry;
  }

  #forget(key: string, entry: Entry): void {
    this.#entries.delete(key);
    if (entry.kind === "bytes") this.#bytes -= entry.bytes.length;
  }
}
