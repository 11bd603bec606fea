import { createHash } from "node:crypto";
import { truncate } from "node:fs/promises";
import { connect, type Socket } from "node:net";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, inject, test } from "vitest";
import { wasmModule } from "./support/wasm.ts";
import { request } from "./support/http.ts";
import { faultProxy } from "./support/net.ts";
import { descriptors } from "./support/process.ts";
import { s3Target, seedDirectory, startNode, type NodeServer } from "./support/targets.ts";

/**
 * sendfile(2) on the Node entry (src/node/sendfile.ts and its addon), over real sockets against
 * `node dist/node.js`: clients that stop reading (the socket fills, the sender waits), clients
 * that leave mid-body, keep-alive after a kernel-sent body, a file cut short while it is sent, and
 * the memory the cache no longer spends on large files. The addon is built by `npm run build`; a
 * build without it fails here, it does not skip.
 */

const LARGE = wasmModule(6_000_000, 21); // above ON_DISK_FROM (1 MiB): the kernel's, not the memory cache's
const KEY = "plugins/large/1.0.0/plugin.wasm";
const PATH = `/${KEY}`;
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

const s3 = inject("s3");
const running: NodeServer[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});
async function serve(env: Record<string, string> = {}): Promise<{ server: NodeServer; dir: string; port: number }> {
  const dir = await seedDirectory(new Map([[KEY, LARGE]]));
  const server = await startNode("node + file", { STORE: `file:${dir}`, ...env });
  running.push(server);
  return { server, dir, port: Number(new URL(server.url).port) };
}

/** Body bytes the server says the kernel sent (its metric). */
async function kernelSent(url: string): Promise<number> {
  const metrics = (await request(`${url}/metrics`)).body.toString();
  return Number(/^plugin_server_sendfile_bytes_total (\d+)$/m.exec(metrics)?.[1] ?? NaN);
}

/** A raw HTTP/1.1 client on one connection: requests written as given, bytes read only when told. */
class RawClient {
  readonly socket: Socket;
  #received = Buffer.alloc(0);
  #waiters: (() => void)[] = [];
  closed = false;

  constructor(port: number) {
    this.socket = connect(port, "127.0.0.1");
    this.socket.on("data", (chunk: Buffer) => {
      this.#received = Buffer.concat([this.#received, chunk]);
      this.#waiters.splice(0).forEach((w) => w());
    });
    this.socket.on("close", () => {
      this.closed = true;
      this.#waiters.splice(0).forEach((w) => w());
    });
  }

  get(pathname: string, headers = ""): void {
    this.socket.write(`GET ${pathname} HTTP/1.1\r\nHost: t\r\nAccept-Encoding: identity\r\n${headers}\r\n`);
  }

  /** The next response: status, headers, body (Content-Length of it, or what arrived before the connection closed). */
  async response(): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
    const headEnd = await this.#until(() => this.#received.indexOf("\r\n\r\n"));
    const head = this.#received.subarray(0, headEnd).toString("latin1").split("\r\n");
    const headers = Object.fromEntries(head.slice(1).map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]));
    const length = Number(headers["content-length"]);
    const total = headEnd + 4 + length;
    await this.#until(() => (this.#received.length >= total ? total : -1));
    const body = this.#received.subarray(headEnd + 4, Math.min(total, this.#received.length));
    this.#received = this.#received.subarray(Math.min(total, this.#received.length));
    return { status: Number(head[0]!.split(" ")[1]), headers, body };
  }

  async #until(found: () => number): Promise<number> {
    for (;;) {
      const at = found();
      if (at >= 0 || this.closed) return at >= 0 ? at : this.#received.length;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }
}

/**
 * `count` clients ask for PATH and read nothing for `pausedMs` (their socket buffers fill: the
 * sender meets EAGAIN), `whilePaused` runs, then every body must arrive whole.
 */
