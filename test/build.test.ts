import { execFile } from "node:child_process";
import { mkdtemp, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { buildExample, EXAMPLE_STORE, EXAMPLES } from "../scripts/examples.ts";
import { request } from "./support/http.ts";
import { ROOT, startNode } from "./support/targets.ts";

const run = promisify(execFile);

describe("the embedded example store", () => {
  test.each(EXAMPLES)("%s %s is what its source builds to, and a valid module", async (name, version) => {
    const built = await buildExample(name, version);
    const dir = new URL(`plugins/${name}/${version}/`, EXAMPLE_STORE);
    expect((await readdir(dir)).sort()).toEqual([...built.files.keys()].sort());
    for (const [file, bytes] of built.files) {
      const stored = await readFile(new URL(file, dir));
      expect(Buffer.compare(stored, Buffer.from(bytes)), `${file} is stale: run npm run build:examples`).toBe(0);
    }
    const wasm = built.files.get("plugin.wasm")!;
    expect(WebAssembly.validate(wasm)).toBe(true);
    const exports = WebAssembly.Module.exports(new WebAssembly.Module(wasm)).map((e) => e.name);
    expect(exports).toEqual(expect.arrayContaining(["proxy_abi_version_0_2_1", "proxy_on_response_headers", "memory"]));
    expect(Buffer.compare(gunzipSync(built.files.get("plugin.wasm.gz")!), Buffer.from(wasm))).toBe(0);
  });
});

describe("the quick start on the machine's own Node", () => {
  // .ci/run runs the suite on Node 24 and names the machine's Node here: what a fresh machine has.
  const node = process.env.SYSTEM_NODE ?? process.execPath;
  test("npm start's command serves the embedded examples, on a Node that package.json's engines accept", async () => {
    const { stdout: version } = await run(node, ["--version"]);
    const engines = (JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { engines: { node: string } }).engines.node;
    const [major, minor] = version.trim().slice(1).split(".").map(Number) as [number, number];
    expect(engines).toBe("^20.19.0 || ^24.0.0");
    expect((major === 20 && minor >= 19) || major === 24, `${version.trim()} against ${engines}`).toBe(true);
    const server = await startNode("quick start", {}, undefined, node);
    try {
      expect(server.output()).toContain(`Node ${version.trim().slice(1)}`);
      expect((await request(`${server.url}/healthz`)).status).toBe(200);
      const plugin = await request(`${server.url}/plugins/hello-world/1.0.0/plugin.wasm`);
      expect(plugin.status).toBe(200);
      expect(plugin.body.subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
    } finally {
      await server.stop();
    }
  });
});

describe("the worker bundle", () => {
  test("contains neither the AWS SDK nor Node built-ins", async () => {
    const bundle = await readFile(path.join(ROOT, "dist/worker.js"), "utf8");
    expect(bundle).not.toMatch(/@aws-sdk|S3Client|from\s*["']node:/);
    expect(bundle).toContain("PLUGINS");
  });

  test("wrangler builds it from wrangler.toml without the AWS SDK", async () => {
    const out = await mkdtemp(path.join(tmpdir(), "wrangler-out-"));
    await run(path.join(ROOT, "node_modules/.bin/wrangler"), ["deploy", "--dry-run", "--outdir", out], {
      cwd: ROOT,
      env: {
        ...process.env,
        WRANGLER_SEND_METRICS: "false",
        WRANGLER_SEND_ERROR_REPORTS: "false",
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
        WRANGLER_LOG_PATH: out,
      },
    });
    const bundle = await readFile(path.join(out, "worker.js"), "utf8");
    expect(bundle).toContain("clientAcceptEncoding");
    expect(bundle).not.toMatch(/@aws-sdk|S3Client/);
  }, 60_000);
});

describe("the AWS SDK", () => {
  test("is imported by src/storage/s3.ts alone", async () => {
    const { stdout } = await run("grep", ["-rlE", "from \"@aws-sdk/", "src", "uploader"], { cwd: ROOT }).catch(
      (e: { stdout: string }) => ({ stdout: e.stdout }),
    );
    expect(stdout.trim().split("\n")).toEqual(["src/storage/s3.ts"]);
  });
});
