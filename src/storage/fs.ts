import fs, { type Stats } from "node:fs";
import { link, mkdir, readdir, rename, rm, rmdir, stat, writeFile } from "node:fs/promises";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { evaluatePreconditions } from "../core/conditional.ts";
import { resolveRange } from "../core/range.ts";
import { StoreUnavailableError } from "../core/errors.ts";
import { openFile, type OpenFile, type OpenFiles } from "./open-files.ts";
import { Stored, type ChunkReader, type GetOptions, type Listing, type ObjectInfo, type StoredObject, type WritableStore } from "./store.ts";

/**
 * A local directory. Reads the reference server's document root as it is
 * (`plugins/<name>/<version>/plugin.wasm`), symbolic links included.
 */
export class FileStore implements WritableStore {
  readonly description: string;
  readonly #root: string;
  readonly #openFiles: OpenFiles | undefined;

  /** `openFiles`: descriptors shared by reads for a while (the server's); without, each read opens the file. */
  constructor(root: string, options: { openFiles?: OpenFiles | undefined } = {}) {
    this.#root = path.resolve(root);
    this.#openFiles = options.openFiles;
    this.description = `file:${this.#root}`;
  }

  #path(key: string): string {
    const full = path.resolve(this.#root, key);
    // Keys are validated before they get here; this guards the backend on its own too.
    if (full !== this.#root && !full.startsWith(this.#root + path.sep)) {
      throw new StoreUnavailableError(`key ${JSON.stringify(key)} escapes the store root`);
    }
    return full;
  }

  #info(key: string, stats: Stats): ObjectInfo {
    // The same validator nginx sends (mtime and size in hex), so caches filled by the
    // reference server keep validating after the switch.
    const etag = `"${Math.floor(stats.mtimeMs / 1000).toString(16)}-${stats.size.toString(16)}"`;
    return { key, size: stats.size, etag, lastModified: stats.mtime };
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    let file: OpenFile;
    try {
      // fstat'ed once open: the bytes we send belong to the metadata we report, even if the
      // uploader replaces the file meanwhile.
      file = await openFile(this.#path(key), this.#openFiles);
    } catch (error) {
      return missing(error);
    }
    const { fd, stats } = file;
    let handedOver = false;
    try {
      if (!stats.isFile()) return null;
      const info = this.#info(key, stats);
      const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
      const range = options.range ? resolveRange(options.range, info.size) : undefined;
      if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
      const start = range?.start ?? 0;
      const length = range ? range.end - range.start + 1 : info.size;
      if (length <= SMALL) return new Stored(info, await readWhole(fd, start, length), { range });
      handedOver = true; // the reader gives the descriptor back
      const reader = fdReader(fd, start, length, file.release);
      return new Stored(info, reader, { range, release: () => reader.close() });
    } catch (error) {
      throw unavailable(key, error);
    } finally {
      if (!handedOver) file.release();
    }
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const stats = await stat(this.#path(key));
      return stats.isFile() ? this.#info(key, stats) : null;
    } catch (error) {
      return missing(error);
    }
  }

  async put(key: string, data: Uint8Array): Promise<ObjectInfo> {
    const target = this.#path(key);
    // Write beside the target and rename over it: rename is atomic within a file system, so a
    // reader opens either the old file or the complete new one. Dot-names are never listed.
    const temporary = await this.#written(key, target, data);
    try {
      await rename(temporary, target);
    } catch (error) {
      await rm(temporary, { force: true });
      throw unavailable(key, error, "write");
    }
    return this.#info(key, await stat(target));
  }

