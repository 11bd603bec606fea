import { evaluatePreconditions } from "../core/conditional.ts";
import { HeldObjects, type Held } from "./held-objects.ts";
import { ageOf, SingleFlight } from "./single-flight.ts";
import { StoreFacts } from "./store-facts.ts";
import { discard, type CallOptions, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "./store.ts";

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
  /** Objects this says no to are not held either: the layer below sends them better (a file the kernel sends). */
  readonly holds?: (info: ObjectInfo) => boolean;
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
 * another request's load; bypass: not for memory (too large, or a file the kernel sends), read from the layer below.
 */
export type CacheOutcome = "hit" | "miss" | "shared" | "bypass" | "disk";

type Loaded =
  | { readonly kind: "held"; readonly held: Held }
  | { readonly kind: "missing" }
  /** Not kept in memory; the caller that started the load gets the live object. */
  | { readonly kind: "direct"; readonly object: StoredObject; taken: boolean };

export const DEFAULT_CACHE_BYTES = 128 * 1024 * 1024;

/** The cache's decisions; what it holds is in HeldObjects (buffers) and StoreFacts (facts, misses, listings). */
export class CachedStore implements Store {
  readonly description: string;
  readonly #inner: Store;
  readonly #held: HeldObjects;
  readonly #facts: StoreFacts;
  readonly #loading = new SingleFlight<Loaded>();
  readonly #checking = new SingleFlight<Held | undefined>();
  readonly #holds: (info: ObjectInfo) => boolean;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #onLookup: (outcome: CacheOutcome) => void;

  constructor(inner: Store, options: CacheOptions = {}) {
    this.#inner = inner;
    const maxBytes = options.maxBytes ?? DEFAULT_CACHE_BYTES;
    const maxObjectBytes = Math.min(options.maxObjectBytes ?? 32 * 1024 * 1024, Math.floor(maxBytes / 2));
    const holds = options.holds;
    this.#holds = holds ? (info) => info.size <= maxObjectBytes && holds(info) : (info) => info.size <= maxObjectBytes;
    this.#ttl = options.ttlMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    this.#onLookup = options.onLookup ?? (() => {});
    this.#held = new HeldObjects({ maxBytes, onDrop: options.onDrop ?? (() => {}), onEvict: options.onEvict ?? (() => {}) });
    this.#facts = new StoreFacts(inner, {
      ttlMs: this.#ttl,
      missTtlMs: options.missTtlMs ?? 2_000,
      listTtlMs: options.listTtlMs ?? 5_000,
      maxEntries: options.maxEntries ?? 10_000,
      now: this.#now,
      testClock: options.now !== undefined,
    });
    this.description = `${inner.description} (cached)`;
  }

  /** Bytes held in memory now: cached buffers and evicted ones still being sent. */
  get size(): number {
    return this.#held.size;
  }

  /** Entries of every kind, for tests and metrics. */
  get entries(): { objects: number; facts: number; lists: number; loading: number } {
    return { objects: this.#held.count, ...this.#facts.entries, loading: this.#loading.size };
  }

  get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    // Held and not expired, the usual answer: no await on the way.
    const held = this.#held.get(key);
    if (held) {
      const age = ageOf(this.#now(), held.checked, this.#ttl);
      if (age !== "expired") {
        this.#onLookup("hit");
        if (age === "stale") void this.#revalidated(key, held);
        return Promise.resolve(this.#held.serve(held, options));
      }
    }
    return this.#get(key, options);
  }

  async #get(key: string, options: GetOptions): Promise<StoredObject | null> {
    const held = this.#held.get(key);
    const current = held && (await this.#revalidated(key, held));
    if (current) {
      this.#onLookup("hit");
      return this.#held.serve(current, options);
    }
    const fact = this.#facts.fact(key);
    if (fact && !fact.info) {
      this.#onLookup("hit");
      return null;
    }
    if (fact?.info && !this.#holds(fact.info)) {
      this.#onLookup("bypass");
      // A revalidation the facts answer (304, 412) needs no read of the object: no file opened, no S3 GET.
      if (options.conditions && evaluatePreconditions(options.conditions, fact.info, "GET") !== "proceed") return { info: fact.info, body: null };
      return this.#inner.get(key, options);
    }
    this.#onLookup(this.#loading.has(key) ? "shared" : "miss");
    const loaded = await this.#loading.run(key, () => this.#read(key));
    switch (loaded.kind) {
      case "missing":
        return null;
      case "held":
        return this.#held.serve(loaded.held, options);
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
    const held = this.#held.get(key);
    if (held) {
      const age = ageOf(this.#now(), held.checked, this.#ttl);
      if (age === "stale") void this.#revalidated(key, held);
      if (age !== "expired") return held.info;
    }
    const fact = this.#facts.fact(key);
    if (fact) return fact.info;
    const loading = this.#loading.peek(key);
    if (loading) {
      const loaded = await loading;
      return loaded.kind === "missing" ? null : loaded.kind === "held" ? loaded.held.info : loaded.object.info;
    }
    return this.#facts.ask(key, options);
  }

  list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    return this.#facts.list(prefix, options);
  }

  async close(): Promise<void> {
    this.#held.clear();
    this.#facts.clear();
    await this.#inner.close?.();
  }

  /** The held copy, or undefined when a revalidation (one per key at a time) finds the object changed or gone. */
  #revalidated(key: string, held: Held): Promise<Held | undefined> {
    return this.#checking.run(key, () => this.#revalidate(key, held));
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
    this.#held.delete(key);
    this.#facts.remember(key, info);
    return undefined;
  }

  async #read(key: string): Promise<Loaded> {
    const object = await this.#inner.get(key);
    if (!object) {
      this.#facts.remember(key, null);
      return { kind: "missing" };
    }
    this.#facts.remember(key, object.info);
    const held = this.#holds(object.info) ? this.#held.hold(key, object, this.#now()) : undefined;
    return held ? { kind: "held", held } : { kind: "direct", object, taken: false };
  }
}
