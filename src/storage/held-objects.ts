import { LRUCache } from "lru-cache";
import { evaluatePreconditions } from "../core/conditional.ts";
import { resolveRange } from "../core/range.ts";
import { Arrival } from "./arrival.ts";
import { discard, Stored, type ChunkReader, type GetOptions, type ObjectInfo, type StoredObject } from "./store.ts";

/** An object held in memory: one buffer that every response sends views of. */
export interface Held {
  readonly info: ObjectInfo;
  readonly bytes: Uint8Array;
  checked: number;
  pins: number;
  evicted: boolean;
  /** Set while the bytes are still arriving from the store: readers follow them. */
  arrival?: Arrival;
}

export interface HeldOptions {
  readonly maxBytes: number;
  readonly onDrop: (bytes: number) => void;
  readonly onEvict: () => void;
}

/**
 * The buffers of cached objects within `maxBytes`, counting buffers that were evicted but are
 * still being sent (pinned): nothing is loaded while they leave no room.
 */
export class HeldObjects {
  readonly #objects: LRUCache<string, Held>;
  readonly #options: HeldOptions;
  /** Bytes of buffers evicted from the LRU that responses still hold. */
  #pinnedEvicted = 0;

  constructor(options: HeldOptions) {
    this.#options = options;
    this.#objects = new LRUCache<string, Held>({
      maxSize: options.maxBytes,
      sizeCalculation: (held) => Math.max(1, held.bytes.length),
      dispose: (held, _key, reason) => {
        if (reason === "evict") options.onEvict();
        if (held.pins > 0) {
          held.evicted = true;
          this.#pinnedEvicted += held.bytes.length;
        } else options.onDrop(held.bytes.length);
      },
    });
  }

  /** Bytes held in memory now: cached buffers and evicted ones still being sent. */
  get size(): number {
    return this.#objects.calculatedSize + this.#pinnedEvicted;
  }

  get count(): number {
    return this.#objects.size;
  }

  get(key: string): Held | undefined {
    return this.#objects.get(key);
  }

  delete(key: string): void {
    this.#objects.delete(key);
  }

  clear(): void {
    this.#objects.clear();
  }

  /**
   * Holds `object` (counted from now on, while its bytes arrive: readers follow them, and nobody
   * reads it again); undefined when it does not fit.
   */
  hold(key: string, object: StoredObject, checked: number): Held | undefined {
    if (!this.#makeRoom(object.info.size)) return undefined;
    const held: Held = { info: object.info, bytes: new Uint8Array(object.info.size), checked, pins: 0, evicted: false, arrival: new Arrival() };
    this.#objects.set(key, held);
    void this.#receive(key, held, object);
    return held;
  }

  /** A response of the held object: conditionals and ranges answered from its facts, the body a view of its buffer. */
  serve(held: Held, options: GetOptions): StoredObject {
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
    return () => {
      if (released) return;
      released = true;
      held.pins--;
      if (held.pins === 0 && held.evicted) {
        held.evicted = false;
        this.#pinnedEvicted -= held.bytes.length;
        this.#options.onDrop(held.bytes.length);
      }
    };
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
    const max = this.#options.maxBytes;
    if (size + this.#pinnedEvicted > max) return false;
    for (const key of this.#objects.rkeys()) {
      if (this.size + size <= max) break;
      if (this.#objects.peek(key)?.pins === 0) {
        this.#objects.delete(key);
        this.#options.onEvict();
      }
    }
    return this.size + size <= max;
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