  async create(key: string, data: Uint8Array): Promise<"created" | "taken" | "unsupported"> {
    const target = this.#path(key);
    // link(2) never replaces an existing name (EEXIST), and the file it names is complete
    // before it has the name: a reader never sees a part of it.
    const temporary = await this.#written(key, target, data);
    try {
      await link(temporary, target);
      return "created";
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === "EEXIST") return "taken";
      if (code === "EPERM" || code === "ENOTSUP" || code === "EOPNOTSUPP" || code === "ENOSYS") return "unsupported"; // no hard links here (some FUSE and SMB mounts)
      throw unavailable(key, error, "write");
    } finally {
      await rm(temporary, { force: true });
    }
  }

  /** The data in a complete, flushed dot-file beside `target`. */
  async #written(key: string, target: string, data: Uint8Array): Promise<string> {
    const temporary = path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(6).toString("hex")}.tmp`);
    try {
      await mkdir(path.dirname(target), { recursive: true });
      await writeFile(temporary, data, { flush: true });
      return temporary;
    } catch (error) {
      await rm(temporary, { force: true });
      throw unavailable(key, error, "write");
    }
  }

  async delete(key: string): Promise<void> {
    const target = this.#path(key);
    await rm(target, { force: true });
    // Directories have no life of their own in object stores: drop the ones left empty,
    // so listings match what S3 would list.
    for (let dir = path.dirname(target); dir.startsWith(this.#root + path.sep); dir = path.dirname(dir)) {
      try {
        await rmdir(dir);
      } catch {
        break; // not empty (or already gone)
      }
    }
  }

  async list(prefix: string): Promise<Listing> {
    let entries;
    try {
      entries = await readdir(this.#path(prefix), { withFileTypes: true });
    } catch (error) {
      if (missing(error) === null) return { prefixes: [], objects: [] };
      throw error;
    }
    const prefixes: string[] = [];
    const objects: ObjectInfo[] = [];
    await Promise.all(
      entries
        .filter((entry) => !entry.name.startsWith("."))
        .map(async (entry) => {
          const key = `${prefix}${entry.name}`;
          // stat follows symbolic links: a link is listed as what it points to.
          const stats = await stat(this.#path(key)).catch(() => undefined);
          if (stats?.isDirectory()) prefixes.push(entry.name);
          else if (stats?.isFile()) objects.push(this.#info(key, stats));
        }),
    );
    prefixes.sort();
    objects.sort((a, b) => (a.key < b.key ? -1 : 1));
    return { prefixes, objects };
  }
}

/**
 * Bodies up to this size are read in one call and handed over as one chunk (metadata, READMEs):
 * a reader costs more than the read itself. Larger ones are read a chunk at a time, so a burst
 * of downloads never holds a whole module per connection.
 */
const SMALL = 64 * 1024;

async function readWhole(fd: number, start: number, length: number): Promise<Uint8Array> {
  const buffer = Buffer.allocUnsafe(length);
  let done = 0;
  while (done < length) {
    const bytesRead = await readFd(fd, buffer, done, length - done, start + done);
    if (bytesRead === 0) throw new Error("file shrank while being read");
    done += bytesRead;
  }
  return buffer;
}

/**
 * Reads the descriptor a chunk at a time, only when asked: the Node entry asks once per
 * drained socket, so a slow client holds one chunk at most, and a fast one gets large writes.
 * `release` gives the descriptor back once (closes it, or returns it to `OpenFiles`).
 */
export function fdReader(fd: number, start: number, length: number, release: () => void): ChunkReader {
  let position = start;
  const end = start + length;
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    release();
  };
  return {
    get file() {
      return closed ? undefined : { fd, start: position, length: end - position };
    },
    async read(max, into) {
      if (closed) throw new Error("read after close");
      const wanted = Math.min(max, end - position, into?.length ?? Infinity);
      if (wanted <= 0) {
        close();
        return null;
      }
      const buffer = into ?? Buffer.allocUnsafe(wanted);
      const bytesRead = await readFd(fd, buffer, 0, wanted, position);
      if (bytesRead === 0) {
        close();
        throw new Error("file shrank while being read");
      }
      position += bytesRead;
      return bytesRead === buffer.length ? buffer : buffer.subarray(0, bytesRead);
    },
    close,
  };
}

// The callback API on raw descriptors: FileHandle adds a measurable cost per request.
const readFd = (fd: number, buffer: Uint8Array, offset: number, length: number, position: number) =>
  new Promise<number>((resolve, reject) =>
    fs.read(fd, buffer, offset, length, position, (error, bytesRead) => (error ? reject(error) : resolve(bytesRead))),
  );

/** Not found (or a path through a file) is `null`; anything else is the store failing. */
function missing(error: unknown): null {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR" || code === "ENAMETOOLONG") return null;
  throw unavailable("", error);
}

function unavailable(key: string, error: unknown, verb: "read" | "write" = "read"): StoreUnavailableError {
  if (error instanceof StoreUnavailableError) return error;
  const code = (error as NodeJS.ErrnoException).code ?? "error";
  return new StoreUnavailableError(`local store could not ${verb} ${key || "an object"} (${code})`, { cause: error });
}
