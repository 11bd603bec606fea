import type { CallOptions, GetOptions, Listing, ObjectInfo, Store, StoredObject } from "./store.ts";

export type StoreOperation = "get" | "head" | "list";
/** not_found is an answer, not a failure: scanners and old Console versions ask for missing objects all day. */
export type StoreOutcome = "ok" | "not_found" | "error";

/**
 * Reports every call to the store below it with its outcome and how long the store took to
 * answer (to the first byte of a body, not to its end: a slow client must not look like a slow
 * store). Placed on the backend itself, so cached answers are not counted and retries are.
 */
export class ObservedStore implements Store {
  readonly description: string;

  constructor(
    private readonly inner: Store,
    private readonly observe: (operation: StoreOperation, outcome: StoreOutcome, seconds: number) => void,
  ) {
    this.description = inner.description;
  }

  get(key: string, options?: GetOptions): Promise<StoredObject | null> {
    return this.#timed("get", () => this.inner.get(key, options), (o) => o === null);
  }

  head(key: string, options?: CallOptions): Promise<ObjectInfo | null> {
    return this.#timed("head", () => this.inner.head(key, options), (o) => o === null);
  }

  list(prefix: string, options?: CallOptions): Promise<Listing> {
    return this.#timed("list", () => this.inner.list(prefix, options), () => false);
  }

  close(): Promise<void> {
    return this.inner.close?.() ?? Promise.resolve();
  }

  async #timed<T>(operation: StoreOperation, call: () => Promise<T>, missing: (result: T) => boolean): Promise<T> {
    const started = performance.now();
    try {
      const result = await call();
      this.observe(operation, missing(result) ? "not_found" : "ok", (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.observe(operation, "error", (performance.now() - started) / 1000);
      throw error;
    }
  }
}
