import { mkdir, mkdtemp, readFile, symlink, writeFile } from "node:fs/promises";
import { request as httpRequest } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, inject, test } from "vitest";
import { BIG, fixture, sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { fileTarget, s3Env, s3Target, seedBucket, startNode, type NodeServer } from "./support/targets.ts";

/** The Node entry as a process: configuration, the embedded default, logs, shutdown, S3 failures. */

const s3 = inject("s3");
const data = await fixture();
const running: NodeServer[] = [];
const start = async (server: Promise<NodeServer>) => {
  const s = await server;
  running.push(s);
  return s;
};
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

describe("configuration", () => {
  test("with no STORE it serves the embedded example store", async () => {
    const server = await start(startNode("default", {}));
    expect(server.output()).toMatch(/serving file:.*examples\/store/);
    const res = await request(`${server.url}/plugins/hello-world/1.0.0/plugin.wasm`);
    expect(res.status).toBe(200);
    expect(res.body.subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
    expect(sha256(res.body)).toBe(sha256(data.hello));
  });

  test.each([
    [{ PORT: "80a" }, "PORT=80a is not a whole number from 0 to 65535"],
    [{ PORT: "70000" }, "PORT=70000 is not a whole number"],
    [{ STORE: "ftp://host/dir" }, 'STORE=ftp://host/dir scheme "ftp:" is not supported'],
    [{ STORE: "s3://Bad_Bucket" }, 'bucket "Bad_Bucket" is not a valid bucket name'],
    [{ STORE: "s3://bucket/../x" }, 'prefix segment ".." is not allowed'],
    [{ STORE: "file:/does/not/exist" }, "STORE: directory /does/not/exist does not exist"],
    [{ S3_ENDPOINT: "localhost:9000" }, "S3_ENDPOINT=localhost:9000 is not an http:// or https:// URL"],
    [{ AWS_ACCESS_KEY_ID: "only-the-id" }, "AWS_SECRET_ACCESS_KEY is missing"],
    [{ S3_FORCE_PATH_STYLE: "maybe" }, "S3_FORCE_PATH_STYLE=maybe is not a boolean"],
    [{ LOG_FORMAT: "xml" }, "LOG_FORMAT=xml must be text or json"],
  ])("%o is refused at start with exit code 1: %s", async (env, message) => {
    await expect(startNode("bad config", env as Record<string, string>)).rejects.toThrow(
      new RegExp(`exited with 1:[\\s\\S]*${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}`),
    );
  });

  test("every problem is reported at once", async () => {
    const failure = startNode("bad config", { PORT: "x", LOG_FORMAT: "xml" });
    await expect(failure).rejects.toThrow(/PORT=x is not a whole number/);
    await expect(failure).rejects.toThrow(/LOG_FORMAT=xml must be text or json/);
  });

  test("a reference server's document root serves unchanged, symbolic-link versions included", async () => {
    // The nginx image's tree: plugins/<name>/<version>/plugin.wasm + metadata.txt, an old version linked to a new one.
    const root = await mkdtemp(path.join(tmpdir(), "reference-root-"));
    await mkdir(path.join(root, "plugins/key-auth/2.0.0"), { recursive: true });
    await writeFile(path.join(root, "plugins/key-auth/2.0.0/plugin.wasm"), BIG);
    await writeFile(path.join(root, "plugins/key-auth/2.0.0/metadata.txt"), "Plugin Name: key-auth\n");
    await symlink("2.0.0", path.join(root, "plugins/key-auth/1.0.0"));
    const server = await start(startNode("reference tree", { STORE: `file:${root}` }));
    for (const version of ["1.0.0", "2.0.0"]) {
      const res = await request(`${server.url}/plugins/key-auth/${version}/plugin.wasm`);
      expect(res.status, version).toBe(200);
      expect(sha256(res.body)).toBe(sha256(BIG));
    }
    const versions = JSON.parse((await request(`${server.url}/api/v1/plugins/key-auth`)).body.toString());
    expect(versions.versions.map((v: { version: string }) => v.version)).toEqual(["2.0.0", "1.0.0"]);
  });

  test("CACHE_CONTROL replaces the default for versioned files", async () => {
    const server = await start(fileTarget(data.objects, { CACHE_CONTROL: "public, max-age=60" }));
    const res = await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { method: "HEAD" });
    expect(res.headers["cache-control"]).toBe("public, max-age=60");
  });
});

describe("the plugin file fast path", () => {
  // Origin-form targets under /plugins/ are answered by the file handler straight from Node's
  // request listener; an absolute-form target takes the app's Hono route to the same handler.
  // Both must answer byte for byte alike (but for the date and the request id).
  const send = (port: number, target: string, method: string, headers: Record<string, string>) =>
    new Promise<{ status: number; headers: Record<string, unknown>; body: string }>((resolve, reject) => {
      const req = httpRequest({ host: "127.0.0.1", port, path: target, method, headers }, (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const { date: _date, "x-request-id": id, ...rest } = res.headers;
          const body = Buffer.concat(chunks).toString("latin1").replaceAll(String(id), "<id>");
          resolve({ status: res.statusCode ?? 0, headers: rest, body });
        });
      });
      req.on("error", reject);
      req.end();
    });

  test("answers exactly as the app's route does: bodies, HEAD, gzip, ranges, 304, 404, 400, JSON errors", async () => {
    const server = await start(startNode("fast-path", {}));
    const port = Number(new URL(server.url).port);
    const wasm = "/plugins/hello-world/1.0.0/plugin.wasm";
    const etag = (await request(`${server.url}${wasm}`)).headers.etag!;
    const cases: [string, string, Record<string, string>][] = [
      ["GET", wasm, {}],
      ["HEAD", wasm, {}],
      ["GET", wasm, { "accept-encoding": "gzip" }],
      ["GET", wasm, { range: "bytes=0-9" }],
      ["GET", wasm, { range: "bytes=999999-" }],
      ["GET", wasm, { "if-none-match": etag }],
      ["GET", "/plugins/hello-world/1.0.0/metadata.txt", {}],
      ["GET", "/plugins/hello-world/1.0.0/nothing.txt", {}],
      ["GET", "/plugins/hello-world/1.0.0/nothing.txt", { accept: "application/json" }],
      ["GET", "/plugins/hello-world/9.9.9/plugin.wasm", {}],
      ["GET", "/plugins/hello-world/1.0.0/%zz", {}],
      ["GET", "/plugins/hello-world/1.0.0/../1.0.0/plugin.wasm", {}],
    ];
    for (const [method, target, headers] of cases) {
      const fast = await send(port, target, method, headers);
      const routed = await send(port, `http://127.0.0.1:${port}${target}`, method, headers);
      expect(fast, `${method} ${target} ${JSON.stringify(headers)}`).toEqual(routed);
    }
    expect((await send(port, wasm, "GET", { range: "bytes=0-9" })).status).toBe(206);
    expect((await send(port, "/plugins/hello-world/1.0.0/%zz", "GET", {})).status).toBe(400);
  });
});

