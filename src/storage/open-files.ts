import fs, { type Stats } from "node:fs";
import { LRUCache } from "lru-cache";

/** An open file as `OpenFiles` lends it: give it back with `release`, never close `fd` yourself. */
export interface OpenFile {
  readonly fd: number;
  readonly stats: Stats;
  release(): void;
}

interface Entry {
  readonly fd: number;
  readonly stats: Stats;
  users: number;
  dropped: boolean;
}

export interface OpenFilesOptions {
  /** Descriptors kept at most (each one file). */
  readonly max: number;
  /** How long a descriptor and its fstat answer for the path: a file replaced meanwhile is seen after this. */
  readonly ttlMs: number;
}

/**
 * Descriptors of the files being served, shared by every read of a path for a short while, as
 * nginx's open_file_cache: a download from disk then costs no open, fstat and close on the thread
 * pool (three round trips, each a context switch on a one-core pod). Sends read by offset
 * (sendfile, pread), so readers share a descriptor. A descriptor names the file it opened: a file
 * replaced by rename is served whole, old bytes with the old validator, until the entry expires;
 * one deleted keeps its blocks until then.
 */
export class OpenFiles {
  readonly #entries: LRUCache<string, Entry>;
  readonly #opening = new Map<string, Promise<Entry>>();

  constructor(options: OpenFilesOptions) {
    this.#entries = new LRUCache<string, Entry>({
      max: options.max,
      ttl: options.ttlMs,
      ttlAutopurge: true, // idle descriptors go back (and deleted files' blocks with them)
      updateAgeOnGet: false,
      dispose: (entry) => {
        entry.dropped = true;
        if (entry.users === 0) close(entry);
      },
    });
  }

  get size(): number {
    return this.#entries.size;
  }

  /** The open file at `path` (opened and fstat'ed once for all concurrent callers); rejects as open(2) would. */
  async open(path: string): Promise<OpenFile> {
    let entry = this.#entries.get(path);
    if (!entry) {
      let opening = this.#opening.get(path);
      if (!opening) {
        const started = (opening = openEntry(path));
        this.#opening.set(path, started);
        const current = () => this.#opening.get(path) === started && this.#opening.delete(path);
        started.then(
          (opened) => {
            if (current()) this.#entries.set(path, opened);
            else opened.dropped = true; // forgotten while it opened: its callers' alone
          },
          current,
        );
      }
      entry = await opening;
    }
    entry.users++;
    let released = false;
    return {
      fd: entry.fd,
      stats: entry.stats,
      release: () => {
        if (released) return;
        released = true;
        if (--entry.users === 0 && entry.dropped) close(entry);
      },
    };
  }

  /** The file at `path` was replaced or removed by us: the next open opens it again. */
  forget(path: string): void {
    this.#opening.delete(path);
    this.#entries.delete(path);
  }
}

/** The file at `path` from `shared`, or opened and fstat'ed for this read alone (closed on release). */
export async function openFile(path: string, shared?: OpenFiles): Promise<OpenFile> {
  if (shared) return shared.open(path);
  const entry = await openEntry(path);
  return { fd: entry.fd, stats: entry.stats, release: () => close(entry) };
}

/** Non-blocking: a FIFO in the store would otherwise hold a pool thread until someone writes to it (regular files ignore the flag). */
const READ = fs.constants.O_RDONLY | fs.constants.O_NONBLOCK;

async function openEntry(path: string): Promise<Entry> {
  const fd = await new Promise<number>((resolve, reject) => fs.open(path, READ, (error, fd) => (error ? reject(error) : resolve(fd))));
  try {
    const stats = await new Promise<Stats>((resolve, reject) => fs.fstat(fd, (error, stats) => (error ? reject(error) : resolve(stats))));
    return { fd, stats, users: 0, dropped: false };
  } catch (error) {
    fs.close(fd, () => {});
    throw error;
  }
}

function close(entry: Entry): void {
  fs.close(entry.fd, () => {});
}
