import { Agent, request as httpRequest } from "node:http";
import { connect } from "node:net";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { BIG, BIG_GZIP, fixture, sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { faultProxy } from "./support/net.ts";
import { descriptors, rssMiB } from "./support/process.ts";
import { s3Env, seedBucket, seedDirectory, startNode, type NodeServer } from "./support/targets.ts";

/**
 * The server under store faults and hostile load, over real connections: radosgw frozen, stopped
 * and restarted under a running server; 10,000 hostile requests; a soak of mixed traffic; a flood of
 * misses; SIGTERM under load. Each prints its figures for the README's Reliability section.
 */

const s3 = inject("s3");
const data = await fixture();
const servers: NodeServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});
const start = async (server: Promise<NodeServer>) => {
  const s = await server;
  servers.push(s);
  return s;
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const report = (name: string, figures: Record<string, unknown>) => console.log(`[reliability] ${name}: ${JSON.stringify(figures)}`);

async function timed<T>(run: () => Promise<T>): Promise<{ ms: number; value: T }> {
  const started = Date.now();
  const value = await run();
  return { ms: Date.now() - started, value };
}

describe.skipIf(!s3)("store outage under a running server (radosgw behind a fault proxy)", () => {
  test("frozen, stopped and back: bounded 503s with Retry-After, honest readiness, cached plugins keep serving, recovery without restart", { timeout: 90_000 }, async () => {
    const proxy = await faultProxy(s3!.endpoint);
    const { store } = await seedBucket(s3!, data.objects);
    const server = await start(startNode("outage", { STORE: store, ...s3Env(s3!), S3_ENDPOINT: proxy.endpoint }));
    const url = (p: string) => `${server.url}${p}`;
    const warm = "/plugins/hello-world/1.0.0/plugin.wasm";
    const cold = "/plugins/big/2.0.0/plugin.wasm";
    expect((await request(url(warm))).status).toBe(200);
    expect((await request(url("/readyz"))).status).toBe(200);
    const figures: Record<string, number | string> = {};

    proxy.freeze(); // connections accepted, nothing answered: a radosgw under SIGSTOP
    await sleep(1_100); // past the one second a readiness success is reused
    const [plugin, missing, ready, cached] = await Promise.all([
      timed(() => request(url(cold))),
      timed(() => request(url("/plugins/no-such-plugin/1.0.0/plugin.wasm"))),
      timed(() => request(url("/readyz"))),
      timed(() => request(url(warm))),
    ]);
    expect(plugin.value.status).toBe(503);
    expect(plugin.value.headers["retry-after"]).toMatch(/^\d+$/);
    expect(plugin.ms).toBeLessThanOrEqual(10_000);
    expect([404, 503]).toContain(missing.value.status);
    expect(missing.ms).toBeLessThanOrEqual(10_000);
    expect(ready.value.status).toBe(503);
    expect(ready.ms).toBeLessThanOrEqual(2_000);
    expect(cached.value.status).toBe(200);
    expect(cached.value.body.equals(Buffer.from(data.helloGzip)) || cached.value.body.equals(Buffer.from(data.hello))).toBe(true);
    Object.assign(figures, { frozenPluginMs: plugin.ms, frozenMissingMs: missing.ms, frozenReadyzMs: ready.ms, frozenCachedStatus: cached.value.status });

    await proxy.down(); // connection refused: radosgw stopped
    const [downReady, downPlugin] = await Promise.all([timed(() => request(url("/readyz"))), timed(() => request(url(cold)))]);
    expect(downReady.value.status).toBe(503);
    expect(downReady.ms).toBeLessThanOrEqual(2_000);
    expect(downPlugin.value.status).toBe(503);
    expect(downPlugin.ms).toBeLessThanOrEqual(10_000);
    Object.assign(figures, { stoppedReadyzMs: downReady.ms, stoppedPluginMs: downPlugin.ms });

    await proxy.up(); // back: ready again without a restart
    const back = await timed(async () => {
      for (;;) {
        if ((await request(url("/readyz"))).status === 200) return;
        await sleep(200);
      }
    });
    expect(back.ms).toBeLessThanOrEqual(15_000);
    const recovered = await request(url(cold), { headers: { "Accept-Encoding": "identity" } });
    expect(recovered.status).toBe(200);
    expect(sha256(recovered.body)).toBe(sha256(BIG));
    figures.readyAgainMs = back.ms;
    report("store outage", figures);
    await proxy.close();
  });
});

describe.skipIf(!s3)("rollout scale over S3", () => {
  test("a cold burst through an S3 store reads each object once, one larger than the memory budget too", { timeout: 60_000 }, async () => {
    const large = new Uint8Array(3 * 1024 * 1024).map((_, i) => (i * 7919) % 251);
    const objects = new Map(data.objects);
    objects.set("plugins/large/1.0.0/plugin.wasm", large);
    const proxy = await faultProxy(s3!.endpoint);
    const { store } = await seedBucket(s3!, objects);
    // A 2 MiB memory budget: the 3 MiB object can only come from the disk cache.
    const server = await start(startNode("burst", { STORE: store, ...s3Env(s3!), S3_ENDPOINT: proxy.endpoint, CACHE_MAX_MB: "2", CACHE_DIR: path.join(await seedDirectory(new Map()), "cache") }));
    const identity = { "Accept-Encoding": "identity" };
    const answers = await Promise.all(
      Array.from({ length: 40 }, (_, i) =>
        request(`${server.url}${i % 2 ? "/plugins/large/1.0.0/plugin.wasm" : "/plugins/big/2.0.0/plugin.wasm"}`, { headers: identity }),
      ),
    );
    for (const [i, a] of answers.entries()) {
      expect(a.status).toBe(200);
      expect(sha256(a.body)).toBe(sha256(i % 2 ? large : BIG));
    }
    const gets = (key: string) => proxy.requests.filter((r) => r.startsWith("GET ") && r.includes(key) && !r.includes("plugin.wasm.gz")).length;
    report("cold burst over S3", { requests: 40, getsLarge: gets("/large/1.0.0/plugin.wasm"), getsBig: gets("/big/2.0.0/plugin.wasm") });
    expect(gets("/large/1.0.0/plugin.wasm")).toBe(1);
    expect(gets("/big/2.0.0/plugin.wasm")).toBe(1);
    await proxy.close();
  });
});

describe("hostile load (file store)", () => {
  let server: NodeServer;
  let root: string;
  const canary = "CANARY-outside-the-store";

  beforeAll(async () => {
    root = await seedDirectory(data.objects);
    await writeFile(path.join(path.dirname(root), "canary.txt"), canary);
    await mkdir(path.join(root, "plugins/hello-world/1.0.0/sub"), { recursive: true });
    server = await start(startNode("hostile", { STORE: `file:${root}` }));
  });

  test("10,000 hostile requests: no 5xx, no hang, no escape, no 200 with wrong bytes", { timeout: 120_000 }, async () => {
    const { port } = new URL(server.url);
    const requests = hostileRequests(10_000);
    const outcomes = { total: 0, byStatus: {} as Record<string, number>, hangs: 0, wrong: [] as string[] };
    const right = [data.hello, data.helloGzip, BIG, BIG_GZIP].map((b) => sha256(b));
    await pool(requests, 24, async (raw) => {
      const answer = await rawExchange(Number(port), raw, 5_000);
      outcomes.total++;
      if (answer === "timeout") {
        outcomes.hangs++;
        return;
      }
      const status = /^HTTP\/1\.1 (\d{3})/.exec(answer.toString("latin1"))?.[1] ?? "closed";
      outcomes.byStatus[status] = (outcomes.byStatus[status] ?? 0) + 1;
      const split = answer.indexOf("\r\n\r\n");
      const head = answer.subarray(0, split).toString("latin1");
      const body = answer.subarray(split + 4);
      if (answer.includes(canary)) outcomes.wrong.push(`escape: ${raw.slice(0, 120)}`);
      if (status.startsWith("5")) outcomes.wrong.push(`${status}: ${raw.slice(0, 120)}`);
      if (status === "200" && /content-type: application\/wasm/i.test(head) && !raw.startsWith("HEAD") && !/transfer-encoding/i.test(head) && !right.includes(sha256(body))) {
        outcomes.wrong.push(`wrong bytes: ${raw.slice(0, 120)}`);
      }
    });
    report("hostile requests", { total: outcomes.total, hangs: outcomes.hangs, byStatus: outcomes.byStatus, wrong: outcomes.wrong.length });
    expect(outcomes.total).toBe(10_000);
    expect(outcomes.hangs).toBe(0);
    expect(outcomes.wrong.slice(0, 10)).toEqual([]);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
  });

  test("miss flood: 100,000 more distinct junk names leave memory within 24 MiB of where it was", { timeout: 180_000 }, async () => {
    const agent = new Agent({ keepAlive: true, maxSockets: 64 });
    const get = (p: string) => agentGet(agent, `${server.url}${p}`);
    // Warm-up with 60,000 distinct names of the same shape: every cache is full and the heap has reached
    // its working size (V8's old generation grows in steps whose size depends on the V8 version).
    await pool(Array.from({ length: 60_000 }, (_, i) => `/plugins/warm-${i.toString(36)}-${"x".repeat(i % 80)}/v${i}/plugin.wasm`), 64, get);
    const before = rssMiB(server.process.pid!);
    let errors = 0;
    await pool(Array.from({ length: 100_000 }, (_, i) => `/plugins/junk-${i.toString(36)}-${"x".repeat(i % 80)}/v${i}/plugin.wasm`), 64, async (p) => {
      if ((await get(p)) >= 500) errors++;
    });
    agent.destroy();
    await sleep(500);
    const after = rssMiB(server.process.pid!);
    report("miss flood", { requests: 100_000, errors, rssBeforeMiB: before.toFixed(1), rssAfterMiB: after.toFixed(1) });
    expect(errors).toBe(0);
    expect(after - before).toBeLessThanOrEqual(24);
  });

  test("soak: mixed traffic at 256 connections, 10% of downloads aborted: no 5xx, memory flat, descriptors back to baseline", { timeout: 180_000 }, async () => {
    const seconds = Number(process.env.SOAK_SECONDS ?? 60);
    const pid = server.process.pid!;
    const baseline = descriptors(pid);
    const head = await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { method: "HEAD", headers: { "Accept-Encoding": "identity" } });
    const counts: Record<string, number> = {};
    const run = async (ms: number) => {
      const agent = new Agent({ keepAlive: true, maxSockets: 256 });
      const until = Date.now() + ms;
      await Promise.all(
        Array.from({ length: 256 }, async (_, worker) => {
          for (let i = worker; Date.now() < until; i += 256) {
            const status = await mixed(agent, server.url, i, head.headers.etag!);
            counts[status] = (counts[status] ?? 0) + 1;
          }
        }),
      );
      agent.destroy();
    };
    await run(5_000);
    await sleep(500);
    const warm = rssMiB(pid);
    await run(seconds * 1000);
    await sleep(1_000);
    const after = rssMiB(pid);
    let now = descriptors(pid);
    for (let i = 0; i < 50 && now.fds > baseline.fds; i++) {
      await sleep(100);
      now = descriptors(pid);
    }
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    const errors = Object.entries(counts).filter(([s]) => s.startsWith("5")).reduce((a, [, n]) => a + n, 0);
    report("soak", { seconds, connections: 256, requests: total, byStatus: counts, rssWarmMiB: warm.toFixed(1), rssAfterMiB: after.toFixed(1), fdsBaseline: baseline.fds, fdsAfter: now.fds, socketsBaseline: baseline.sockets, socketsAfter: now.sockets });
    expect(errors).toBe(0);
    expect(after).toBeLessThanOrEqual(warm * 1.1);
    expect(now.fds).toBeLessThanOrEqual(baseline.fds);
    expect(now.sockets).toBeLessThanOrEqual(baseline.sockets);
  });
});

