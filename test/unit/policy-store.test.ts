import { describe, expect, test } from "vitest";
import { StoreUnavailableError } from "../../src/core/errors.ts";
import { PolicyStore } from "../../src/storage/policy.ts";
import { readBytes, type ChunkReader, type Listing, type ObjectInfo, type Store, type StoredObject } from "../../src/storage/store.ts";

/**
 * The policy layer's rules against a scripted backend (a fake beside the real ones: the
 * reliability suite freezes a real radosgw connection under the running server).
 */
class ScriptedStore implements Store {
  readonly description = "scripted";
  calls = 0;
  behaviour: "ok" | "fail" | "hang" | "stall" = "ok";
  readonly info: ObjectInfo = { key: "k", size: 4, etag: '"e"', lastModified: new Date(0) };

  async get(): Promise<StoredObject | null> {
    this.calls++;
    if (this.behaviour === "fail") throw new StoreUnavailableError("backend 500");
    if (this.behaviour === "hang") return new Promise(() => {});
    let sent = false;
    const reader: ChunkReader = {
      read: async () => {
        if (this.behaviour === "stall" && sent) return new Promise(() => {});
        if (sent) return null;
        sent = true;
        return new Uint8Array(this.behaviour === "stall" ? 2 : 4);
      },
      close: () => {},
    };
    return { info: this.info, body: null, reader };
  }
  async head() {
    return this.get().then((o) => o?.info ?? null);
  }
  async list(): Promise<Listing> {
    await this.get();
    return { prefixes: [], objects: [] };
  }
}

const elapsed = async (run: () => Promise<unknown>) => {
  const started = Date.now();
  const outcome = await run().then(
    () => "ok",
    (e: Error) => e,
  );
  return { ms: Date.now() - started, outcome };
};

describe("PolicyStore", () => {
  test("a backend that never answers costs the deadline, then a 503 error", async () => {
    const inner = new ScriptedStore();
    inner.behaviour = "hang";
    const store = new PolicyStore(inner, { timeoutMs: 200, retries: 0 });
    const { ms, outcome } = await elapsed(() => store.get("k"));
    expect(outcome).toBeInstanceOf(StoreUnavailableError);
    expect((outcome as StoreUnavailableError).status).toBe(503);
    expect(ms).toBeGreaterThanOrEqual(190);
    expect(ms).toBeLessThan(1_000);
  });

  test("failures are retried with backoff within the deadline; a success resets the count", async () => {
    const inner = new ScriptedStore();
    inner.behaviour = "fail";
    const store = new PolicyStore(inner, { timeoutMs: 2_000, retries: 2, backoffMs: 10, failureThreshold: 10 });
    await expect(store.get("k")).rejects.toThrow("backend 500");
    expect(inner.calls).toBe(3);
    inner.behaviour = "ok";
    expect((await readBytes((await store.get("k"))!)).length).toBe(4);
    expect(store.breaker).toBe("closed");
  });

  test("the breaker opens after repeated failures, fails fast with Retry-After, and closes after a good probe", async () => {
    let now = 1_000;
    const inner = new ScriptedStore();
    inner.behaviour = "fail";
    const store = new PolicyStore(inner, { retries: 0, failureThreshold: 3, cooldownMs: 5_000, now: () => now });
    for (let i = 0; i < 3; i++) await expect(store.head("k")).rejects.toThrow();
    expect(store.breaker).toBe("open");
    const calls = inner.calls;
    const fast = await store.head("k").catch((e: StoreUnavailableError) => e);
    expect(inner.calls).toBe(calls); // not asked at all
    expect((fast as StoreUnavailableError).headers["Retry-After"]).toBe("5");
    now += 5_000;
    inner.behaviour = "ok";
    expect(await store.head("k")).toMatchObject({ size: 4 }); // the probe
    expect(store.breaker).toBe("closed");
  });

  test("a body that stops flowing is aborted after the stall timeout", async () => {
    const inner = new ScriptedStore();
    inner.behaviour = "stall";
    const store = new PolicyStore(inner, { stallMs: 150 });
    const object = (await store.get("k"))!;
    expect(await object.reader!.read(1024)).toHaveLength(2);
    const { ms, outcome } = await elapsed(() => object.reader!.read(1024));
    expect(outcome).toBeInstanceOf(StoreUnavailableError);
    expect(ms).toBeLessThan(1_000);
  });

  test("a slow consumer is not a stall: only a pending read is timed", async () => {
    const inner = new ScriptedStore();
    const store = new PolicyStore(inner, { stallMs: 50 });
    const object = (await store.get("k"))!;
    await new Promise((resolve) => setTimeout(resolve, 150)); // the client is slow to take the body
    expect(await object.reader!.read(1024)).toHaveLength(4);
    expect(await object.reader!.read(1024)).toBeNull();
    expect(store.breaker).toBe("closed");
  });

  test("a missing object is an answer, not a failure", async () => {
    const inner = new ScriptedStore();
    inner.get = async () => (inner.calls++, null);
    const store = new PolicyStore(inner, { retries: 3, failureThreshold: 1 });
    expect(await store.get("k")).toBeNull();
    expect(inner.calls).toBe(1);
    expect(store.breaker).toBe("closed");
  });
});
