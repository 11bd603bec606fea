import { LRUCache } from "lru-cache";
import { ageOf, SingleFlight } from "./single-flight.ts";
import type { CallOptions, Listing, ObjectInfo, Store } from "./store.ts";

/** What the store said of a key (its facts, or that it has no such object), and when. */
export interface Fact {
  readonly info: ObjectInfo | null;
  readonly checked: number;
}

interface Listed {
  readonly listing: Listing;
  readonly checked: number;
}

export interface FactOptions {
  readonly ttlMs: number;
  readonly missTtlMs: number;
  readonly listTtlMs: number;
  /** Facts and misses remembered at most (each a few hundred bytes); listings get a tenth of it. */
  readonly maxEntries: number;
  readonly now: () => number;
  /** The tests' own clock: read on every check (lru-cache otherwise caches it for 1 ms). */
  readonly testClock: boolean;
}

/**
 * Facts, misses and listings of the store below, in entry-bounded LRUs with short lifetimes, so a
 * scanner asking for a million names costs a fixed amount of memory. One HEAD per key and one
 * listing per prefix at a time; stale entries answer while they are asked again in the background.
 */
export class StoreFacts {
  readonly #inner: Store;
  readonly #options: FactOptions;
  readonly #facts: LRUCache<string, Fact>;
  readonly #lists: LRUCache<string, Listed>;
  readonly #asking = new SingleFlight<ObjectInfo | null>();
  readonly #listing = new SingleFlight<Listing>();

  constructor(inner: Store, options: FactOptions) {
    this.#inner = inner;
    this.#options = options;
    // Entries live twice their TTL: fresh, then stale (answered while revalidated); the ages are ours to judge.
    const clock = options.testClock ? { perf: { now: options.now }, ttlResolution: 0 } : {};
    this.#facts = new LRUCache<string, Fact>({ max: options.maxEntries, ttl: 2 * options.ttlMs, ...clock });
    // A listing's cost grows with its entries: bound the total of entries, not the number of listings.
    this.#lists = new LRUCache<string, Listed>({
      max: Math.max(1, Math.floor(options.maxEntries / 10)),
      maxSize: 20 * options.maxEntries,
      sizeCalculation: (l) => 1 + l.listing.prefixes.length + l.listing.objects.length,
      ttl: 2 * options.listTtlMs,
      ...clock,
    });
  }

  get entries(): { facts: number; lists: number } {
    return { facts: this.#facts.size, lists: this.#lists.size };
  }

  remember(key: string, info: ObjectInfo | null): void {
    const checked = this.#options.now();
    if (info) this.#facts.set(key, { info, checked });
    else this.#facts.set(key, { info: null, checked }, { ttl: 2 * this.#options.missTtlMs });
  }

  /** A remembered fact (or miss), asked again in the background once stale; undefined once expired. */
  fact(key: string): Fact | undefined {
    const fact = this.#facts.get(key);
    if (!fact) return undefined;
    const age = ageOf(this.#options.now(), fact.checked, fact.info ? this.#options.ttlMs : this.#options.missTtlMs);
    if (age === "stale") this.ask(key).catch(() => {});
    return age === "expired" ? undefined : fact;
  }

  /** The store's HEAD, remembered. */
  ask(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    return this.#asking.run(key, () =>
      this.#inner.head(key, options).then((info) => {
        this.remember(key, info);
        return info;
      }),
    );
  }

  async list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    const listed = this.#lists.get(prefix);
    const age = listed ? ageOf(this.#options.now(), listed.checked, this.#options.listTtlMs) : "expired";
    if (age === "stale") this.#list(prefix).catch(() => {}); // the store failing: the listing stays as it was
    if (listed && age !== "expired") return listed.listing;
    return this.#list(prefix, options);
  }

  #list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    return this.#listing.run(prefix, () =>
      this.#inner.list(prefix, options).then((listing) => {
        this.#lists.set(prefix, { listing, checked: this.#options.now() });
        return listing;
      }),
    );
  }

  clear(): void {
    this.#facts.clear();
    this.#lists.clear();
  }
}