describe("shutdown under load", () => {
  test("SIGTERM during a burst: every download that started completes, and no connection is refused while /readyz said ready", { timeout: 60_000 }, async () => {
    const server = await start(startNode("shutdown", { STORE: `file:${await seedDirectory(data.objects)}`, DRAIN_DELAY_SECONDS: "2", SHUTDOWN_GRACE_SECONDS: "20" }));
    const { port } = new URL(server.url);
    const agent = new Agent({ keepAlive: false });
    const downloads = Array.from({ length: 100 }, () => agentDownload(agent, `${server.url}/plugins/big/2.0.0/plugin.wasm`));
    await sleep(20);
    server.process.kill("SIGTERM");
    const probes: { at: number; outcome: string }[] = [];
    const signalled = Date.now();
    for (let i = 0; i < 60 && server.process.exitCode === null; i++) {
      const outcome = await rawExchange(Number(port), "GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", 2_000).then(
        (a) => (a === "timeout" ? "timeout" : /^HTTP\/1\.1 (\d{3})/.exec(a.toString("latin1"))?.[1] ?? "closed"),
        (e: NodeJS.ErrnoException) => e.code ?? "error",
      );
      probes.push({ at: Date.now() - signalled, outcome });
      await sleep(50);
    }
    const results = await Promise.all(downloads);
    const complete = results.filter((b) => b && sha256(b) === sha256(BIG)).length;
    const firstNotReady = probes.findIndex((p) => p.outcome !== "200");
    const refusedWhileReady = probes.slice(0, firstNotReady < 0 ? probes.length : firstNotReady).filter((p) => p.outcome === "ECONNREFUSED").length;
    report("shutdown under load", { downloads: results.length, complete, firstNotReadyMs: probes[firstNotReady]?.at, refusedWhileReady, exit: await server.exited });
    expect(complete).toBe(100);
    expect(refusedWhileReady).toBe(0);
    expect(probes[0]?.outcome).toBe("503"); // not ready at once, while still accepting
    expect(await server.exited).toBe(0);
  });
});

