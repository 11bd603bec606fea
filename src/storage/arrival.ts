/**
 * Bytes of an object that are still arriving from the store (into a disk copy, or into the memory
 * cache's buffer), for readers that follow them: the first gateways to ask for an object get its
 * bytes while the store is still sending it, from one download.
 *
 * Readers never get the last byte they asked for before the download is verified (`kept`): if the
 * store sent fewer bytes than it described, more, or bytes that do not match its ETag, every
 * reader fails short of its declared length, so no client takes a damaged plugin for a complete one.
 */
export class Arrival {
  /** Bytes arrived so far. */
  arrived = 0;
  #outcome: "arriving" | "kept" | Error = "arriving";
  #changed!: Promise<void>;
  #signal!: () => void;

  constructor() {
    this.#next();
  }

  #next(): void {
    this.#changed = new Promise((resolve) => (this.#signal = resolve));
  }

  #notify(): void {
    const signal = this.#signal;
    this.#next();
    signal();
  }

  grew(bytes: number): void {
    this.arrived += bytes;
    this.#notify();
  }

  settle(outcome: "kept" | Error): void {
    this.#outcome = outcome;
    this.#notify();
  }

  get kept(): boolean {
    return this.#outcome === "kept";
  }

  /** Waits until a byte at `position` (before `end`) may be read; resolves the end of what may be read now, throws the failure. */
  async readable(position: number, end: number): Promise<number> {
    for (;;) {
      const outcome = this.#outcome;
      if (outcome instanceof Error) throw outcome;
      // The last byte a reader wants (of the object, or of its range) waits for the verdict.
      const available = outcome === "kept" ? end : Math.min(end - 1, this.arrived);
      if (position < available || position >= end) return available;
      await this.#changed;
    }
  }
}
