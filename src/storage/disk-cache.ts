import { createHash, randomBytes } from "node:crypto";
import fs from "node:fs";
import { mkdir, rename, rm, unlink } from "node:fs/promises";
import { promisify } from "node:util";
import path from "node:path";
import { ageOf, SingleFlight } from "./single-flight.ts";
import { LRUCache } from "lru-cache";
import { evaluatePreconditions } from "../core/conditional.ts";
import { StoreUnavailableError } from "../core/errors.ts";
import { resolveRange } from "../core/range.ts";
import { Filling } from "./filling.ts";
import { fdReader } from "./fs.ts";
import { openFile, type OpenFile, type OpenFiles } from "./open-files.ts";
import { discard, Stored, type CallOptions, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "./store.ts";

/**
 * A local disk copy of large objects of a remote store (S3), so a rollout reads each plugin from
 * the store once and then serves it like a file, however many gateways ask and however little
 * memory the pod has. Concurrent first reads share one download, and read it as it is written
 * (`Filling`): the first byte leaves while the store is still sending. A copy is kept only when its
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
  /** Descriptors of the copies, shared by reads (the server's); without, each read opens its copy. */
  readonly openFiles?: OpenFiles | undefined;
}

interface Copy {
  readonly info: ObjectInfo;
  readonly file: string;
  checked: number;
}

const WRITE_BYTES = 256 * 1024;
const openFd = promisify(fs.open);
const writeAt = (fd: number, chunks: Uint8Array[], position: number) =>
  new Promise<void>((resolve, reject) =>
    fs.writev(fd, chunks, position, (error, bytesWritten) =>
      error ? reject(error) : bytesWritten === chunks.reduce((n, c) => n + c.length, 0) ? resolve() : reject(new Error("short write to the disk cache")),
    ),
  );

export class DiskCache implements Store {
  readonly description: string;
  readonly #inner: Store;
  readonly #objects: string;
  readonly #tmp: string;
  readonly #copies: LRUCache<string, Copy>;
  readonly #filling = new Map<string, Promise<Filling | StoredObject | null>>();
  readonly #checking = new SingleFlight<Copy | undefined>();
  readonly #minObjectBytes: number;
  readonly #ttl: number;
  readonly #now: () => number;
  readonly #onLookup: (outcome: "disk" | "miss") => void;
  readonly #openFiles: OpenFiles | undefined;
  #ready: Promise<boolean> | undefined;
  /** Downloads from the store, for tests and the benchmark. */
  fills = 0;
  /** False once the directory turned out unusable (objects then pass through). */
  usable = true;

