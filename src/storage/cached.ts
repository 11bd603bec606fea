import { LRUCache } from "lru-cache";
import { evaluatePreconditions } from "../core/conditional.ts";
import { resolveRange } from "../core/range.ts";
import { Arrival } from "./arrival.ts";
import { discard, Stored, type CallOptions, type ChunkReader, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "./store.ts";

/**
 * An in-memory cache in front of any Store, sized for a gateway rollout: every replica asks
 * for the same plugins at once. Concurrent reads of a key share one backend read; objects up to
 * `maxObjectBytes` are then answered from one shared buffer (no copy per request, whatever the
 * number of connections). Larger objects, or any object when the budget is taken, go to the
 * backend per request: a file store streams them from disk, an S3 store from the disk cache.
 *
 * Memory stays within `maxBytes`, counting buffers that were evicted but are still being sent
 * (pinned): nothing is loaded while they leave no room. Facts, misses and listings are kept in
 * entry-bounded LRUs with short lifetimes, so a scanner asking for a million names costs a
 * fixed amount of memory.
 *
 * Freshness: after `ttlMs` an entry is revalidated with a HEAD (same ETag and size: kept, so a
 * 20 MiB plugin is not read again every 30 s). For as long again, it is still answered while one
 * revalidation runs in the background (RFC 5861's stale-while-revalidate), so no request waits
 * for the store at the moment entries expire; beyond that, the revalidation is awaited. When the
 * store fails, cached objects keep serving.
 */
export interface CacheOptions {
  /** Memory for object bytes, in total, pinned buffers included. */
  readonly maxBytes?: number;
  /** Larger objects are never held in memory. */
  readonly maxObjectBytes?: number;
  readonly ttlMs?: number;
  readonly missTtlMs?: number;
  readonly listTtlMs?: number;
  /** Facts and misses remembered at most (each a few hundred bytes). */
  readonly maxEntries?: number;
  /** Told the size of every buffer the cache lets go (nothing sends it any more): the runtime may collect it early. */
  readonly onDrop?: (bytes: number) => void;
  /** Told how each read was answered, in the caller's async context (metrics, the access log). */
  readonly onLookup?: (outcome: CacheOutcome) => void;
  /** Told each time an object is pushed out to make room. */
  readonly onEvict?: () => void;
  /** For tests. */
  readonly now?: () => number;
}

/**
 * hit: from memory (or a remembered miss); miss: this read loaded it; shared: it waited for
 * another request's load; bypass: too large for memory, read from the layer below.
 */
export type CacheOutcome = "hit" | "miss" | "shared" | "bypass" | "disk";

interface Held {
  readonly info: ObjectInfo;
  readonly bytes: Uint8Array;
  checked: number;
  pins: number;
  evicted: boolean;
  /** Set while the bytes are still arriving from the store: readers follow them. */
  arrival?: Arrival;
}

/** What the store said of a key (its facts, or that it has no such object), and when. */
interface Fact {
  readonly info: ObjectInfo | null;
  readonly checked: number;
}

interface Listed {
  readonly listing: Listing;
  readonly checked: number;
}

/** fresh: answer; stale: answer, and revalidate in the background; expired: revalidate first. */
type Age = "fresh" | "stale" | "expired";

type Loaded =
  | { readonly kind: "held"; readonly held: Held }
  | { readonly kind: "missing" }
  /** Not kept in memory; the caller that started the load gets the live object. */
  | { readonly kind: "direct"; readonly object: StoredObject; taken: boolean };

export const DEFAULT_CACHE_BYTES = 128 * 1024 * 1024;

export class CachedStore implements Store {
  readonly description: string;
  readonly #inner: Store;
  readonly #objects: LRUCache<string, Held>;
  readonly #facts: LRUCache<string, Fact>;
  readonly #lists: LRUCache<string, Listed>;
  readonly #loading = new Map<string, Promise<Loaded>>();
  readonly #checking = new Map<string, Promise<Held | undefined>>();
  readonly #asking = new Map<string, Promise<ObjectInfo | null>>();
  readonly #listing = new Map<string, Promise<Listing>>();
  readonly #maxBytes: number;
  readonly #maxObjectBytes: number;
  readonly #ttl: number;
  readonly #missTtl: number;
  readonly #listTtl: number;
  readonly #now: () => number;
  readonly #onDrop: (bytes: number) => void;
  readonly #onLookup: (outcome: CacheOutcome) => void;
  readonly #onEvict: () => void;
  /** Bytes of buffers evicted from the LRU that responses still hold. */
  #pinnedEvicted = 0;

  constructor(inner: Store, options: CacheOptions = {}) {
    this.#inner = inner;
    this.#maxBytes = options.maxBytes ?? DEFAULT_CACHE_BYTES;
    this.#maxObjectBytes = Math.min(options.maxObjectBytes ?? 32 * 1024 * 1024, Math.floor(this.#maxBytes / 2));
    this.#ttl = options.ttlMs ?? 30_000;
    this.#missTtl = options.missTtlMs ?? 2_000;
    this.#listTtl = options.listTtlMs ?? 5_000;
    this.#now = options.now ?? Date.now;
    this.#onDrop = options.onDrop ?? (() => {});
    this.#onLookup = options.onLookup ?? (() => {});
    this.#onEvict = options.onEvict ?? (() => {});
    const maxEntries = options.maxEntries ?? 10_000;
    this.#objects = new LRUCache<string, Held>({
      maxSize: this.#maxBytes,
      sizeCalculation: (held) => Math.max(1, held.bytes.length),
      dispose: (held, _key, reason) => {
        if (reason === "evict") this.#onEvict();
        if (held.pins > 0) {
          held.evicted = true;
          this.#pinnedEvicted += held.bytes.length;
        } else this.#onDrop(held.bytes.length);
      },
    });
    // Entries live twice their TTL: fresh, then stale (answered while revalidated); the ages are
    // ours to judge. A clock of the tests' own must be read on every check (lru-cache otherwise caches it for 1 ms).
    const clock = options.now ? { perf: { now: options.now }, ttlResolution: 0 } : {};
    this.#facts = new LRUCache<string, Fact>({ max: maxEntries, ttl: 2 * this.#ttl, ...clock });
    // A listing's cost grows with its entries: bound the total of entries, not the number of listings.
    this.#lists = new LRUCache<string, Listed>({
      max: Math.max(1, Math.floor(maxEntries / 10)),
      maxSize: 20 * maxEntries,
      sizeCalculation: (l) => 1 + l.listing.prefixes.length + l.listing.objects.length,
      ttl: 2 * this.#listTtl,
      ...clock,
    });
    this.description = `${inner.description} (cached)`;
  }

  /** Bytes held in memory now: cached buffers and evicted ones still being sent. */
  get size(): number {
    return this.#objects.calculatedSize + this.#pinnedEvicted;
  }

  /** Entries of every kind, for tests and metrics. */
  get entries(): { objects: number; facts: number; lists: number; loading: number } {
    return { objects: this.#objects.size, facts: this.#facts.size, lists: this.#lists.size, loading: this.#loading.size };
  }

  get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    // Held and not expired, the usual answer: no await on the way.
    const held = this.#objects.get(key);
    if (held && this.#age(held.checked, this.#ttl) !== "expired") {
      this.#onLookup("hit");
      if (this.#age(held.checked, this.#ttl) === "stale") void this.#revalidated(key, held);
      return Promise.resolve(this.#serve(held, options));
    }
    return this.#get(key, options);
  }

  async #get(key: string, options: GetOptions): Promise<StoredObject | null> {
    const held = this.#objects.get(key);
    const current = held && (await this.#revalidated(key, held));
    if (current) {
      this.#onLookup("hit");
      return this.#serve(current, options);
    }
    const fact = this.#fact(key);
    if (fact && !fact.info) {
      this.#onLookup("hit");
      return null;
    }
    if (fact?.info && fact.info.size > this.#maxObjectBytes) {
      this.#onLookup("bypass");
      return this.#inner.get(key, options);
    }
    const joined = this.#loading.has(key);
    this.#onLookup(joined ? "shared" : "miss");
    const loaded = await this.#load(key);
    switch (loaded.kind) {
      case "missing":
        return null;
      case "held":
        return this.#serve(loaded.held, options);
      case "direct":
        // The first caller takes the live object unless it wants a part of it; the others read for themselves.
        if (!loaded.taken) {
          loaded.taken = true;
          if (!options.range && !options.conditions) return loaded.object;
          discard(loaded.object);
        }
        return this.#inner.get(key, options);
    }
  }

  async head(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    const held = this.#objects.get(key);
    if (held) {
      const age = this.#age(held.checked, this.#ttl);
      if (age === "stale") void this.#revalidated(key, held);
      if (age !== "expired") return held.info;
    }
    const fact = this.#fact(key);
    if (fact) return fact.info;
    const loading = this.#loading.get(key);
    if (loading) {
      const loaded = await loading;
      return loaded.kind === "missing" ? null : loaded.kind === "held" ? loaded.held.info : loaded.object.info;
    }
    return this.#ask(key, options);
  }

  async list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    const listed = this.#lists.get(prefix);
    const age = listed ? this.#age(listed.checked, this.#listTtl) : "expired";
    if (age === "stale") this.#list(prefix).catch(() => {}); // the store failing: the listing stays as it was
    if (listed && age !== "expired") return listed.listing;
    return this.#list(prefix, options);
  }

  /** One listing per prefix at a time. */
  #list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    let pending = this.#listing.get(prefix);
    if (!pending) {
      pending = this.#inner.list(prefix, options).then((listing) => {
        this.#lists.set(prefix, { listing, checked: this.#now() });
        return listing;
      });
      this.#listing.set(prefix, pending);
      pending.finally(() => this.#listing.delete(prefix)).catch(() => {});
    }
    return pending;
  }

  async close(): Promise<void> {
    this.#objects.clear();
    this.#facts.clear();
    this.#lists.clear();
    await this.#inner.close?.();
  }

  #age(checked: number, ttl: number): Age {
    const age = this.#now() - checked;
    return age < ttl ? "fresh" : age < 2 * ttl ? "stale" : "expired";
  }

  /** A remembered fact (or miss), revalidated in the background once stale; undefined once expired. */
  #fact(key: string): Fact | undefined {
    const fact = this.#facts.get(key);
    if (!fact) return undefined;
    const age = this.#age(fact.checked, fact.info ? this.#ttl : this.#missTtl);
    if (age === "stale") this.#ask(key).catch(() => {});
    return age === "expired" ? undefined : fact;
  }

  /** One HEAD per key at a time; its answer is remembered. */
  #ask(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    let pending = this.#asking.get(key);
    if (!pending) {
      pending = this.#inner.head(key, options).then((info) => {
        this.#remember(key, info);
        return info;
      });
      this.#asking.set(key, pending);
      pending.finally(() => this.#asking.delete(key)).catch(() => {});
    }
    return pending;
  }

  /** The held copy, or undefined when a revalidation (one per key at a time) finds the object changed or gone. */
  #revalidated(key: string, held: Held): Promise<Held | undefined> {
    let pending = this.#checking.get(key);
    if (!pending) {
      pending = this.#revalidate(key, held);
      this.#checking.set(key, pending);
      pending.finally(() => this.#checking.delete(key)).catch(() => {});
    }
    return pending;
  }

  async #revalidate(key: string, held: Held): Promise<Held | undefined> {
    let info: ObjectInfo | null;
    try {
      info = await this.#inner.head(key);
    } catch {
      return held; // the store is failing: what we hold is still the best answer
    }
    if (info && info.etag === held.info.etag && info.size === held.info.size) {
      held.checked = this.#now();
      return held;
    }
    this.#objects.delete(key);
    this.#remember(key, info);
    return undefined;
  }

  #serve(held: Held, options: GetOptions): StoredObject {
    const { info, bytes, arrival } = held;
    const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
    const range = options.range ? resolveRange(options.range, info.size) : undefined;
    if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
    const part = range ? bytes.subarray(range.start, range.end + 1) : bytes;
    const release = this.#pin(held);
    return new Stored(info, arrival ? arrivingReader(arrival, bytes, range?.start ?? 0, part.length) : part, { range, release });
  }

  /** Counts a reader of the held buffer; the returned function, called once, gives it back. */
  #pin(held: Held): () => void {
    held.pins++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      held.pins--;
      if (held.pins === 0 && held.evicted) {
        held.evicted = false;
        this.#pinnedEvicted -= held.bytes.length;
        this.#onDrop(held.bytes.length);
      }
    };
    return release;
  }

  /** One backend read per key at a time; everyone asking meanwhile waits for it. */
  #load(key: string): Promise<Loaded> {
    let pending = this.#loading.get(key);
    if (!pending) {
      pending = this.#read(key);
      this.#loading.set(key, pending);
      pending.finally(() => this.#loading.delete(key)).catch(() => {});
    }
    return pending;
  }

  async #read(key: string): Promise<Loaded> {
    const object = await this.#inner.get(key);
    if (!object) {
      this.#remember(key, null);
      return { kind: "missing" };
    }
    const { info } = object;
    this.#remember(key, info);
    if (info.size > this.#maxObjectBytes || !this.#makeRoom(info.size)) return { kind: "direct", object, taken: false };
    // Held (and counted) from now on, while its bytes arrive: readers follow them, and nobody reads it again.
    const held: Held = { info, bytes: new Uint8Array(info.size), checked: this.#now(), pins: 0, evicted: false, arrival: new Arrival() };
    this.#objects.set(key, held);
    void this.#receive(key, held, object);
    return { kind: "held", held };
  }

  async #receive(key: string, held: Held, object: StoredObject): Promise<void> {
    const arrival = held.arrival!;
    const release = this.#pin(held); // not evicted while it arrives
    try {
      await readInto(object, held.bytes, (bytes) => arrival.grew(bytes));
      delete held.arrival;
      arrival.settle("kept");
    } catch (error) {
      // The backend failed, or sent something other than the object it described: keep nothing.
      if (this.#objects.peek(key) === held) this.#objects.delete(key);
      arrival.settle(error instanceof Error ? error : new Error(String(error)));
    } finally {
      release();
    }
  }

  /** Evicts unpinned entries, least recently used first, until `size` more bytes fit; false when they cannot. */
  #makeRoom(size: number): boolean {
    if (size + this.#pinnedEvicted > this.#maxBytes) return false;
    for (const key of this.#objects.rkeys()) {
      if (this.size + size <= this.#maxBytes) break;
      if (this.#objects.peek(key)?.pins === 0) {
        this.#objects.delete(key);
        this.#onEvict();
      }
    }
    return this.size + size <= this.#maxBytes;
  }

  #remember(key: string, info: ObjectInfo | null): void {
    if (info) this.#facts.set(key, { info, checked: this.#now() });
    else this.#facts.set(key, { info: null, checked: this.#now() }, { ttl: 2 * this.#missTtl });
  }
}

