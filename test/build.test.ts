import { execFile, spawn } from "node:child_process";
import { mkdtemp, readFile, readdir } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { describe, expect, test } from "vitest";
import { buildExample, EXAMPLE_STORE, EXAMPLES } from "../scripts/examples.ts";
import { expectServesExamples } from "./support/http.ts";
import { freePort } from "./support/net.ts";
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
      await expectServesExamples(server.url);
    } finally {
      await server.stop();
    }
  });
});

describe("npm run dev", () => {
  test("starts the worker on workerd with the example plugins in its local R2, as npm start serves them", async () => {
    const port = await freePort();
    const script = (JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { scripts: { dev: string } }).scripts.dev;
    expect(script).toBe("node scripts/node24.mjs node scripts/dev.mjs");
    // The script as npm runs it (this suite runs on Node 24 already), in a process group of its own to stop it whole.
    const child = spawn(process.execPath, ["scripts/dev.mjs", "--port", String(port), "--ip", "127.0.0.1"], {
      cwd: ROOT,
      env: { ...process.env, WRANGLER_SEND_METRICS: "false", CI: "true" },
      stdio: ["ignore", "pipe", "pipe"],
      detached: true,
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    try {
      const base = `http://127.0.0.1:${port}`;
      for (let i = 0; ; i++) {
        const up = await fetch(`${base}/healthz`).then((r) => r.ok, () => false);
        if (up) break;
        if (i > 240 || child.exitCode !== null) throw new Error(`npm run dev did not start:\n${output}`);
        await sleep(250);
      }
      expect(output).toContain("local R2 bucket higress-plugins: 5 example files (examples/store)");
      await expectServesExamples(base);
      const metadata = await fetch(`${base}/plugins/hello-world/1.0.0/metadata.txt`);
      expect(await metadata.text()).toContain("Plugin Name: hello-world\n");
    } finally {
      process.kill(-child.pid!, "SIGTERM");
      await new Promise((resolve) => (child.exitCode !== null ? resolve(undefined) : child.once("exit", resolve)));
    }
  }, 120_000);
});

describe("the worker bundle", () => {
  test("its Env is what `wrangler types` generates from wrangler.toml and .dev.vars.example (npm run types)", async () => {
    // Generated afresh and compared (wrangler's own --check ignores --env-file, so it cannot see the secrets).
    const types = (JSON.parse(await readFile(path.join(ROOT, "package.json"), "utf8")) as { scripts: { types: string } }).scripts.types;
    const [command, ...flags] = types.split(" wrangler ")[1]!.split(" ");
    const out = path.join(await mkdtemp(path.join(tmpdir(), "types-")), "worker-configuration.d.ts");
    // The path goes first: --env-file takes every argument after it.
    await run(path.join(ROOT, "node_modules/.bin/wrangler"), [command!, out, ...flags], { cwd: ROOT, env: { ...process.env, WRANGLER_SEND_METRICS: "false" } });
    // The header's hash and the module path depend on where the file is written; the Env block does not.
    const body = (text: string) => text.replace(/^\/\/ Generated by Wrangler .*$|^\s*mainModule: .*$/gm, "");
    const committed = await readFile(path.join(ROOT, "worker-configuration.d.ts"), "utf8");
    expect(body(committed), "worker-configuration.d.ts is stale: run npm run types").toBe(body(await readFile(out, "utf8")));
    for (const name of ["PLUGINS: R2Bucket", "STORE_PREFIX: string", "AUTH_BASIC: string", "AUTH_TOKENS: string", "CATALOG: string", "ALLOW_CIDRS: string"]) expect(committed).toContain(name);
  });

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