  constructor(inner: Store, options: DiskCacheOptions) {
    this.#inner = inner;
    this.#objects = path.join(options.dir, "objects");
    this.#tmp = path.join(options.dir, "tmp");
    this.#minObjectBytes = options.minObjectBytes ?? 1024 * 1024;
    this.#ttl = options.ttlMs ?? 30_000;
    this.#now = options.now ?? Date.now;
    this.#onLookup = options.onLookup ?? (() => {});
    this.#openFiles = options.openFiles;
    this.#copies = new LRUCache<string, Copy>({
      maxSize: options.maxBytes,
      sizeCalculation: (copy) => Math.max(1, copy.info.size),
      // Readers with the file open keep reading it after the unlink; the next read opens the next copy.
      dispose: (copy) => {
        this.#openFiles?.forget(copy.file);
        void unlink(copy.file).catch(() => {});
      },
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
        this.usable = false;
        console.error(`warning: disk cache ${path.dirname(this.#objects)} is not usable, large objects are read from the store per request: ${(error as Error).message}`);
        return false;
      }
    })());
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    const copy = await this.#fresh(key);
    this.#onLookup(copy ? "disk" : "miss");
    if (copy) return this.#read(key, copy, options);
    let pending = this.#filling.get(key);
    const first = !pending;
    if (!pending) {
      const started = this.#fill(key);
      pending = started;
      this.#filling.set(key, started);
      // Joinable until the download ends (a passed-through object: until it is handed over).
      started
        .then((s) => (s instanceof Filling ? s.settled : undefined))
        .finally(() => this.#filling.get(key) === started && this.#filling.delete(key))
        .catch(() => {});
    }
    const started = await pending;
    if (!started) return null;
    if (started instanceof Filling) return this.#follow(started, options);
    // Small, or no disk to keep it on: the object itself to the caller that asked first.
    if (first && !options.range && !options.conditions) return started;
    if (first) discard(started);
    return this.#inner.get(key, options);
  }

  head(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    const copy = this.#copies.get(key);
    if (!copy) return this.#inner.head(key, options);
    if (copy.checked + this.#ttl > this.#now()) return Promise.resolve(copy.info);
    // The copy's own revalidation answers it: one HEAD per object and TTL for both caches, not one each.
    return this.#checking.run(key, () => this.#check(key, copy)).then((checked) => checked?.info ?? this.#inner.head(key, options));
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
    const age = ageOf(this.#now(), copy.checked, this.#ttl);
    if (age === "fresh") return copy;
    const checked = this.#checking.run(key, () => this.#check(key, copy));
    return age === "stale" ? copy : checked;
  }

  async #check(key: string, copy: Copy): Promise<Copy | undefined> {
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
  }

  /** Starts a download into a temporary file, answered once the store has answered; or the object itself when it is not kept. */
  async #fill(key: string): Promise<Filling | StoredObject | null> {
    const usable = await this.#prepare();
    const object = await this.#inner.get(key);
    if (!object || !usable || object.info.size < this.#minObjectBytes || object.info.size > this.#copies.maxSize) return object;
    this.fills++;
    const temporary = path.join(this.#tmp, randomBytes(8).toString("hex"));
    let fd: number;
    try {
      fd = await openFd(temporary, "w+");
    } catch (error) {
      discard(object);
      throw new StoreUnavailableError(`disk cache cannot write ${temporary}: ${(error as Error).message}`, { cause: error });
    }
    const filling = new Filling(object.info, fd);
    filling.settled = this.#download(key, object, temporary, filling);
    return filling;
  }

  /** Writes the object to the file, then keeps it if it is what the store described; readers follow along. */
  async #download(key: string, object: StoredObject, temporary: string, filling: Filling): Promise<void> {
    const { info } = object;
    const md5 = /^"([0-9a-f]{32})"$/.exec(info.etag)?.[1];
    const hash = md5 ? createHash("md5") : undefined;
    let received = 0;
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
          received += chunk.length;
          if (received > info.size) break;
          pending.push(chunk);
          pendingBytes += chunk.length;
        }
        if (pendingBytes >= WRITE_BYTES || (!chunk && pendingBytes > 0)) {
          await writeAt(filling.fd, pending, filling.arrived);
          filling.grew(pendingBytes);
          pending = [];
          pendingBytes = 0;
        }
        if (!chunk) break;
      }
      if (received !== info.size) throw new StoreUnavailableError(`store sent ${received} bytes of ${key}, which it described as ${info.size}`);
      if (hash && hash.digest("hex") !== md5) throw new StoreUnavailableError(`store sent bytes of ${key} that do not match its ETag`);
      const file = path.join(this.#objects, createHash("sha256").update(key).digest("hex"));
      await rename(temporary, file);
      this.#openFiles?.forget(file);
      this.#copies.set(key, { info, file, checked: this.#now() });
      filling.settle("kept");
    } catch (error) {
      await rm(temporary, { force: true }).catch(() => {});
      filling.settle(error instanceof Error ? error : new Error(String(error)));
    } finally {
      discard(object);
    }
  }

  /** A reader of a download under way. */
  #follow(filling: Filling, options: GetOptions): StoredObject {
    const { info } = filling;
    const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
    const range = options.range ? resolveRange(options.range, info.size) : undefined;
    if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
    const start = range?.start ?? 0;
    const reader = filling.reader(start, range ? range.end - range.start + 1 : info.size);
    return new Stored(info, reader, { range, release: () => reader.close() });
  }

  async #read(key: string, copy: Copy, options: GetOptions): Promise<StoredObject | null> {
    const { info } = copy;
    const outcome = options.conditions ? evaluatePreconditions(options.conditions, info, "GET") : "proceed";
    const range = options.range ? resolveRange(options.range, info.size) : undefined;
    if (outcome !== "proceed" || (options.range && !range)) return { info, body: null };
    let file: OpenFile;
    try {
      file = await openFile(copy.file, this.#openFiles);
    } catch {
      this.#copies.delete(key); // removed behind our back: fetch it again
      return this.get(key, options);
    }
    const start = range?.start ?? 0;
    const reader = fdReader(file.fd, start, range ? range.end - range.start + 1 : info.size, file.release);
    return new Stored(info, reader, { range, release: () => reader.close() });
  }
}
