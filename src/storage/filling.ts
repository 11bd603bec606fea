import fs from "node:fs";
import { Arrival } from "./arrival.ts";
import type { ChunkReader, ObjectInfo } from "./store.ts";

/** A download being written to a file that readers follow as it grows (see `Arrival`). */
export class Filling extends Arrival {
  /** Resolves when the download has ended, kept or not (never rejects). */
  settled: Promise<void> = Promise.resolve();
  #users = 1; // the download itself

  constructor(
    readonly info: ObjectInfo,
    /** Opened for reading and writing: readers read where the download writes. */
    readonly fd: number,
  ) {
    super();
  }

  /** The download ended: verified and kept, or failed. The descriptor closes once no reader uses it. */
  override settle(outcome: "kept" | Error): void {
    super.settle(outcome);
    this.#release();
  }

  #release(): void {
    if (--this.#users === 0) fs.close(this.fd, () => {});
  }

  /** `length` bytes from `start`, as the download provides them. */
  reader(start: number, length: number): ChunkReader {
    this.#users++;
    const end = start + length;
    let position = start;
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      this.#release();
    };
    const filling = this;
    return {
      // The rest is in the copy, or will be: a sender follows the download in the file itself.
      get file() {
        if (closed) return undefined;
        return { fd: filling.fd, start: position, length: end - position, arriving: filling.kept ? undefined : (at: number) => filling.readable(at, end) };
      },
      read: async (max, into) => {
        if (closed) throw new Error("read after close");
        let available: number;
        try {
          available = await this.readable(position, end);
        } catch (error) {
          close();
          throw error;
        }
        if (position >= end) {
          close();
          return null;
        }
        const wanted = Math.min(max, available - position, into?.length ?? Infinity);
        const buffer = into ?? Buffer.allocUnsafe(wanted);
        const bytesRead = await readAt(this.fd, buffer, wanted, position);
        if (bytesRead === 0) throw new Error("disk copy shrank while being read");
        position += bytesRead;
        return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
      },
      close,
    };
  }
}

const readAt = (fd: number, buffer: Uint8Array, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))));