async function pausedDownloads(port: number, count: number, pausedMs: number, whilePaused: () => Promise<void> = async () => {}): Promise<void> {
  const clients = Array.from({ length: count }, () => new RawClient(port));
  for (const c of clients) {
    c.socket.pause();
    c.get(PATH);
  }
  await sleep(pausedMs);
  await whilePaused();
  for (const c of clients) c.socket.resume();
  for (const c of clients) {
    const r = await c.response();
    expect(r.status).toBe(200);
    expect(sha(r.body)).toBe(sha(LARGE));
    c.socket.destroy();
  }
}

describe("sendfile(2) on the Node entry", () => {
  test("says so at start; bodies, ranges and keep-alive as with copied bytes", async () => {
    const { server } = await serve();
    expect(server.output()).toMatch(/listening on .*; sendfile: on\)/);
    const whole = await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } });
    expect(whole.status).toBe(200);
    expect(sha(whole.body)).toBe(sha(LARGE));
    // A range above the file store's small-read size goes to the kernel too.
    const range = await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity", Range: "bytes=1000000-2999999" } });
    expect(range.status).toBe(206);
    expect(sha(range.body)).toBe(sha(LARGE.subarray(1_000_000, 3_000_000)));
    // Three requests on one connection, pipelined: each answer whole and in order, nothing interleaved.
    const client = new RawClient(Number(new URL(server.url).port));
    client.get(PATH);
    client.get(PATH, "Range: bytes=0-99999\r\n");
    client.get(`/plugins/large/1.0.0/metadata.txt`);
    const [a, b, c] = [await client.response(), await client.response(), await client.response()];
    expect([a.status, b.status, c.status]).toEqual([200, 206, 200]);
    expect(c.body.toString()).toContain(createHash("md5").update(LARGE).digest("hex")); // derived from the module, after two kernel-sent bodies
    expect(sha(a.body)).toBe(sha(LARGE));
    expect(sha(b.body)).toBe(sha(LARGE.subarray(0, 100_000)));
    client.socket.destroy();
    // Corked while sent, uncorked at the end: a body's last partial segment leaves at once, not
    // after the kernel's 200 ms cork timeout (ten answers in a row would take 2 s and more).
    const again = new RawClient(Number(new URL(server.url).port));
    const started = performance.now();
    for (let i = 0; i < 10; i++) {
      again.get(PATH, "Range: bytes=0-100000\r\n");
      expect((await again.response()).body.length).toBe(100_001);
    }
    expect(performance.now() - started).toBeLessThan(1_500);
    again.socket.destroy();
    // The kernel sent every body but the pipelined range, whose response had no socket yet when it began (copied).
    expect(await kernelSent(server.url)).toBe(2 * LARGE.length + 2_000_000 + 10 * 100_001);
  });

  test("clients that stop reading: the sender waits for the socket, then every byte arrives", async () => {
    const { server, port } = await serve();
    await pausedDownloads(port, 12, 500, async () => {
      // Meanwhile the server answers others at once.
      expect((await request(`${server.url}/healthz`)).status).toBe(200);
    });
  });

  test("a client gone mid-body: its descriptors are given back and the server goes on", async () => {
    const { server, port } = await serve();
    const pid = server.process.pid!;
    expect((await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } })).status).toBe(200); // warm: lazy descriptors opened
    await sleep(200);
    const before = descriptors(pid).fds;
    for (let i = 0; i < 20; i++) {
      const c = new RawClient(port);
      c.socket.pause();
      c.get(PATH);
      await sleep(20);
      c.socket.destroy();
    }
    // The socket's duplicate and the file's descriptor of each are closed once the connection is gone.
    let after = descriptors(pid).fds;
    for (let i = 0; i < 50 && after > before; i++) {
      await sleep(100);
      after = descriptors(pid).fds;
    }
    expect(after).toBeLessThanOrEqual(before);
    expect(sha((await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } })).body)).toBe(sha(LARGE));
  });

  test("a file cut short while it is sent: the connection is cut, never padded or hung", async () => {
    const { server, dir, port } = await serve();
    const client = new RawClient(port);
    client.socket.pause();
    client.get(PATH);
    await sleep(300); // the headers and the first socket-full have left
    await truncate(path.join(dir, KEY), 1_000_000);
    client.socket.resume();
    const r = await client.response();
    expect(r.headers["content-length"]).toBe(String(LARGE.length));
    expect(r.body.length).toBeLessThan(LARGE.length);
    expect(client.closed).toBe(true);
    expect(server.output()).not.toMatch(/uncaught|TypeError/i);
  });

  test("large files stay out of the memory cache; SENDFILE=off keeps them there and copies", async () => {
    const on = await serve();
    await request(`${on.server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } });
    const cacheBytes = async (url: string) => Number(/^plugin_server_cache_bytes (\d+)/m.exec((await request(`${url}/metrics`)).body.toString())?.[1]);
    expect(await cacheBytes(on.server.url)).toBeLessThan(1024 * 1024);
    const off = await serve({ SENDFILE: "off" });
    expect(off.server.output()).toContain("sendfile: off (SENDFILE=off)");
    expect(sha((await request(`${off.server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } })).body)).toBe(sha(LARGE));
    expect(await cacheBytes(off.server.url)).toBeGreaterThanOrEqual(LARGE.length);
  });

  test("a mistyped SENDFILE stops the start with the variable named", async () => {
    await expect(serve({ SENDFILE: "yes" })).rejects.toThrow(/SENDFILE=yes must be auto, on or off/);
  });
});

