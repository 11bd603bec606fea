import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { createServer } from "node:http";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, test } from "vitest";
import { S3Store } from "../src/storage/s3.ts";
import { readBytes } from "../src/storage/store.ts";
import { cli } from "./support/cli.ts";
import { sha256 } from "./support/fixtures.ts";
import { forward, freePort, listenLoopback } from "./support/net.ts";
import { s3Env } from "./support/targets.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * The uploader against an S3 store that fails writes: radosgw behind an HTTP proxy that answers
 * 503 or resets the connection. Retried writes publish; a write that keeps failing leaves the
 * version unpublished and the run exits 1 naming it.
 */

const s3 = inject("s3");
let buckets = 0;

async function tree(versions: Record<string, Uint8Array>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "faults-tree-"));
  for (const [id, wasm] of Object.entries(versions)) {
    const [name, version] = id.split("@") as [string, string];
    await mkdir(path.join(dir, name, version), { recursive: true });
    await writeFile(path.join(dir, name, version, "plugin.wasm"), wasm);
  }
  return dir;
}

/** radosgw behind a proxy whose `fail` decides, per PUT, to answer 503, reset, or pass it on. */
async function faultyS3(fail: (key: string, attempt: number) => "503" | "reset" | undefined) {
  const attempts = new Map<string, number>();
  const { server, host } = await listenLoopback((req, res) => {
    const key = req.url ?? "";
    if (req.method === "PUT") {
      const attempt = (attempts.get(key) ?? 0) + 1;
      attempts.set(key, attempt);
      const fault = fail(key, attempt);
      if (fault === "reset") return void req.socket.destroy();
      if (fault === "503") {
        req.resume();
        req.on("end", () => res.writeHead(503, { "Content-Type": "application/xml" }).end("<Error><Code>SlowDown</Code></Error>"));
        return;
      }
    }
    forward(new URL(s3!.endpoint).host, req, res, undefined, true);
  });
  const bucket = `faults-${process.pid}-${++buckets}`;
  const direct = new S3Store({ bucket, prefix: "", endpoint: s3!.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey } });
  await direct.ensureBucket();
  return { env: { ...s3Env(s3!), S3_ENDPOINT: `http://${host}` }, store: `s3://${bucket}`, direct, close: () => server.close() };
}

describe.skipIf(!s3)("uploader under S3 write faults", () => {
  test("503s and connection resets on the first attempts are retried: everything is published and verifies", { timeout: 60_000 }, async () => {
    const wasm = { "a@1.0.0": wasmModule(20_000, 1), "b@2.0.0": wasmModule(30_000, 2) };
    const s = await faultyS3((_key, attempt) => (attempt === 1 ? "503" : attempt === 2 ? "reset" : undefined));
    const result = await cli(["import-dir", await tree(wasm), "--to", s.store], s.env);
    s.close();
    expect(result.code, result.stderr).toBe(0);
    for (const [id, bytes] of Object.entries(wasm)) {
      const [name, version] = id.split("@");
      const object = await s.direct.get(`plugins/${name}/${version}/plugin.wasm`);
      expect(sha256(await readBytes(object!))).toBe(sha256(bytes));
      expect(await s.direct.head(`plugins/${name}/${version}/metadata.json`)).not.toBeNull();
    }
    await s.direct.close();
  });

  test("a write that keeps failing leaves its version unpublished and the run exits 1 naming it", { timeout: 60_000 }, async () => {
    const s = await faultyS3((key) => (key.includes("/broken/") && key.includes("plugin.wasm.gz") ? "503" : undefined));
    const result = await cli(["import-dir", await tree({ "broken@1.0.0": wasmModule(10_000, 3), "fine@1.0.0": wasmModule(10_000, 4) }), "--to", s.store], s.env);
    s.close();
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/FAILED broken 1\.0\.0/);
    // Nothing of the failed version is left for a server to serve; the other one is complete.
    expect((await s.direct.list("plugins/broken/1.0.0/")).objects).toEqual([]);
    expect(await s.direct.head("plugins/fine/1.0.0/metadata.json")).not.toBeNull();
    await s.direct.close();
  });
});

describe.skipIf(!s3)("--wait-for-store: a store still being set up", () => {
  test("a sync started before its S3 endpoint listens and before its bucket exists waits for both, then publishes", { timeout: 60_000 }, async () => {
    // As in the chart: the Job may start before MinIO listens, and before its setup made the bucket.
    const port = await freePort();
    const bucket = `waited-${process.pid}-${++buckets}`;
    const direct = new S3Store({ bucket, prefix: "", endpoint: s3!.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: s3!.accessKeyId, secretAccessKey: s3!.secretAccessKey } });
    const run = cli(["import-dir", await tree({ "late@1.0.0": wasmModule(5_000, 5) }), "--to", `s3://${bucket}`, "--wait-for-store", "30"], { ...s3Env(s3!), S3_ENDPOINT: `http://127.0.0.1:${port}` });
    await sleep(1500);
    const proxy = createServer((req, res) => forward(new URL(s3!.endpoint).host, req, res, undefined, true));
    await new Promise<void>((resolve) => proxy.listen(port, "127.0.0.1", resolve));
    await sleep(2500);
    await direct.ensureBucket();
    const result = await run;
    proxy.close();
    expect(result.code, result.stderr).toBe(0);
    const waits = result.stderr.split("\n").filter((l) => l.startsWith("waiting for the store: "));
    expect(waits.length).toBeGreaterThanOrEqual(1);
    expect(waits.length).toBeLessThanOrEqual(2); // said once, then every 15 s: not once per attempt
    expect(result.stderr).toContain(`store ready: `);
    expect(await direct.head("plugins/late/1.0.0/metadata.json")).not.toBeNull();
    await direct.close();
  });

  test("when the time is up, the last failure is the error (exit 1), nothing is written", { timeout: 30_000 }, async () => {
    const bucket = `never-${process.pid}-${++buckets}`;
    const started = Date.now();
    const result = await cli(["import-dir", await tree({ "never@1.0.0": wasmModule(5_000, 6) }), "--to", `s3://${bucket}`, "--wait-for-store", "2"], s3Env(s3!));
    expect(result.code).toBe(1);
    expect(result.stderr).toContain(`the bucket ${bucket} does not exist`);
    expect(result.stderr).toContain("(waited 2 s for the store)");
    expect(Date.now() - started).toBeGreaterThanOrEqual(2000);
    expect((await cli(["sync", "--to", "/tmp/x", "--wait-for-store", "soon"])).stderr).toContain("--wait-for-store takes a whole number of seconds from 0 to 3600");
  });
});
