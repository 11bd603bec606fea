import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdir, open, rename, rm, unlink } from "node:fs/promises";
import path from "node:path";
import { LRUCache } from "lru-cache";
import { evaluatePreconditions } from "../core/conditional.ts";
import { StoreUnavailableError } from "../core/errors.ts";
import { resolveRange } from "../core/range.ts";
import { fdReader } from "./fs.ts";
import { discard, Stored, type CallOptions, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "./store.ts";

/**
 * A local disk copy of large objects of a remote store (S3), so a rollout reads each plugin from
 * the store once and then serves it like a file, however many gateways ask and however little
 * memory the pod has. Concurrent first reads share one download. A copy is kept only when its
 * size matches what the store described and, for single-part uploads (ETag = MD5), its MD5 too.
 * Copies are revalidated with a HEAD after `ttlMs` (answered meanwhile for as long again, as the
 * memory cache does); the oldest are removed beyond `maxBytes`.
 * The directory is emptied at start: copies are only trusted by this process.
 */
export interface DiskCacheOptions {
  readonly dir: string;
  readonly maxBytes: number;
  /** Smaller objects pass through (the memory cache keeps those). */
  readonly minObjectBytes?: number;
  readonly ttlMs?: number;
  /** Told when a read is answered from a disk copy ("disk") or has to go to the store ("miss"). */
  readonly onLookup?: (outcome: "disk" | "miss") => void;
  readonly now?: () => number;
}

interface Copy {
  readonly info: ObjectInfo;
  readonly file: string;
  checked: number;
}

const WRITE_BYTES = 256 * 1024;

export class DiskCache implements Store {
  readonly description: string;
  readonly #inner: Store;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #copies: LRUCache<string, Copy>;
  readonly #filling = new Map<string, Promise<Copy | StoredObject | null>>();
  readonly #checking = new Map<string, Promise<Copy | undefined>>();
  readonly #minObjectBytes: number;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #onLookup: (outcome: "disk" | "miss") => void;
  #ready: Promise<boolean> | undefined;
  /** Downloads from the store, for tests and the benchmark. */
  fills = 0;

  constructor(inner: Store, options: DiskCacheOptions) {
    this.#inner = inner;
    this.#objects = path.join(options.dir, "objects");
    this.#tmp = path.join(options.dir, "tmp");
    this.#minObjectBytes = options.minObjectBytes ?? 1024 * 1024;
    this.#ttl = options.ttlMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    this.#onLookup = options.onLookup ?? (() => {});
    this.#copies = new LRUCache<string, Copy>({
      maxSize: options.maxBytes,
      sizeCalculation: (copy) => Math.max(1, copy.info.size),
      // Readers with the file open keep reading it after the unlink.
      dispose: (copy) => void unlink(copy.file).catch(() => {}),
    });
    this.description = inner.description;
  }

  /** Empties the directory, once; false (with a warning) when it cannot be used, and objects pass through. */
  #prepare(): Promise<boolean> {
    return (this.#ready ??= (async () => {
      try {
        await rm(this.#objects, { recursive: true, force: true });
        await rm(this.#tmp, { recursive: true, force: true });
        await mkdir(this.#objects, { recursive: true });
        await mkdir(this.#tmp, { recursive: true });
        return true;
      } catch (error) {
        console.error(`warning: disk cache ${path.dirname(this.#objects)} is not usable, large objects are read from the store per request: ${(error as Error).message}`);
        return false;
      }
    })());
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    let copy: Copy | StoredObject | null | undefined = await this.#fresh(key);
    this.#onLookup(copy ? "disk" : "miss");
    if (!copy) {
      let pending = this.#filling.get(key);
      if (!pending) {
        pending = this.#fill(key);
        this.#filling.set(key, pending);
        pending.finally(() => this.#filling.delete(key)).catch(() => {});
        copy = await pending;
        // Small or failed to keep: the object itself, to the caller that asked first.
        if (copy && "body" in copy) return options.range || options.conditions ? (discard(copy), this.#inner.get(key, options)) : copy;
      } else {
        copy = await pending;
        if (copy && "body" in copy) return this.#inner.get(key, options);
      }
      if (!copy) return null;
    }
    return this.#read(key, copy, options);
  }

  head(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    const copy = this.#copies.get(key);
    return copy && copy.checked + this.#ttl > this.#now() ? Promise.resolve(copy.info) : this.#inner.head(key, options);
  }

  list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    return this.#inner.list(prefix, options);
  }

  async close(): Promise<void> {
    this.#copies.clear();
    await this.#inner.close?.();
  }

  /** The copy, unless a HEAD finds the object changed; as the memory cache does, a stale copy is answered while one HEAD runs. */
  async #fresh(key: string): Promise<Copy | undefined> {
    const copy = this.#copies.get(key);
    if (!copy) return undefined;
    const age = this.#now() - copy.checked;
    if (age < this.#ttl) return copy;
    const checked = this.#checking.get(key) ?? this.#check(key, copy);
    if (age < 2 * this.#ttl) return copy;
    return checked;
  }

  #check(key: string, copy: Copy): Promise<Copy | undefined> {
    const pending = (async () => {
      let info: ObjectInfo | null;
      try {
        info = await this.#inner.head(key);
      } catch {
        return copy; // the store is failing: the copy is still the best answer
      }
      if (info && info.etag === copy.info.etag && info.size === copy.info.size) {
        copy.checked = this.#now();
        return copy;
      }
      if (this.#copies.get(key) === copy) this.#copies.delete(key);
      return undefined;
    })();
    this.#checking.set(key, pending);
    pending.finally(() => this.#checking.delete(key)).catch(() => {});
    return pending;
  }

  async #fill(key: string): Promise<Copy | StoredObject | null> {
    const usable = await this.#prepare();
    const object = await this.#inner.get(key);
    if (!object || !usable || object.info.size < this.#minObjectBytes || object.info.size > this.#copies.maxSize) return object;
    this.fills++;
    const { info } = object;
    const temporary = path.join(this.#tmp, randomBytes(8).toString("hex"));
    const md5 = /^"([0-9a-f]{32})"$/.exec(info.etag)?.[1];
    const hash = md5 ? createHash("md5") : undefined;
    const handle = await open(temporary, "w");
    let written = 0;
    try {
      const reader = object.reader ?? null;
      const stream = reader ? undefined : object.body?.getReader();
      // A socket hands 16-64 KiB at a time; one write per chunk costs the thread pool more than the copy itself.
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      for (;;) {
        const chunk = reader ? await reader.read(1024 * 1024) : await stream?.read().then((r) => (r.done ? null : r.value));
        if (chunk) {
          hash?.update(chunk);
          written += chunk.length;
          if (written > info.size) break;
          pending.push(chunk);
          pendingBytes += chunk.length;
        }
        if (pendingBytes >= WRITE_BYTES || (!chunk && pendingBytes > 0)) {
          await handle.writev(pending);
          pending = [];
          pendingBytes = 0;
        }
        if (!chunk) break;
      }
      if (written !== info.size) throw new StoreUnavailableError(`store sent ${written} bytes of ${key}, which it described as ${info.size}`);
      if (hash && hash.digest("hex") !== md5) throw new StoreUnavailableError(`store sent bytes of ${key} that do not match its ETag`);
      await handle.close();
      const file = path.join(this.#objects, createHash("sha256").update(key).digest("hex"));
      await rename(temporary, file);
      const copy: Copy = { info, file, checked: this.#now() };
      this.#copies.set(key, copy);
      return copy;
    } catch (error) {
      await handle.close().catch(() => {});
      await rm(temporary, { force: true });
      throw error;
    } finally {
      discard(object);
    }
  }

  async #read(key: string, copy: Copy, options: GetOptions): Promise<StoredObject | null> {
    const { info } = copy;
    const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
    const range = options.range ? resolveRange(options.range, info.size) : undefined;
    if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
    let fd: number;
    try {
      fd = await new Promise<number>((resolve, reject) => fs.open(copy.file, "r", (e, fd) => (e ? reject(e) : resolve(fd))));
    } catch {
      this.#copies.delete(key); // removed behind our back: fetch it again
      return this.get(key, options);
    }
    const start = range?.start ?? 0;
    const reader = fdReader(fd, start, range ? range.end - range.start + 1 : info.size);
    return new Stored(info, reader, { range, release: () => reader.close() });
  }
}