/** Reads an object into `buffer` (its size), telling `grew` as bytes arrive; fails unless exactly that many arrive. */
async function readInto(object: StoredObject, buffer: Uint8Array, grew: (bytes: number) => void): Promise<void> {
  let filled = 0;
  try {
    if (object.bytes) {
      if (object.bytes.length !== buffer.length) throw new Error(`store returned ${object.bytes.length} bytes for ${object.info.key}, which it described as ${buffer.length}`);
      buffer.set(object.bytes);
      grew(buffer.length);
      return;
    }
    const reader = object.reader ?? streamChunks(object.body);
    // Readers that can fill the destination in place do (a file); others hand their own chunks.
    const next = () => reader.read(1024 * 1024, filled < buffer.length ? buffer.subarray(filled) : undefined);
    for (let chunk = await next(); chunk; chunk = await next()) {
      if (filled + chunk.length > buffer.length) throw new Error(`store returned more than the ${buffer.length} bytes it described for ${object.info.key}`);
      const inPlace = chunk.buffer === buffer.buffer && chunk.byteOffset === buffer.byteOffset + filled;
      if (!inPlace) buffer.set(chunk, filled);
      filled += chunk.length;
      grew(chunk.length);
    }
    if (filled !== buffer.length) throw new Error(`store returned ${filled} bytes for ${object.info.key}, which it described as ${buffer.length}`);
  } finally {
    discard(object);
  }
}

/** A web stream's chunks, read as a chunk reader. */
function streamChunks(body: ReadableStream<Uint8Array> | null): ChunkReader {
  const stream = body?.getReader();
  return {
    read: async () => (stream ? stream.read().then((r) => (r.done ? null : r.value)) : null),
    close: () => void stream?.cancel().catch(() => {}),
  };
}

/** `length` bytes of a held buffer from `start`, handed out as they arrive (no copy: views of the one buffer). */
function arrivingReader(arrival: Arrival, bytes: Uint8Array, start: number, length: number): ChunkReader {
  const end = start + length;
  let position = start;
  return {
    views: true,
    async read(max) {
      const available = await arrival.readable(position, end);
      if (position >= end) return null;
      const chunk = bytes.subarray(position, Math.min(available, position + max));
      position += chunk.length;
      return chunk;
    },
    close() {},
  };
}
