import { mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect, test } from "vitest";
import { FileStore } from "../../src/storage/fs.ts";
import { PolicyStore } from "../../src/storage/policy.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import { LEASE_KEY, withLease } from "../../uploader/lease.ts";

const fileStore = async () => {
  const root = await mkdtemp(path.join(tmpdir(), "lease-"));
  return { root, store: new FileStore(root) };
};

/** The same store without its exclusive create, as an S3 store is. */
function withoutCreate(store: WritableStore): WritableStore {
  return { description: store.description, get: (k, o) => store.get(k, o), head: (k) => store.head(k), list: (p) => store.list(p), put: (k, d, o) => store.put(k, d, o), delete: (k) => store.delete(k) };
}

test("FileStore.create: of 20 racing creators exactly one wins, its object is whole, no temporary file is left", async () => {
  const { root, store } = await fileStore();
  const bodies = Array.from({ length: 20 }, (_, i) => new TextEncoder().encode(`writer ${i} `.repeat(10_000)));
  const results = await Promise.all(bodies.map((body) => store.create("a/lease.json", body)));
  expect(results.filter((r) => r === "created")).toHaveLength(1);
  expect(results.filter((r) => r === "taken")).toHaveLength(19);
  const winner = bodies[results.indexOf("created")]!;
  expect(new Uint8Array(await readFile(path.join(root, "a/lease.json")))).toEqual(winner);
  expect(await readdir(path.join(root, "a"))).toEqual(["lease.json"]);
  // create never replaces: a later put does.
  expect(await store.create("a/lease.json", new Uint8Array([1]))).toBe("taken");
  await store.put("a/lease.json", new Uint8Array([2]));
  expect([...(await readFile(path.join(root, "a/lease.json")))]).toEqual([2]);
});

test("a free file store is leased at once by the exclusive create; through the policy layer too", async () => {
  const { root, store } = await fileStore();
  for (const [command, s] of [["plain", store], ["policy", new PolicyStore(store)]] as const) {
    // A settle wait of a minute would time the test out: the free store is taken without it.
    const held = await withLease(s, { command, settleMs: 60_000 }, async () => JSON.parse(await readFile(path.join(root, LEASE_KEY), "utf8")) as { command: string; pid: number });
    expect(held).toMatchObject({ command, pid: process.pid });
    expect(await readdir(root)).toEqual([]); // removed at the end
  }
});

test("10 runs leasing one file store at once: one inside at a time, all of them done", { timeout: 60_000 }, async () => {
  const { store } = await fileStore();
  let inside = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all(
    Array.from({ length: 10 }, (_, i) =>
      withLease(store, { command: `run ${i}`, waitMs: 50_000 }, async () => {
        most = Math.max(most, ++inside);
        await new Promise((resolve) => setTimeout(resolve, 30));
        order.push(i);
        inside--;
      }),
    ),
  );
  expect(most).toBe(1);
  expect(order.toSorted()).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
});

test("a store without exclusive create, a lapsed lease, an unreadable lease: each taken by write, settle and read back", async () => {
  const { root, store } = await fileStore();
  const settleMs = 300;
  const timed = async (s: WritableStore) => {
    const started = Date.now();
    await withLease(s, { command: "test", settleMs }, async () => {});
    return Date.now() - started;
  };
  expect(await timed(withoutCreate(store))).toBeGreaterThanOrEqual(settleMs);
  const lapsed = { owner: "x", host: "elsewhere", pid: 1, command: "sync", acquired: "2026-01-01T00:00:00Z", expires: "2026-01-01T00:00:30Z" };
  await writeFile(path.join(root, LEASE_KEY), JSON.stringify(lapsed));
  expect(await timed(store)).toBeGreaterThanOrEqual(settleMs);
  await writeFile(path.join(root, LEASE_KEY), "{ half a lea");
  expect(await timed(store)).toBeGreaterThanOrEqual(settleMs);
  expect(await readdir(root)).toEqual([]);
});

test("a live lease held elsewhere is refused by name, and the store's lease is left as it was", async () => {
  const { root, store } = await fileStore();
  const live = { owner: "x", host: "elsewhere", pid: 1, command: "sync", acquired: new Date().toISOString(), expires: new Date(Date.now() + 60_000).toISOString() };
  await writeFile(path.join(root, LEASE_KEY), JSON.stringify(live));
  await expect(withLease(store, { command: "test" }, async () => {})).rejects.toThrow(/being written by another plugin-uploader \(sync on elsewhere, pid 1/);
  expect(JSON.parse(await readFile(path.join(root, LEASE_KEY), "utf8"))).toEqual(live);
});
