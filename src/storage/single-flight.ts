/**
 * One operation per key at a time: whoever asks while it runs shares its promise, so a rollout's
 * hundred requests for one object cost the store one call.
 */
export class SingleFlight<V> {
  readonly #pending = new Map<string, Promise<V>>();

  get size(): number {
    return this.#pending.size;
  }

  has(key: string): boolean {
    return this.#pending.has(key);
  }

  peek(key: string): Promise<V> | undefined {
    return this.#pending.get(key);
  }

  run(key: string, start: () => Promise<V>): Promise<V> {
    let pending = this.#pending.get(key);
    if (!pending) {
      pending = start();
      this.#pending.set(key, pending);
      pending.finally(() => this.#pending.delete(key)).catch(() => {});
    }
    return pending;
  }
}

/** fresh: answer; stale: answer, and revalidate in the background; expired: revalidate first (RFC 5861's stale-while-revalidate, for twice the TTL). */
export type Age = "fresh" | "stale" | "expired";

export function ageOf(now: number, checked: number, ttl: number): Age {
  const age = now - checked;
  return age < ttl ? "fresh" : age < 2 * ttl ? "stale" : "expired";
}
