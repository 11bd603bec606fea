import { request as httpRequest, type IncomingMessage } from "node:http";
import { connect } from "node:net";
import type { Duplex } from "node:stream";
import { mkdtemp, readdir, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { FileStore } from "../src/storage/fs.ts";
import { readBytes } from "../src/storage/store.ts";
import { parseProperties } from "../uploader/config.ts";
import { sync } from "../uploader/sync.ts";
import { cli } from "./support/cli.ts";
import { sha256 } from "./support/fixtures.ts";
import { listenLoopback } from "./support/net.ts";
import { orasPlugin, writeOciLayout } from "./support/oci-layout.ts";
import { push, startRegistry, type Registry } from "./support/registry.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * The uploader against a misbehaving registry: the real distribution registry behind a proxy that
 * resets connections, truncates blobs, sends bytes that do not match their digest, or trickles a
 * blob byte by byte. Retried where that is right; never a corrupt plugin published; bounded in time.
 */

const tools = inject("registryTools");
const WASM = wasmModule(40_000, 77);
type Fault = "reset" | "truncate" | "corrupt" | "trickle" | undefined;

/** A registry holding one plugin, plugins/x:1.0.0, with WASM as its module. */
async function registryWithPlugin(): Promise<Registry> {
  const registry = await startRegistry();
  const dir = await mkdtemp(path.join(tmpdir(), "layout-"));
  const artifact = orasPlugin(WASM);
  await writeOciLayout(dir, "1.0.0", artifact.manifest, artifact.blobs);
  await push(`oci:${dir}:1.0.0`, registry, "plugins/x:1.0.0");
  return registry;
}

describe.skipIf(!tools)("uploader against a misbehaving registry", () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await registryWithPlugin();
  });
  afterAll(() => registry?.stop());

  /** A front whose `fault(n)` decides what happens to the n-th blob request. */
  async function front(fault: (n: number) => Fault) {
    let blobs = 0;
    const { server, host } = await listenLoopback((req, res) => {
      const isBlob = /\/blobs\/sha256:/.test(req.url ?? "") && req.method === "GET";
      const what = isBlob ? fault(++blobs) : undefined;
      if (what === "reset") return void req.socket.destroy();
      const upstream = httpRequest(`http://${registry.host}${req.url}`, { method: req.method, headers: { ...req.headers, host: registry.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        if (!what) return void up.pipe(res);
        const chunks: Buffer[] = [];
        up.on("data", (c: Buffer) => chunks.push(c));
        up.on("end", () => {
          const body = Buffer.concat(chunks);
          if (what === "truncate") {
            res.write(body.subarray(0, body.length >> 1));
            res.socket?.destroy();
          } else if (what === "corrupt") {
            body[body.length >> 1] = (body[body.length >> 1] ?? 0) ^ 0xff; // same length, other bytes
            res.end(body);
          } else {
            let i = 0;
            const timer = setInterval(() => {
              if (res.destroyed || i >= body.length) return void clearInterval(timer);
              res.write(body.subarray(i, ++i));
            }, 200);
            res.on("close", () => clearInterval(timer));
          }
        });
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    return { host, blobs: () => blobs, stop: () => new Promise((r) => server.close(r)) };
  }

  async function run(host: string, timeoutMs = 10_000) {
    const store = new FileStore(await mkdtemp(path.join(tmpdir(), "faulty-")));
    const started = Date.now();
    const report = await sync({
      store,
      plan: parseProperties(`x=oci://${host}/plugins/x:1.0.0\n`, "plugins.properties"),
      plainHttp: new Set([host]),
      backoffMs: 20,
      timeoutMs,
    });
    return { store, report, ms: Date.now() - started, dir: store.description.slice("file:".length) };
  }

  test("a reset and a truncated blob are retried, and the plugin is published intact", async () => {
    const f = await front((n) => (n === 1 ? "reset" : n === 2 ? "truncate" : undefined));
    const { store, report } = await run(f.host);
    await f.stop();
    expect(report.failed).toBe(0);
    expect(sha256(await readBytes((await store.get("plugins/x/1.0.0/plugin.wasm"))!))).toBe(sha256(WASM));
    expect(f.blobs()).toBeGreaterThan(2);
  });

  // The official format's fourth blob is plugin.tar.gz, which is gunzipped and untarred as it arrives.
  test("a module layer cut off mid-stream is fetched again from the start; a corrupt one is refused by its digest, not by gunzip", async () => {
    const cut = await front((n) => (n === 4 ? "truncate" : n === 5 ? "reset" : undefined));
    const retried = await run(cut.host);
    await cut.stop();
    expect(retried.report.failed).toBe(0);
    expect(cut.blobs()).toBe(6);
    expect(sha256(await readBytes((await retried.store.get("plugins/x/1.0.0/plugin.wasm"))!))).toBe(sha256(WASM));

    const corrupt = await front((n) => (n >= 4 ? "corrupt" : undefined));
    const refused = await run(corrupt.host);
    await corrupt.stop();
    expect(refused.report.versions[0]!.error).toMatch(/blob sha256:[0-9a-f]{64} of .* does not verify/);
    expect(corrupt.blobs()).toBe(4); // a digest mismatch is not retried
    expect(await readdir(refused.dir).catch(() => [])).not.toContain("plugins");
  });

  test("blob bytes that do not match their digest are refused: nothing is published", async () => {
    const f = await front(() => "corrupt");
    const { report, dir } = await run(f.host);
    await f.stop();
    expect(report.failed).toBeGreaterThan(0);
    expect(report.versions[0]!.error).toMatch(/does not verify/);
    expect(await readdir(dir).catch(() => [])).not.toContain("plugins");
  });

  test("a registry that trickles a blob is cut off in bounded time: nothing is published", { timeout: 30_000 }, async () => {
    const f = await front(() => "trickle");
    const { report, ms, dir } = await run(f.host, 1_000);
    await f.stop();
    expect(report.failed).toBeGreaterThan(0);
    expect(ms).toBeLessThan(15_000);
    expect(await readdir(dir).catch(() => [])).not.toContain("plugins");
  });
});

describe.skipIf(!tools)("uploader behind an egress proxy", () => {
  let registry: Registry;
  beforeAll(async () => {
    registry = await registryWithPlugin();
  });
  afterAll(() => registry?.stop());

  // Node 24.5 and later honour HTTP(S)_PROXY with NODE_USE_ENV_PROXY=1, which the image sets; CI runs the suite on Node 24.
  const [major, minor] = process.versions.node.split(".").map(Number) as [number, number];
  const supported = major > 24 || (major === 24 && minor >= 5) || (major === 22 && minor >= 21);
  test.skipIf(!supported && !process.env.CI)("HTTP_PROXY (NODE_USE_ENV_PROXY=1, as in the image) carries every registry request", async () => {
    // A forward proxy as egress proxies are: absolute-form requests, and CONNECT tunnels (what
    // Node's fetch uses, for http:// targets too).
    const seen: string[] = [];
    const { server, host } = await listenLoopback((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      const target = new URL(req.url ?? "/");
      const upstream = httpRequest(target, { method: req.method, headers: { ...req.headers, host: target.host } }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      upstream.on("error", () => res.destroy());
      req.pipe(upstream);
    });
    server.on("connect", (req: IncomingMessage, client: Duplex, head: Buffer) => {
      seen.push(`CONNECT ${req.url}`);
      const [hostname, port] = (req.url ?? "").split(":");
      const upstream = connect(Number(port), hostname, () => {
        client.write("HTTP/1.1 200 Connection Established\r\n\r\n");
        upstream.write(head);
        upstream.pipe(client);
        client.pipe(upstream);
      });
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
    });
    try {
      const out = await mkdtemp(path.join(tmpdir(), "proxied-"));
      const properties = path.join(out, "plugins.properties");
      await writeFile(properties, `x=oci://${registry.host}/plugins/x:1.0.0\n`);
      const result = await cli(["sync", "--config", properties, "--to", path.join(out, "store"), "--plain-http", registry.host], {
        HTTP_PROXY: `http://${host}`,
        NODE_USE_ENV_PROXY: "1",
      });
      expect(result.stderr).not.toContain("failed");
      expect(result.code).toBe(0);
      expect(seen.length).toBeGreaterThan(0);
      expect(seen.every((r) => r === `CONNECT ${registry.host}` || r.startsWith(`GET http://${registry.host}/`)), seen.join("\n")).toBe(true);
      const stored = await readBytes((await new FileStore(path.join(out, "store")).get("plugins/x/1.0.0/plugin.wasm"))!);
      expect(sha256(stored)).toBe(sha256(WASM));
    } finally {
      server.close();
    }
  });
});