describe("memory settings", () => {
  const processFacts = async (pid: number) => ({
    environ: (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0"),
    cmdline: (await readFile(`/proc/${pid}/cmdline`, "utf8")).split("\0"),
  });

  test("started as a bare `node dist/node.js`, the server applies its own (same PID) and says so at start", async () => {
    const server = await start(fileTarget(data.objects));
    // Node 20 cannot re-execute itself (no process.execve): there the start line says what to set instead.
    if (typeof (process as { execve?: unknown }).execve !== "function") {
      expect(server.output()).toContain(`memory: not tuned (Node ${process.versions.node} cannot re-execute itself; start with MALLOC_MMAP_THRESHOLD_=65536 node --max-semi-space-size=16`);
      return;
    }
    const facts = await processFacts(server.process.pid!);
    expect(facts.environ).toContain("MALLOC_MMAP_THRESHOLD_=65536");
    expect(facts.cmdline).toContain("--max-semi-space-size=16");
    expect(server.output()).toMatch(/listening on .*; memory: --max-semi-space-size=16, MALLOC_MMAP_THRESHOLD_=65536; sendfile: on\)/);
    expect((await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { "Accept-Encoding": "identity" } })).body.length).toBe(BIG.length);
  });

  test("an operator's own values are kept", async () => {
    const server = await start(fileTarget(data.objects, { MALLOC_MMAP_THRESHOLD_: "131072", NODE_OPTIONS: "--max-semi-space-size=8" }));
    const facts = await processFacts(server.process.pid!);
    expect(facts.environ).toContain("MALLOC_MMAP_THRESHOLD_=131072");
    expect(facts.cmdline).not.toContain("--max-semi-space-size=16");
    expect(server.output()).toContain("memory: --max-semi-space-size=8, MALLOC_MMAP_THRESHOLD_=131072; sendfile: on)");
  });
});