describe.skipIf(!s3)("sendfile(2) from the S3 store's disk copies (radosgw)", () => {
  test("a copy still arriving is sent by the kernel as it arrives; later readers get the kept copy", async () => {
    const server = await s3Target(s3!, new Map([[KEY, LARGE]]));
    running.push(server);
    expect(server.output()).toMatch(/; sendfile: on\)/);
    const port = Number(new URL(server.url).port);
    // Cold: these follow the download, paused, from the copy being written.
    await pausedDownloads(port, 6, 400);
    const warm = await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } });
    expect(sha(warm.body)).toBe(sha(LARGE));
    expect(server.output()).toContain(`"GET ${PATH}" 200 ${LARGE.length} `);
    await sleep(200); // the access log is written in batches
    expect(server.output()).toMatch(/plugin\.wasm" 200 \d+ [\d.]+ms store=[\d.]+ms cache=disk /); // the warm read: the disk copy
    expect(await kernelSent(server.url)).toBe(7 * LARGE.length); // no byte copied, cold or warm
  });

  test("a store that stalls mid-body: the kernel sends what arrived, then the connection is cut and nothing is kept", async () => {
    const proxy = await faultProxy(s3!.endpoint);
    try {
      const server = await s3Target(s3!, new Map([[KEY, LARGE]]), { S3_ENDPOINT: proxy.endpoint, STORE_STALL_TIMEOUT_MS: "1000", STORE_RETRIES: "0" });
      running.push(server);
      proxy.stallAfter(2_500_000); // the answer's head and about 2.5 MB of the body
      const client = new RawClient(Number(new URL(server.url).port));
      client.get(PATH);
      const cut = await client.response();
      expect(cut.status).toBe(200);
      expect(client.closed).toBe(true);
      expect(cut.body.length).toBeGreaterThan(1_000_000); // sent while the download was under way
      expect(cut.body.length).toBeLessThan(2_500_000);
      expect(cut.body.equals(LARGE.subarray(0, cut.body.length))).toBe(true);
      expect(await kernelSent(server.url)).toBe(cut.body.length);
      // The store back: the next reader gets the whole object, not a copy of the stalled part.
      await proxy.up();
      const whole = await request(`${server.url}${PATH}`, { headers: { "Accept-Encoding": "identity" } });
      expect(whole.status).toBe(200);
      expect(sha(whole.body)).toBe(sha(LARGE));
    } finally {
      await proxy.close();
    }
  });
});
