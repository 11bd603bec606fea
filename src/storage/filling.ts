import fs from "node:fs";
import type { ChunkReader, ObjectInfo } from "./store.ts";

/**
 * A download being written to a file that readers follow as it grows: the first gateways to ask
 * for an object get its bytes while the store is still sending it, from one download.
 *
 * Readers never get the last byte before the download is verified (`kept`): if the store sent
 * bytes that do not match its ETag, every reader fails short of the declared length, so no client
 * takes a damaged plugin for a complete one.
 */
export class Filling {
  /** Bytes written to the file so far. */
  written = 0;
  /** Resolves when the download has ended, kept or not (never rejects). */
  settled: Promise<void> = Promise.resolve();
  #outcome: "filling" | "kept" | Error = "filling";
  #users = 1; // the download itself
  #changed!: Promise<void>;
  #signal!: () => void;

  constructor(
    readonly info: ObjectInfo,
    /** Opened for reading and writing: readers read where the download writes. */
    readonly fd: number,
  ) {
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

  /** The download wrote `bytes` more. */
  grew(bytes: number): void {
    this.written += bytes;
    this.#notify();
  }

  /** The download ended: verified and kept, or failed. The descriptor closes once no reader uses it. */
  settle(outcome: "kept" | Error): void {
    this.#outcome = outcome;
    this.#notify();
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
    return {
      read: async (max, into) => {
        for (;;) {
          if (closed) throw new Error("read after close");
          if (position >= end) {
            close();
            return null;
          }
          const outcome = this.#outcome;
          if (outcome instanceof Error) {
            close();
            throw outcome;
          }
          const available = outcome === "kept" ? end : Math.min(end, this.written, this.info.size - 1);
          if (position < available) {
            const wanted = Math.min(max, available - position, into?.length ?? Infinity);
            const buffer = into ?? Buffer.allocUnsafe(wanted);
            const bytesRead = await readAt(this.fd, buffer, wanted, position);
            if (bytesRead === 0) throw new Error("disk copy shrank while being read");
            position += bytesRead;
            return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
          }
          await this.#changed;
        }
      },
      close,
    };
  }
}

const readAt = (fd: number, buffer: Uint8Array, length: number, position: number) =>
  new Promise<number>((resolve, reject) => fs.read(fd, buffer, 0, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))));
