/** Runs `work` over `items` with at most `limit` at a time; results keep the input order. */
export async function mapPool<T, R>(items: readonly T[], limit: number, work: (item: T) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      results[index] = await work(items[index]!);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  return results;
}

/**
 * A budget of bytes held at once: `take` waits until the bytes are free (a request larger than
 * the whole budget waits until nothing else is held, then runs alone).
 */
export class ByteBudget {
  #free: number;
  readonly #waiting: (() => void)[] = [];

  constructor(readonly max: number) {
    this.#free = max;
  }

  async take(bytes: number): Promise<() => void> {
    const amount = Math.min(bytes, this.max);
    while (this.#free < amount) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    this.#free -= amount;
    return () => {
      this.#free += amount;
      for (const wake of this.#waiting.splice(0)) wake();
    };
  }
}