/** Runs `work` over `items` with `width` in flight. */
async function pool<T>(items: readonly T[], width: number, work: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: width }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

function agentGet(agent: Agent, url: string, headers: Record<string, string> = {}, method = "GET"): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { agent, method, headers }, (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
      res.on("error", reject);
    });
    req.on("error", reject);
    req.end();
  });
}

function agentDownload(agent: Agent, url: string): Promise<Buffer | undefined> {
  return new Promise((resolve) => {
    const req = httpRequest(url, { agent, headers: { "Accept-Encoding": "identity" } }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve(res.statusCode === 200 ? Buffer.concat(chunks) : undefined));
      res.on("error", () => resolve(undefined));
    });
    req.on("error", () => resolve(undefined));
    req.end();
  });
}

/** One request of the soak's mix; returns its status ("aborted" for downloads cut on purpose). */
function mixed(agent: Agent, base: string, i: number, etag: string): Promise<string> {
  const kind = i % 20;
  const url = `${base}/plugins/big/2.0.0/plugin.wasm`;
  if (kind < 8) {
    const abort = kind === 0 || kind === 4 ? i % 10 === 0 || i % 10 === 4 : false; // ~10% of downloads
    return new Promise((resolve) => {
      const req = httpRequest(url, { agent, headers: { "Accept-Encoding": kind % 2 ? "gzip" : "identity" } }, (res) => {
        if (abort) {
          res.once("data", () => {
            req.destroy();
            resolve("aborted");
          });
        }
        res.resume();
        res.on("end", () => resolve(String(res.statusCode)));
        res.on("error", () => resolve("aborted"));
      });
      req.on("error", () => resolve(abort ? "aborted" : "error"));
      req.end();
    });
  }
  const call = (headers: Record<string, string>, method = "GET", target = url) => agentGet(agent, target, headers, method).then(String, () => "error");
  if (kind < 11) return call({}, "HEAD");
  if (kind < 14) return call({ Range: `bytes=${i % 1000}-${(i % 1000) + 4095}`, "Accept-Encoding": "identity" });
  if (kind < 17) return call({ "If-None-Match": etag, "Accept-Encoding": "identity" });
  return call({}, "GET", `${base}/plugins/big/9.9.${i}/plugin.wasm`);
}

