import { execFileSync } from "node:child_process";
import fs from "node:fs";
import { mkdtemp, rename, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, test } from "vitest";
import { OpenFiles } from "../../src/storage/open-files.ts";

/** The server's shared descriptors, on real files: sharing, replacement, expiry, bounds, and no descriptor left behind. */
const isOpen = (fd: number) => {
  try {
    fs.fstatSync(fd);
    return true;
  } catch {
    return false;
  }
};
/** Closing is asynchronous (the thread pool's): true once `fd` is closed, false if it stays open. */
async function closes(fd: number): Promise<boolean> {
  for (let i = 0; i < 50; i++) {
    if (!isOpen(fd)) return true;
    await sleep(10);
  }
  return false;
}
const contentOf = (fd: number, length: number) => {
  const buffer = Buffer.alloc(length);
  fs.readSync(fd, buffer, 0, length, 0);
  return buffer.toString();
};
async function files(...contents: string[]): Promise<string[]> {
  const dir = await mkdtemp(path.join(tmpdir(), "open-files-"));
  return Promise.all(contents.map(async (content, i) => {
    const file = path.join(dir, `f${i}`);
    await writeFile(file, content);
    return file;
  }));
}

describe("OpenFiles", () => {
  test("concurrent and later reads of a path share one descriptor, which stays open while lent", async () => {
    const [file] = await files("first");
    const open = new OpenFiles({ max: 10, ttlMs: 60_000 });
    const [a, b] = await Promise.all([open.open(file!), open.open(file!)]);
    const c = await open.open(file!);
    expect(new Set([a.fd, b.fd, c.fd]).size).toBe(1);
    expect(a.stats.size).toBe(5);
    for (const lent of [a, b, c]) lent.release();
    a.release(); // twice: no effect on the others'
    expect(isOpen(a.fd)).toBe(true); // cached, for the next read
    expect(open.size).toBe(1);
  });

  test("a file replaced by rename: the old bytes until forgotten, then the new; the old descriptor closes once given back", async () => {
    const [file, next] = await files("old bytes", "new bytes");
    const open = new OpenFiles({ max: 10, ttlMs: 60_000 });
    const before = await open.open(file!);
    await rename(next!, file!);
    const stillOld = await open.open(file!);
    expect(contentOf(stillOld.fd, 9)).toBe("old bytes");
    stillOld.release();
    open.forget(file!);
    expect(isOpen(before.fd)).toBe(true); // a reader still holds it
    const after = await open.open(file!);
    expect(contentOf(after.fd, 9)).toBe("new bytes");
    expect(after.fd).not.toBe(before.fd);
    before.release();
    expect(await closes(before.fd)).toBe(true);
  });

  test("entries expire after ttlMs: idle descriptors are closed and the next read opens the file again", async () => {
    const [file] = await files("bytes");
    const open = new OpenFiles({ max: 10, ttlMs: 50 });
    const first = await open.open(file!);
    first.release();
    await sleep(150);
    expect(open.size).toBe(0);
    expect(await closes(first.fd)).toBe(true);
    const again = await open.open(file!);
    expect(contentOf(again.fd, 5)).toBe("bytes");
  });

  test("at most `max` descriptors are kept; one pushed out closes when its reader gives it back", async () => {
    const [a, b, c] = await files("a", "b", "c");
    const open = new OpenFiles({ max: 2, ttlMs: 60_000 });
    const held = await open.open(a!);
    (await open.open(b!)).release();
    (await open.open(c!)).release();
    expect(open.size).toBe(2);
    expect(isOpen(held.fd)).toBe(true);
    held.release();
    expect(await closes(held.fd)).toBe(true);
  });

  test("a missing file rejects as open(2) does and is not remembered; one forgotten while it opens is not kept", async () => {
    const [file] = await files("bytes");
    const open = new OpenFiles({ max: 10, ttlMs: 60_000 });
    await expect(open.open(`${file}.missing`)).rejects.toMatchObject({ code: "ENOENT" });
    expect(open.size).toBe(0);
    const opening = open.open(file!);
    open.forget(file!);
    const lent = await opening;
    expect(open.size).toBe(0);
    lent.release();
    expect(await closes(lent.fd)).toBe(true);
  });

  test("a FIFO opens at once (not a file, for the store to refuse) instead of waiting for a writer", async () => {
    const [file] = await files("x");
    const fifo = `${file}.fifo`;
    execFileSync("mkfifo", [fifo]);
    const open = new OpenFiles({ max: 10, ttlMs: 60_000 });
    const lent = await open.open(fifo);
    expect(lent.stats.isFile()).toBe(false);
    lent.release();
  });
});
