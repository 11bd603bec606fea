import { createHash } from "node:crypto";
import { mkdtemp, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { DiskCache } from "../../src/storage/disk-cache.ts";
import { readBytes, Stored, type ChunkReader, type Listing, type ObjectInfo, type Store, type StoredObject } from "../../src/storage/store.ts";

/**
 * The disk cache's own rules against a store whose body we hand out piece by piece (a fake beside
 * the real one: the reliability suite runs the Node entry with this cache over radosgw).
 */
class TricklingStore implements Store {
  readonly description = "trickling";
  gets = 0;
  heads = 0;
  #pieces: Uint8Array[] = [];
  #waiting: (() => void) | undefined;
  #ended = false;

  constructor(
    readonly bytes: Uint8Array,
    /** The ETag the store claims (an MD5 the bytes may not match). */
    readonly etag = `"${createHash("md5").update(bytes).digest("hex")}"`,
  ) {}

  /** Lets the next `n` bytes through. */
  send(n: number): void {
    const sent = this.#pieces.reduce((a, p) => a + p.length, 0);
    this.#pieces.push(this.bytes.subarray(sent, sent + n));
    this.#waiting?.();
  }

  end(): void {
    this.#ended = true;
    this.#waiting?.();
  }

  info(key: string): ObjectInfo {
    return { key, size: this.bytes.length, etag: this.etag, lastModified: new Date(0) };
  }

  async get(key: string): Promise<StoredObject | null> {
    this.gets++;
    let next = 0;
    const reader: ChunkReader = {
      read: async () => {
        for (;;) {
          if (next < this.#pieces.length) return this.#pieces[next++]!;
          if (this.#ended) return null;
          await new Promise<void>((resolve) => (this.#waiting = resolve));
        }
      },
      close: () => {},
    };
    return new Stored(this.info(key), reader);
  }

  async head(key: string): Promise<ObjectInfo | null> {
    this.heads++;
    return this.info(key);
  }

  async list(): Promise<Listing> {
    return { prefixes: [], objects: [] };
  }
}

const MiB = 1024 * 1024;
const module = (size: number) => new Uint8Array(size).map((_, i) => (i * 7919) % 251);
const sha256 = (b: Uint8Array) => createHash("sha256").update(b).digest("hex");

async function cacheOver(inner: Store, now?: () => number) {
  const dir = await mkdtemp(path.join(tmpdir(), "disk-cache-"));
  return { dir, cache: new DiskCache(inner, { dir, maxBytes: 64 * MiB, ttlMs: 1_000, ...(now ? { now } : {}) }) };
}

describe("DiskCache", () => {
  test("concurrent first readers share one download and get its bytes while the store is still sending", async () => {
    const bytes = module(3 * MiB);
    const inner = new TricklingStore(bytes);
    const { cache } = await cacheOver(inner);
    const readers = await Promise.all(Array.from({ length: 5 }, () => cache.get("plugins/a/1.0.0/plugin.wasm")));
    inner.send(MiB);
    // Before the store has sent the rest, every reader already has the first bytes.
    for (const object of readers) {
      const first = await object!.reader!.read(64 * 1024);
      expect(Buffer.from(first!).equals(bytes.subarray(0, first!.length))).toBe(true);
    }
    inner.send(2 * MiB);
    inner.end();
    for (const object of readers) {
      const rest = await readBytes(object!);
      expect(rest.length).toBe(bytes.length - 64 * 1024);
    }
    expect(inner.gets).toBe(1);
    // Kept: later readers read the copy.
    expect(sha256(await readBytes((await cache.get("plugins/a/1.0.0/plugin.wasm"))!))).toBe(sha256(bytes));
    expect(inner.gets).toBe(1);
  });

  test("bytes that do not match the ETag fail every reader short of the last byte, and nothing is kept", async () => {
    const bytes = module(2 * MiB);
    const inner = new TricklingStore(bytes, `"${"0".repeat(32)}"`);
    const { dir, cache } = await cacheOver(inner);
    const object = await cache.get("plugins/a/1.0.0/plugin.wasm");
    inner.send(bytes.length);
    inner.end();
    const received: Uint8Array[] = [];
    await expect(
      (async () => {
        for (let chunk = await object!.reader!.read(MiB); chunk; chunk = await object!.reader!.read(MiB)) received.push(chunk.slice());
      })(),
    ).rejects.toThrow("do not match its ETag");
    expect(received.reduce((n, c) => n + c.length, 0)).toBeLessThan(bytes.length);
    expect(await readdir(path.join(dir, "objects"))).toEqual([]);
    expect(await readdir(path.join(dir, "tmp"))).toEqual([]);
    // The next request downloads again.
    void cache.get("plugins/a/1.0.0/plugin.wasm");
    await new Promise((resolve) => setImmediate(resolve));
    expect(inner.gets).toBe(2);
  });

  test("a range of a download under way is served from where it is written", async () => {
    const bytes = module(2 * MiB);
    const inner = new TricklingStore(bytes);
    const { cache } = await cacheOver(inner);
    const part = cache.get("plugins/a/1.0.0/plugin.wasm", { range: { kind: "bounded", first: MiB, last: MiB + 9 } });
    inner.send(bytes.length);
    inner.end();
    const object = await part;
    expect(object!.range).toEqual({ start: MiB, end: MiB + 9 });
    expect(Buffer.from(await readBytes(object!)).equals(bytes.subarray(MiB, MiB + 10))).toBe(true);
  });

  test("a copy past its TTL is revalidated once for the memory cache's HEAD and the next read together", async () => {
    const bytes = module(2 * MiB);
    const inner = new TricklingStore(bytes);
    let clock = 0;
    const { cache } = await cacheOver(inner, () => clock);
    const key = "plugins/a/1.0.0/plugin.wasm";
    const download = cache.get(key);
    inner.send(bytes.length);
    inner.end();
    await readBytes((await download)!);
    expect(await cache.head(key)).toMatchObject({ size: bytes.length }); // fresh: the copy's facts
    expect(inner.heads).toBe(0);
    clock += 1_500;
    expect(await cache.head(key)).toMatchObject({ size: bytes.length, etag: inner.etag });
    expect(sha256(await readBytes((await cache.get(key))!))).toBe(sha256(bytes));
    expect(inner.heads).toBe(1); // one HEAD for both, and still the one download
    expect(inner.gets).toBe(1);
  });
});