/** Sends raw bytes on a new connection and reads until the server closes it (or the timeout). */
function rawExchange(port: number, raw: string, timeoutMs: number): Promise<Buffer | "timeout"> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve("timeout");
    }, timeoutMs);
    socket.on("connect", () => socket.end(Buffer.from(raw, "latin1")));
    socket.on("data", (c: Buffer) => chunks.push(c));
    socket.on("close", () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
    socket.on("error", (error) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks));
      else reject(error);
    });
  });
}

/** Requests built from hostile parts: encodings, dot segments, NUL, overlong UTF-8, backslashes, junk headers, every method. */
function hostileRequests(count: number): string[] {
  const methods = ["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "TRACE", "PATCH", "PROPFIND", "get", "G\x00ET", ""];
  const paths = [
    "/plugins/hello-world/1.0.0/plugin.wasm", "/plugins/big/1.0.0/plugin.wasm", "/plugins/hello-world/1.0.0/metadata.txt",
    "/plugins/", "/", "/api/v1/plugins/hello-world", "/plugins/hello-world/1.0.0/", "/plugins/big/",
    "/plugins/../canary.txt", "/plugins/hello-world/1.0.0/../../../canary.txt", "/plugins/%2e%2e/%2e%2e/canary.txt",
    "/plugins/..%2f..%2fcanary.txt", "/plugins/%c0%ae%c0%ae/canary.txt", "/plugins/hello-world/1.0.0/plugin.wasm%00.txt",
    "/plugins/hello-world\\..\\..\\canary.txt", "//plugins//hello-world//1.0.0//plugin.wasm", "/plugins/hello-world/1.0.0/sub/",
    "/plugins/%252e%252e/canary.txt", "/plugins/hello-world/1.0.0/plugin.wasm?x=../../canary.txt", "/plugins/hello-world/1.0.0/plugin.wasm#frag",
    "/plugins/hello-world;x=1/1.0.0/plugin.wasm", `/plugins/${"a".repeat(200)}/1.0.0/plugin.wasm`, `/plugins/${"%41".repeat(2000)}`,
    "/plugins/constructor/__proto__/plugin.wasm", "/plugins/hello-world/1.0.0/%E2%80%AEplugin.wasm", "*", "http://evil/plugins/",
    "/plugins/hello-world/1.0.0/plugin.wasm/", "/plugins/hello-world/./1.0.0/plugin.wasm", "/readyz/../plugins/", "/plugins/\ud800/x",
  ];
  const headers = [
    "", "Range: bytes=0-0\r\n", "Range: bytes=-0\r\n", "Range: bytes=99999999999999999999-\r\n", `Range: bytes=${"0-0,".repeat(2000)}0-0\r\n`,
    "Range: bytes=a-b\r\n", `Range: bytes=${" ".repeat(8000)}0-1\r\n`, "If-None-Match: *\r\n", 'If-None-Match: "x", W/"y", junk\r\n',
    "If-Modified-Since: yesterday\r\n", "If-Range: Tue, 31 Feb 2026 00:00:00 GMT\r\nRange: bytes=0-9\r\n", "If-Match: \"nope\"\r\n",
    "Accept-Encoding: gzip;q=abc, *;q=0\r\n", `Accept-Encoding: ${"gzip,".repeat(3000)}\r\n`, "Accept: application/json\r\n",
    `X-Huge: ${"h".repeat(20_000)}\r\n`, "Broken header line\r\n", "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n", "Content-Length: 5\r\n\r\nhel",
    "Content-Length: -1\r\n", "Host: \r\n", "X-Forwarded-Host: evil\"<script>\r\nAccept: text/html\r\n", "Expect: 100-continue\r\n",
  ];
  let seed = 42;
  const pick = <T,>(list: readonly T[]) => list[(seed = (seed * 1103515245 + 12345) & 0x7fffffff) % list.length]!;
  return Array.from({ length: count }, () => {
    const header = pick(headers);
    const [fields, body = ""] = header.includes("\r\n\r\n") ? header.split("\r\n\r\n") : [header, ""];
    const host = fields!.startsWith("Host:") ? "" : "Host: x\r\n";
    return `${pick(methods)} ${pick(paths)} HTTP/1.1\r\n${host}${fields}${fields!.endsWith("\r\n") || fields === "" ? "" : "\r\n"}Connection: close\r\n\r\n${body}`;
  });
}
