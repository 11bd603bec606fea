import { describe, expect, test } from "vitest";
import { parsePreconditions } from "../../src/core/conditional.ts";
import { CachedStore } from "../../src/storage/cached.ts";
import { discard, readBytes, Stored, type ChunkReader, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "../../src/storage/store.ts";

/**
 * The cache's own rules, against a counting in-memory store (a fake beside the real backends:
 * the request matrix runs the Node entry over S3 with and without this cache).
 */
class CountingStore implements Store {
  readonly description = "memory";
  readonly objects = new Map<string, Uint8Array<ArrayBuffer>>();
  gets = 0;
  heads = 0;
  lists = 0;
  fail = false;
  #release: (() => void) | undefined;
  #gate: Promise<void> | undefined;

  /** Holds every get until release(), to have reads in flight at once. */
  hold() {
    this.#gate = new Promise((resolve) => (this.#release = resolve));
  }
  release() {
    this.#release?.();
    this.#gate = undefined;
  }

  #info(key: string, bytes: Uint8Array<ArrayBuffer>): ObjectInfo {
    return { key, size: bytes.length, etag: `"${bytes.length}"`, lastModified: new Date(0) };
  }
  async get(key: string, _options?: GetOptions): Promise<StoredObject | null> {
    this.gets++;
    await this.#gate;
    if (this.fail) throw new Error("backend down");
    const bytes = this.objects.get(key);
    if (!bytes) return null;
    return { info: this.#info(key, bytes), body: new Response(bytes).body! };
  }
  async head(key: string) {
    this.heads++;
    const bytes = this.objects.get(key);
    return bytes ? this.#info(key, bytes) : null;
  }
  async list(): Promise<Listing> {
    this.lists++;
    if (this.fail) throw new Error("backend down");
    return { prefixes: [...this.objects.keys()], objects: [] };
  }
}

const text = async (o: StoredObject | null) => (o?.body ? new TextDecoder().decode(await new Response(o.body).arrayBuffer()) : null);

describe("CachedStore", () => {
  test("objects the stack leaves to the layer below (sendfile): read there each time, revalidations answered from the facts", async () => {
    const inner = new CountingStore();
    inner.objects.set("big", new TextEncoder().encode("a module the kernel sends"));
    const cache = new CachedStore(inner, { holds: () => false });
    expect(await text(await cache.get("big"))).toBe("a module the kernel sends");
    expect(await text(await cache.get("big"))).toBe("a module the kernel sends");
    expect(inner.gets).toBe(2);
    expect(cache.size).toBe(0);
    // If-None-Match that matches: 304 from the remembered facts, no read; one that does not: a read.
    const revalidated = await cache.get("big", { conditions: parsePreconditions(new Headers({ "If-None-Match": '"25"' })) });
    expect(revalidated?.body ?? null).toBeNull();
    expect(revalidated?.info.etag).toBe('"25"');
    expect(inner.gets).toBe(2);
    const changed = await cache.get("big", { conditions: parsePreconditions(new Headers({ "If-None-Match": '"other"' })) });
    expect(await text(changed)).toBe("a module the kernel sends");
    expect(inner.gets).toBe(3);
  });

  test("concurrent reads of one key share one backend read; later reads come from memory", async () => {
    const inner = new CountingStore();
    inner.objects.set("a", new TextEncoder().encode("plugin bytes"));
    const cache = new CachedStore(inner);
    inner.hold();
    const reads = Array.from({ length: 50 }, () => cache.get("a"));
    inner.release();
    expect(await Promise.all(reads.map(async (r) => text(await r)))).toEqual(Array(50).fill("plugin bytes"));
    expect(await text(await cache.get("a"))).toBe("plugin bytes");
    expect(inner.gets).toBe(1);
    expect(await cache.head("a")).toMatchObject({ size: 12 });
    expect(inner.heads).toBe(0);
  });

  test("ranges and conditions are answered from the cached bytes", async () => {
    const inner = new CountingStore();
    inner.objects.set("a", new TextEncoder().encode("0123456789"));
    const cache = new CachedStore(inner);
    const part = await cache.get("a", { range: { kind: "suffix", length: 3 } });
    expect(part?.range).toEqual({ start: 7, end: 9 });
    expect(await text(part)).toBe("789");
    expect((await cache.get("a", { range: { kind: "from", first: 10 } }))?.body).toBeNull();
    expect((await cache.get("a", { conditions: { ifNoneMatch: { any: true } } }))?.body).toBeNull();
    expect(inner.gets).toBe(1);
  });

  test("entries age out; misses are remembered briefly; errors are not remembered", async () => {
    let now = 1_000;
    const inner = new CountingStore();
    const cache = new CachedStore(inner, { ttlMs: 1000, missTtlMs: 100, now: () => now });
    expect(await cache.get("new")).toBeNull();
    inner.objects.set("new", new TextEncoder().encode("published"));
    expect(await cache.get("new")).toBeNull(); // the miss is still remembered
    now = 1_250; // past twice the miss TTL: the store is asked again, and the caller waits for it
    expect(await text(await cache.get("new"))).toBe("published");
    inner.objects.set("new", new TextEncoder().encode("replaced"));
    now = 2_000;
    expect(await text(await cache.get("new"))).toBe("published");
    now = 3_300; // past twice the TTL: a HEAD finds another ETag, so the object is read again
    expect(await text(await cache.get("new"))).toBe("replaced");

    inner.fail = true;
    await expect(cache.get("other")).rejects.toThrow("backend down");
    await expect(cache.list("plugins/")).rejects.toThrow("backend down");
    inner.fail = false;
    inner.objects.set("other", new Uint8Array([1]));
    expect((await cache.get("other"))?.info.size).toBe(1);
  });

  test("a stale entry is answered at once while one revalidation runs in the background (objects, listings)", async () => {
    let now = 1_000;
    const inner = new CountingStore();
    const bytes = (t: string) => new TextEncoder().encode(t);
    inner.objects.set("a", bytes("first"));
    const cache = new CachedStore(inner, { ttlMs: 1000, listTtlMs: 1000, now: () => now });
    expect(await text(await cache.get("a"))).toBe("first");
    expect((await cache.list("plugins/")).prefixes).toEqual(["a"]);

    inner.objects.set("a", bytes("second"));
    inner.objects.set("b", bytes("new"));
    now = 2_500; // between the TTL and twice the TTL: stale
    const heads = inner.heads;
    const lists = inner.lists;
    const answers = await Promise.all(Array.from({ length: 20 }, async () => text(await cache.get("a"))));
    expect(answers).toEqual(Array(20).fill("first")); // nobody waited for the store...
    expect((await cache.list("plugins/")).prefixes).toEqual(["a"]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(inner.heads).toBe(heads + 1); // ...and one HEAD revalidated "a" for all of them
    expect(inner.lists).toBe(lists + 1);
    expect(await text(await cache.get("a"))).toBe("second");
    expect((await cache.list("plugins/")).prefixes).toEqual(["a", "b"]);
  });

  test("a stale miss is answered at once while the store is asked again in the background", async () => {
    let now = 1_000;
    const inner = new CountingStore();
    const cache = new CachedStore(inner, { ttlMs: 1000, missTtlMs: 100, now: () => now });
    expect(await cache.get("later")).toBeNull();
    inner.objects.set("later", new TextEncoder().encode("published"));
    now = 1_150; // stale: past the miss TTL, within twice it
    expect(await cache.get("later")).toBeNull();
    await new Promise((resolve) => setImmediate(resolve));
    expect(await text(await cache.get("later"))).toBe("published");
  });

  test("memory stays within maxBytes (least recently used first out); large objects are streamed, not kept", async () => {
    const inner = new CountingStore();
    for (const k of ["a", "b", "c"]) inner.objects.set(k, new Uint8Array(400));
    inner.objects.set("big", new Uint8Array(5000));
    const cache = new CachedStore(inner, { maxBytes: 1000, maxObjectBytes: 1000 });
    const read = async (key: string) => discard(await cache.get(key)); // a response sent: its buffer is given back
    await read("a");
    await read("b");
    await read("a"); // a is now the most recently used
    await read("c"); // evicts b
    expect(cache.size).toBe(800);
    const gets = inner.gets;
    await read("a");
    await read("b");
    expect(inner.gets).toBe(gets + 1); // only b came from the backend again
    expect((await text(await cache.get("big")))?.length).toBe(5000);
    expect((await text(await cache.get("big")))?.length).toBe(5000);
    expect(cache.size).toBeLessThanOrEqual(1000);
  });

  test("listings are cached briefly and shared while in flight", async () => {
    let now = 1_000;
    const inner = new CountingStore();
    const cache = new CachedStore(inner, { listTtlMs: 100, now: () => now });
    await Promise.all([cache.list("plugins/"), cache.list("plugins/"), cache.list("plugins/")]);
    expect(inner.lists).toBe(1);
    now = 1_200;
    await cache.list("plugins/");
    expect(inner.lists).toBe(2);
  });
});

describe("CachedStore bounds", () => {
  test("buffers still being sent count against the budget: nothing is loaded while they leave no room", async () => {
    const inner = new CountingStore();
    for (const k of ["a", "b", "c"]) inner.objects.set(k, new Uint8Array(400));
    const cache = new CachedStore(inner, { maxBytes: 1000 });
    const arrived = () => new Promise((resolve) => setImmediate(resolve)); // loads finish: their buffers are no longer pinned by them
    const sending = await cache.get("a"); // a response holds a's buffer
    await arrived();
    discard(await cache.get("b"));
    await arrived();
    const c = await cache.get("c"); // b (unpinned) makes room; a stays
    expect((await readBytes(c!)).length).toBe(400);
    await arrived();
    expect(cache.entries.objects).toBe(2);
    expect(cache.size).toBe(800);
    // A fourth object does not fit beside a (pinned) and c unless c goes: the pinned one is never dropped.
    inner.objects.set("d", new Uint8Array(400));
    discard(await cache.get("d"));
    await arrived();
    expect(cache.size).toBeLessThanOrEqual(1000);
    // While a and d are both being sent, 500 more bytes do not fit: served from the backend, not kept.
    const alsoSending = await cache.get("d");
    inner.objects.set("e", new Uint8Array(500));
    const e = await cache.get("e");
    expect(e?.bytes).toBeUndefined();
    expect((await readBytes(e!)).length).toBe(500);
    expect(cache.size).toBeLessThanOrEqual(1000);
    discard(sending);
    discard(alsoSending);
    discard(await cache.get("e")); // room again
    await arrived();
    expect(cache.size).toBe(900);
  });

  test("a scanner asking for 100,000 distinct missing names leaves a bounded number of entries", async () => {
    const inner = new CountingStore();
    const cache = new CachedStore(inner, { maxEntries: 1_000 });
    for (let i = 0; i < 100_000; i++) await cache.get(`plugins/junk-${i}/1.0.0/plugin.wasm`);
    expect(cache.entries.facts).toBeLessThanOrEqual(1_000);
    expect(cache.entries.loading).toBe(0);
  });

  test("while the store fails, objects already held keep serving past their TTL", async () => {
    let now = 1_000;
    const inner = new CountingStore();
    inner.objects.set("a", new TextEncoder().encode("kept"));
    const cache = new CachedStore(inner, { ttlMs: 100, now: () => now });
    expect(await text(await cache.get("a"))).toBe("kept");
    inner.head = async () => {
      throw new Error("backend down");
    };
    now = 5_000;
    expect(await text(await cache.get("a"))).toBe("kept");
  });

  test("the first of many concurrent readers of an object too large to keep gets the backend's live object", async () => {
    const inner = new CountingStore();
    inner.objects.set("big", new Uint8Array(5000));
    const cache = new CachedStore(inner, { maxBytes: 1000 });
    inner.hold();
    const reads = Array.from({ length: 3 }, () => cache.get("big"));
    inner.release();
    for (const r of reads) expect((await readBytes((await r)!)).length).toBe(5000);
    expect(inner.gets).toBe(3); // one load (handed to the first) and one read each for the other two
  });
});

describe("CachedStore while an object arrives", () => {
  /** A store whose one object arrives in the pieces the test lets through. */
  function trickling(bytes: Uint8Array, declared = bytes.length) {
    const pieces: (Uint8Array | null)[] = [];
    let wake: (() => void) | undefined;
    let gets = 0;
    const store: Store = {
      description: "trickling",
      async get(key) {
        gets++;
        let next = 0;
        const reader: ChunkReader = {
          read: async () => {
            while (next >= pieces.length) await new Promise<void>((resolve) => (wake = resolve));
            return pieces[next++]!;
          },
          close: () => {},
        };
        return new Stored({ key, size: declared, etag: '"t"', lastModified: new Date(0) }, reader);
      },
      head: async (key) => ({ key, size: declared, etag: '"t"', lastModified: new Date(0) }),
      list: async () => ({ prefixes: [], objects: [] }),
    };
    const send = (piece: Uint8Array | null) => {
      pieces.push(piece);
      wake?.();
    };
    return { store, send, gets: () => gets };
  }

  test("readers get the bytes as they arrive, from one read of the store, and later readers the whole buffer", async () => {
    const bytes = new Uint8Array(1000).map((_, i) => i % 251);
    const { store, send, gets } = trickling(bytes);
    const cache = new CachedStore(store);
    const readers = await Promise.all(Array.from({ length: 5 }, () => cache.get("a")));
    send(bytes.subarray(0, 600));
    for (const r of readers) expect(Buffer.from((await r!.reader!.read(1000))!).equals(bytes.subarray(0, 600))).toBe(true);
    send(bytes.subarray(600));
    send(null);
    for (const r of readers) expect(Buffer.from(await readBytes(r!)).equals(bytes.subarray(600))).toBe(true);
    await new Promise((resolve) => setImmediate(resolve));
    const later = await cache.get("a");
    expect(later?.bytes?.length).toBe(1000);
    expect(gets()).toBe(1);
  });

  test("a store that sends less than it described fails every reader short of the end, and nothing is kept", async () => {
    const bytes = new Uint8Array(1000).fill(7);
    const { store, send, gets } = trickling(bytes.subarray(0, 900), 1000);
    const cache = new CachedStore(store);
    const reader = await cache.get("a");
    send(bytes.subarray(0, 900));
    send(null);
    let received = 0;
    await expect(
      (async () => {
        for (let c = await reader!.reader!.read(1000); c; c = await reader!.reader!.read(1000)) received += c.length;
      })(),
    ).rejects.toThrow("described as 1000");
    expect(received).toBeLessThan(1000);
    expect(cache.entries.objects).toBe(0);
    discard(reader); // the response is gone: its buffer with it
    expect(cache.size).toBe(0);
    void cache.get("a");
    await new Promise((resolve) => setImmediate(resolve));
    expect(gets()).toBe(2);
  });
});

describe("CachedStore under a burst", () => {
  test("concurrent loads of different objects take their room when they start: memory never exceeds the budget", async () => {
    const inner = new CountingStore();
    for (let i = 0; i < 10; i++) inner.objects.set(`k${i}`, new Uint8Array(300));
    const cache = new CachedStore(inner, { maxBytes: 1000 });
    inner.hold();
    const reads = Array.from({ length: 10 }, (_, i) => cache.get(`k${i}`));
    inner.release();
    const objects = await Promise.all(reads);
    // Three fit in memory (read as their bytes arrive); the others come straight from the backend (no buffers held for them).
    expect(objects.filter((o) => o?.reader).length).toBe(3);
    expect(cache.size).toBeLessThanOrEqual(1000);
    for (const o of objects) expect((await readBytes(o!)).length).toBe(300);
  });
});