describe("logs and shutdown", () => {
  test("one access log line per request with method, path, status, bytes and duration", async () => {
    const server = await start(fileTarget(data.objects));
    await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { "User-Agent": "Go-http-client/1.1" } });
    await request(`${server.url}/plugins/big/9.9.9/plugin.wasm`);
    await sleep(100);
    const log = server.output();
    expect(log).toMatch(
      new RegExp(`"GET /plugins/big/2\\.0\\.0/plugin\\.wasm" 200 ${BIG.byteLength} [\\d.]+ms store=[\\d.]+ms cache=miss id=[0-9a-f-]{36} "Go-http-client/1\\.1"`),
    );
    expect(log).toMatch(/"GET \/plugins\/big\/9\.9\.9\/plugin\.wasm" 404 \d+ [\d.]+ms/);
  });

  test("probes, answered without the Hono adapter: the app's headers, HEAD without a body, other methods still 405", async () => {
    const preload = path.join(import.meta.dirname, "support/loaded-modules.cjs");
    const server = await start(fileTarget(data.objects, { NODE_OPTIONS: `--require ${preload}` }));
    // Gateways and probes never load undici (the adapter's web Requests and Responses); the catalog does.
    const undici = async () => {
      const before = server.output().length;
      server.process.kill("SIGUSR2");
      for (let i = 0; i < 50 && !/undici loaded: \w+/.test(server.output().slice(before)); i++) await sleep(20);
      return /undici loaded: (\w+)/.exec(server.output().slice(before))?.[1];
    };
    for (const [probe, text, cacheControl] of [["/healthz", "ok\n", undefined], ["/readyz", "ready\n", "no-store"]] as const) {
      const res = await request(`${server.url}${probe}?from=kubelet`);
      expect(res.status).toBe(200);
      expect(res.body.toString()).toBe(text);
      expect(res.headers["content-type"]).toBe("text/plain; charset=UTF-8");
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
      expect(res.headers["cache-control"]).toBe(cacheControl);
      const head = await request(`${server.url}${probe}`, { method: "HEAD" });
      expect([head.status, head.headers["content-length"], head.body.length]).toEqual([200, String(text.length), 0]);
    }
    expect((await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`)).status).toBe(200);
    expect(await undici()).toBe("false");
    const post = await request(`${server.url}/healthz`, { method: "POST" });
    expect([post.status, post.headers.allow]).toEqual([405, "GET, HEAD"]);
    expect((await request(`${server.url}/healthz/`)).status).toBe(404);
    expect(await undici()).toBe("true");
  });

  test("LOG_FORMAT=json writes one JSON object per request", async () => {
    const server = await start(fileTarget(data.objects, { LOG_FORMAT: "json" }));
    await request(`${server.url}/healthz`);
    await sleep(100);
    const line = server.output().split("\n").find((l) => l.startsWith("{"));
    expect(JSON.parse(line!)).toMatchObject({ method: "GET", path: "/healthz", status: 200, bytes: 3 });
  });

  test("SIGTERM lets a download in flight finish, then exits 0", async () => {
    const server = await start(fileTarget(data.objects));
    const download = request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { "Accept-Encoding": "identity" } });
    await sleep(5);
    server.process.kill("SIGTERM");
    const res = await download;
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(BIG.byteLength);
    expect(await server.exited).toBe(0);
    expect(server.output()).toContain("SIGTERM: not ready; accepting for 0s, then finishing requests in flight");
    expect(server.output()).toContain("stopped");
  });
});

describe.skipIf(!s3)("S3 connections and failures", () => {
  test("HEADs, 304s and aborted downloads return their pooled connections (pool of 4)", async () => {
    const server = await start(s3Target(s3!, data.objects, { S3_MAX_SOCKETS: "4", CACHE_TTL_SECONDS: "0" }));
    const url = `${server.url}/plugins/big/2.0.0/plugin.wasm`;
    const { headers } = await request(url, { method: "HEAD" });
    for (let i = 0; i < 12; i++) expect((await request(url, { method: "HEAD" })).status).toBe(200);
    for (let i = 0; i < 12; i++) expect((await request(url, { headers: { "If-None-Match": headers.etag! } })).status).toBe(304);
    for (let i = 0; i < 12; i++) expect((await request(url, { headers: { Range: `bytes=${BIG.byteLength}-` } })).status).toBe(416);
    for (let i = 0; i < 12; i++) await request(url, { headers: { "Accept-Encoding": "identity" }, abortAfterBytes: 1 });
    const res = await request(url, { headers: { "Accept-Encoding": "identity" } });
    expect(res.status).toBe(200);
    expect(res.body.length).toBe(BIG.byteLength);
  });

  test("wrong credentials: 503 (the gateway retries), /readyz 503, and a message without the secret", async () => {
    const { store } = await seedBucket(s3!, data.objects);
    const server = await start(
      startNode("bad credentials", { STORE: store, ...s3Env(s3!), AWS_SECRET_ACCESS_KEY: "wrong-secret-value" }),
    );
    const res = await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`);
    expect(res.status).toBe(503);
    expect(res.headers["retry-after"]).toBe("1");
    // The details go to the log, not to anonymous clients (no bucket, prefix or endpoint in the body).
    expect(res.body.toString()).toMatch(/^the plugin store is unavailable right now; try again shortly\nrequest id: [0-9a-f-]{36}\n$/);
    expect(server.output()).toMatch(/S3 store .* could not read .*(SignatureDoesNotMatch|AccessDenied|InvalidAccessKeyId)/);
    expect(server.output()).not.toContain("wrong-secret-value");
    // One line per failure, naming the request: no SDK object, no stack.
    const failures = server.output().split("\n").filter((l) => / error store 503 /.test(l));
    expect(failures.some((l) => l.endsWith(` id=${res.headers["x-request-id"]}`))).toBe(true);
    expect(server.output()).not.toMatch(/^\s+at |\$metadata|\$fault/m);
    expect((await request(`${server.url}/readyz`)).status).toBe(503);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
  });

  test("an unreachable endpoint: 503, not 404; with LOG_FORMAT=json each failure is one JSON line with its request id", async () => {
    const server = await start(
      startNode("unreachable", { STORE: "s3://plugins", ...s3Env(s3!), S3_ENDPOINT: "http://127.0.0.1:9", LOG_FORMAT: "json" }),
    );
    const res = await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`);
    expect(res.status).toBe(503);
    expect((await request(`${server.url}/readyz`)).status).toBe(503);
    const lines = server.output().split("\n").filter((l) => l && !l.startsWith("listening on ") && !l.startsWith("metrics on "));
    const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>); // every line is JSON: no multi-line dump
    const failure = entries.find((e) => e.level === "error" && e.requestId === res.headers["x-request-id"]);
    expect(failure).toMatchObject({ kind: "store", status: 503, cause: "ECONNREFUSED" });
    expect(failure!.message).toMatch(/^S3 store s3:\/\/plugins.* could not read plugins\/big\/2\.0\.0\//);
  });
});
