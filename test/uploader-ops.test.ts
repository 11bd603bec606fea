import { spawn } from "node:child_process";
import { mkdir, mkdtemp, readdir, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gunzipSync, gzipSync } from "node:zlib";
import { expect, test } from "vitest";
import { cli } from "./support/cli.ts";
import { startPurgeApi } from "./support/cloudflare-api.ts";
import { request } from "./support/http.ts";
import { beforePuts, sha256 } from "./support/fixtures.ts";
import { ROOT, startNode } from "./support/targets.ts";
import { renderMetadataText, type PluginMetadata } from "../src/core/metadata.ts";
import { FileStore } from "../src/storage/fs.ts";
import { readBytes } from "../src/storage/store.ts";
import { publishVersion } from "../uploader/publish.ts";
import { wasmModule } from "./support/wasm.ts";

/** The operator commands against a real store directory: verify finds what is wrong, index repairs the index, list shows it all. */

test("verify, index and list: a clean store verifies; damage, hand edits and broken aliases are each named", { timeout: 60_000 }, async () => {
  const tree = await mkdtemp(path.join(tmpdir(), "ops-tree-"));
  for (const [name, version, seed] of [["p", "1.0.0", 1], ["p", "2.0.0", 2], ["q", "1.0.0", 3]] as const) {
    await mkdir(path.join(tree, name, version), { recursive: true });
    await writeFile(path.join(tree, name, version, "plugin.wasm"), wasmModule(5_000, seed));
  }
  const store = await mkdtemp(path.join(tmpdir(), "ops-store-"));
  expect((await cli(["import-dir", tree, "--to", store])).code).toBe(0);
  await writeFile(path.join(store, "plugins/p/aliases.json"), JSON.stringify({ aliases: { stable: "2.0.0" } }));
  expect((await cli(["index", "--to", store])).stdout).toContain("index.json written: 2 plugins");
  const clean = await cli(["verify", "--to", store]);
  expect(clean.stdout).toBe("3 versions checked, 0 problems\n");
  expect(clean.code).toBe(0);

  const listed = JSON.parse((await cli(["list", "--to", store, "--json"])).stdout) as { versions: { name: string; version: string; aliasOf?: string; sha256?: string }[] };
  expect(listed.versions.map((v) => `${v.name} ${v.version}${v.aliasOf ? `->${v.aliasOf}` : ""}`)).toEqual(["p 1.0.0", "p 2.0.0", "p stable->2.0.0", "q 1.0.0"]);
  expect(listed.versions.find((v) => v.aliasOf)?.sha256).toBe(listed.versions[1]!.sha256);

  await writeFile(path.join(store, "plugins/p/1.0.0/plugin.wasm.gz"), gzipSync(wasmModule(5_000, 9)));
  await writeFile(path.join(store, "plugins/q/1.0.0/metadata.txt"), "Plugin Name: q\n");
  await mkdir(path.join(store, "plugins/r/1.0.0"), { recursive: true });
  await writeFile(path.join(store, "plugins/r/1.0.0/plugin.wasm"), wasmModule(100, 4));
  await writeFile(path.join(store, "plugins/q/aliases.json"), JSON.stringify({ aliases: { old: "0.9.0" } }));
  const damaged = await cli(["verify", "--to", store]);
  expect(damaged.code).toBe(1);
  expect(damaged.stdout).toContain("PROBLEM p 1.0.0: plugin.wasm.gz does not unpack to the module");
  expect(damaged.stdout).toContain("PROBLEM q 1.0.0: metadata.txt differs from metadata.json");
  expect(damaged.stdout).toContain("PROBLEM q old: alias of 0.9.0, which is not in the store");
  expect(damaged.stdout).toContain("PROBLEM r 1.0.0: no valid metadata.json");
  expect(damaged.stdout).toMatch(/PROBLEM index\.json is out of date .*run plugin-uploader index/);
  await cli(["index", "--to", store]);
  expect((await cli(["verify", "--to", store])).stdout).not.toContain("index.json is out of date");
});

/** A tree of plugins large enough that a run takes a moment (so it can be interrupted half-way). */
async function pluginTree(count: number, size: number) {
  const tree = await mkdtemp(path.join(tmpdir(), "ops-tree-"));
  const modules = new Map<string, Uint8Array>();
  for (let i = 0; i < count; i++) {
    const wasm = wasmModule(size, 40 + i);
    modules.set(`plugins/p${i}/1.0.0/plugin.wasm`, wasm);
    await mkdir(path.join(tree, `p${i}`, "1.0.0"), { recursive: true });
    await writeFile(path.join(tree, `p${i}`, "1.0.0", "plugin.wasm"), wasm);
  }
  return { tree, modules };
}

/** What must hold at any moment: every module in the store is a source module, every gzip variant and metadata.json belongs to its module. */
async function consistent(store: string, modules: Map<string, Uint8Array>): Promise<string[]> {
  const problems: string[] = [];
  const sums = new Set([...modules.values()].map(sha256));
  const plugins = await readdir(path.join(store, "plugins")).catch(() => [] as string[]);
  for (const name of plugins) {
    const dir = path.join(store, "plugins", name, "1.0.0");
    const files = await readdir(dir).catch(() => [] as string[]);
    const wasm = files.includes("plugin.wasm") ? await readFile(path.join(dir, "plugin.wasm")) : undefined;
    if (wasm && !sums.has(sha256(wasm))) problems.push(`${name}: plugin.wasm is not a source module`);
    if (files.includes("plugin.wasm.gz") && (!wasm || sha256(gunzipSync(await readFile(path.join(dir, "plugin.wasm.gz")))) !== sha256(wasm))) problems.push(`${name}: gzip variant without its module`);
    if (files.includes("metadata.json") && (!wasm || (JSON.parse(await readFile(path.join(dir, "metadata.json"), "utf8")) as { sha256: string }).sha256 !== sha256(wasm))) problems.push(`${name}: metadata.json without its module`);
  }
  return problems;
}

test("two uploaders publishing into one store at once (review N5): one writes at a time; the other waits, or exits 3 naming the holder", { timeout: 60_000 }, async () => {
  const { tree } = await pluginTree(6, 300_000);
  const store = await mkdtemp(path.join(tmpdir(), "ops-store-"));
  const [a, b] = await Promise.all([cli(["import-dir", tree, "--to", store, "--wait-for-lease", "30"]), cli(["import-dir", tree, "--to", store, "--wait-for-lease", "30"])]);
  expect([a.code, b.code], `${a.stderr}\n${b.stderr}`).toEqual([0, 0]);
  // The second went after the first: it found everything published.
  expect([a.stderr, b.stderr].filter((e) => e.includes("waiting for the store's lease: held by import-dir on"))).toHaveLength(1);
  expect([a.stderr, b.stderr].filter((e) => (e.match(/^unchanged /gm) ?? []).length === 6)).toHaveLength(1);
  expect((await cli(["verify", "--to", store])).stdout).toBe("6 versions checked, 0 problems\n");

  const [c, d] = await Promise.all([cli(["import-dir", tree, "--to", store, "--force"]), cli(["import-dir", tree, "--to", store, "--force"])]);
  expect([c.code, d.code].sort()).toEqual([0, 3]);
  expect([c, d].find((r) => r.code === 3)!.stderr).toMatch(/the store is being written by another plugin-uploader \(import-dir on \S+, pid \d+, since .*\); wait for it \(--wait-for-lease <seconds>\) or, if it died, its lease uploader\.lease\.json lapses at /);
  expect(await readdir(store)).toEqual(["index.json", "plugins"]); // the lease is gone with its run
});

// The interleaving that left metadata.txt behind metadata.json, played on purpose: A writes its
// metadata.txt, B publishes the same module whole (its metadata.txt lands after A's), then A's
// metadata.json lands last. metadata.txt must still render the metadata.json that stands.
test("two publishers of one module, interleaved so the first one's metadata.json lands last: metadata.txt matches it", async () => {
  const real = new FileStore(await mkdtemp(path.join(tmpdir(), "ops-interleaved-")));
  const first = new Date("2026-01-01T00:00:00.000Z");
  let secondDone!: () => void;
  const secondFinished = new Promise<void>((resolve) => (secondDone = resolve));
  const gated = beforePuts(real, async (key, data) => {
    if (key.endsWith("metadata.json") && new TextDecoder().decode(data).includes(first.toISOString())) await secondFinished;
  });
  const plugin = { name: "p", version: "1.0.0", wasm: wasmModule(4_000, 9), extras: new Map(), source: "test" };
  const a = publishVersion(gated, plugin, { now: first });
  await new Promise((resolve) => setTimeout(resolve, 200)); // A is waiting on its metadata.json
  await publishVersion(real, plugin, { now: new Date("2026-01-02T00:00:00.000Z") });
  secondDone();
  await a;
  const json = JSON.parse(new TextDecoder().decode(await readBytes((await real.get("plugins/p/1.0.0/metadata.json"))!))) as PluginMetadata;
  expect(json.lastModified).toBe(first.toISOString());
  expect(new TextDecoder().decode(await readBytes((await real.get("plugins/p/1.0.0/metadata.txt"))!))).toBe(renderMetadataText(json));
});

test("kill -9 at 20 moments of a run, each followed by another run: always consistent, and the end equals an uninterrupted run", { timeout: 120_000 }, async () => {
  const { tree, modules } = await pluginTree(8, 1_500_000);
  const store = await mkdtemp(path.join(tmpdir(), "ops-killed-"));
  const entry = path.join(ROOT, "dist/uploader.js");
  let seed = 7;
  for (let i = 0; i < 20; i++) {
    const child = spawn(process.execPath, [entry, "import-dir", tree, "--to", store], { stdio: "ignore" });
    const exited = new Promise((resolve) => child.once("exit", resolve));
    seed = (seed * 48271) % 2147483647;
    await new Promise((resolve) => setTimeout(resolve, 150 + (seed % 900)));
    child.kill("SIGKILL");
    await exited;
    expect(await consistent(store, modules), `after kill ${i + 1}`).toEqual([]);
  }
  expect((await cli(["import-dir", tree, "--to", store])).code).toBe(0);
  expect((await cli(["verify", "--to", store])).stdout).toBe("8 versions checked, 0 problems\n");
  const clean = await mkdtemp(path.join(tmpdir(), "ops-clean-"));
  expect((await cli(["import-dir", tree, "--to", clean])).code).toBe(0);
  for (const key of modules.keys()) {
    for (const file of [key, key.replace(/plugin\.wasm$/, "plugin.wasm.gz")]) {
      const [x, y] = await Promise.all([readFile(path.join(store, file)), readFile(path.join(clean, file))]);
      expect(sha256(file.endsWith(".gz") ? gunzipSync(x) : x), file).toBe(sha256(file.endsWith(".gz") ? gunzipSync(y) : y));
    }
  }
});

test("a published version never changes silently: other bytes under it are a conflict (exit 1, nothing written) until --replace", async () => {
  const tree = await mkdtemp(path.join(tmpdir(), "ops-conflict-"));
  const store = await mkdtemp(path.join(tmpdir(), "ops-conflict-store-"));
  const dir = path.join(tree, "p", "1.0.0");
  await mkdir(dir, { recursive: true });
  const [first, second] = [wasmModule(2_000, 31), wasmModule(2_000, 32)];
  await writeFile(path.join(dir, "plugin.wasm"), first);
  expect((await cli(["import-dir", tree, "--to", store])).code).toBe(0);
  await writeFile(path.join(dir, "plugin.wasm"), second);
  const conflict = await cli(["import-dir", tree, "--to", store]);
  expect(conflict.code).toBe(1);
  expect(conflict.stdout).toContain("1 versions: 0 published, 0 unchanged, 0 would-publish, 0 failed, 1 conflict;");
  expect(conflict.stdout).toContain(`\nCONFLICT p 1.0.0: published ${sha256(first)}, source ${sha256(second)} (not written; --replace overwrites)\n`);
  expect(sha256(await readFile(path.join(store, "plugins/p/1.0.0/plugin.wasm")))).toBe(sha256(first));
  const json = JSON.parse((await cli(["import-dir", tree, "--to", store, "--json"])).stdout);
  expect(json.versions[0]).toMatchObject({ status: "conflict", previousSha256: sha256(first), sha256: sha256(second) });
  const replaced = await cli(["import-dir", tree, "--to", store, "--replace"]);
  expect(replaced.code, replaced.stdout).toBe(0);
  expect(replaced.stdout).toContain(`REPLACED p 1.0.0: ${sha256(first)} -> ${sha256(second)}`);
  expect(sha256(await readFile(path.join(store, "plugins/p/1.0.0/plugin.wasm")))).toBe(sha256(second));
  expect((await cli(["verify", "--to", store])).stdout).toBe("1 versions checked, 0 problems\n");
});

test("mistyped stores: a near-URL is refused, read-only commands create nothing, verify of an empty store fails", async () => {
  const cwd = await mkdtemp(path.join(tmpdir(), "ops-typos-"));
  const tree = await mkdtemp(path.join(tmpdir(), "ops-typos-tree-"));
  await mkdir(path.join(tree, "p", "1.0.0"), { recursive: true });
  await writeFile(path.join(tree, "p", "1.0.0", "plugin.wasm"), wasmModule(900, 41));
  const inCwd = (args: string[]) =>
    new Promise<{ code: number; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [path.join(ROOT, "dist/uploader.js"), ...args], { cwd, env: { PATH: process.env.PATH ?? "" } });
      let stderr = "";
      child.stderr.on("data", (d) => (stderr += d));
      child.on("exit", (code) => resolve({ code: code ?? -1, stderr }));
    });
  for (const to of ["s3:/plugins", "s3:plugins", "S3://plugins"]) {
    const result = await inCwd(["import-dir", tree, "--to", to]);
    expect(result.code, to).toBe(2);
    expect(result.stderr, to).toMatch(/plugin-uploader: --to .*(looks like a URL but is not one of the forms|in lower case)/);
  }
  const missing = path.join(cwd, "no-such-store");
  for (const command of [["verify"], ["list"], ["index"], ["check"]]) {
    const result = await inCwd([...command, "--to", missing]);
    expect([result.code, result.stderr], command[0]).toEqual([2, `plugin-uploader: --to ${missing}: directory ${missing} does not exist (this command does not create a store)\n`]);
  }
  expect(await readdir(cwd)).toEqual([]); // nothing named s3:, nothing mistyped
  const empty = await cli(["verify", "--to", cwd]);
  expect([empty.code, empty.stdout]).toEqual([1, "0 versions checked, 1 problems\nPROBLEM the store holds no plugin version: nothing to verify (is --to the right store?)\n"]);
});

test("typos on the command line: did you mean, a short hint, never the whole usage; help <command>; a mistyped config key", async () => {
  const flag = await cli(["sync", "--forse"]);
  expect([flag.code, flag.stderr]).toEqual([2, "plugin-uploader: unknown option --forse (did you mean --force?); plugin-uploader sync --help lists the options\n"]);
  const command = await cli(["verfy", "--to", "x"]);
  expect([command.code, command.stderr]).toEqual([2, 'plugin-uploader: unknown command "verfy" (did you mean verify?); plugin-uploader help lists the commands\n']);
  const help = await cli(["help", "verify"]);
  expect([help.code, help.stdout.split("\n")[0]]).toEqual([0, "Usage: plugin-uploader verify [--to <store>] [--json]"]);
  expect((await cli(["help", "sink"])).stderr).toBe('plugin-uploader: unknown command "sink" (did you mean sync?); plugin-uploader help lists the commands\n');
  const dir = await mkdtemp(path.join(tmpdir(), "ops-config-"));
  await writeFile(path.join(dir, "plugins.yaml"), "plugins:\n  key-auth:\n    version:\n      2.0.0: oci://h.example/plugins/key-auth:2.0.0\n");
  const config = await cli(["sync", "--config", path.join(dir, "plugins.yaml"), "--to", path.join(dir, "store")]);
  expect([config.code, config.stderr]).toEqual([2, `plugin-uploader: ${path.join(dir, "plugins.yaml")}: plugins.key-auth: unknown key "version" (did you mean "versions"?)\n`]);
  await writeFile(path.join(dir, "plugins.properties"), "key-auth oci://h.example/plugins/key-auth:2.0.0\n");
  expect((await cli(["sync", "--config", path.join(dir, "plugins.properties"), "--to", path.join(dir, "store")])).stderr).toContain('plugins.properties:1: expected <name>=oci://<registry>/<repository>:<tag> (this line has no "=")');
  expect(await readdir(dir)).toEqual(["plugins.properties", "plugins.yaml"]); // nothing written for a refused config
});

test("--purge-cloudflare: a replaced version and a moved alias are purged by the Cache-Tags the server sends; a purge failure fails the run", { timeout: 60_000 }, async () => {
  const zone = "0123456789abcdef0123456789abcdef";
  const api = await startPurgeApi(zone, "cf-token");
  const env = { CLOUDFLARE_ZONE_ID: zone, CLOUDFLARE_API_TOKEN: "cf-token", CLOUDFLARE_API_URL: api.url };
  try {
    const tree = await mkdtemp(path.join(tmpdir(), "ops-purge-"));
    const store = await mkdtemp(path.join(tmpdir(), "ops-purge-store-"));
    for (const [version, seed] of [["1.0.0", 51], ["2.0.0", 52]] as const) {
      await mkdir(path.join(tree, "p", version), { recursive: true });
      await writeFile(path.join(tree, "p", version, "plugin.wasm"), wasmModule(2_000, seed));
    }
    // First publication: nothing an edge could hold, nothing purged.
    const first = await cli(["import-dir", tree, "--to", store, "--purge-cloudflare", "--json"], env);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).purged).toEqual([]);
    expect(api.purged).toEqual([]);

    await writeFile(path.join(tree, "p", "1.0.0", "plugin.wasm"), wasmModule(2_000, 53));
    api.rateLimit(1); // the Free plan's 5 a minute: waited out, not failed
    const replaced = await cli(["import-dir", tree, "--to", store, "--replace", "--purge-cloudflare", "--json"], env);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect(replaced.stderr).toContain("Cloudflare purge rate-limited: again in 1 s");
    expect(JSON.parse(replaced.stdout).purged).toEqual(["plugin:p@1.0.0"]);
    expect(api.purged).toEqual([["plugin:p@1.0.0"]]);

    // The server tags what it sends with exactly those names; an alias with its target's too.
    await writeFile(path.join(store, "plugins/p/aliases.json"), JSON.stringify({ aliases: { stable: "1.0.0" } }));
    const server = await startNode("purge", { STORE: store });
    try {
      expect((await request(`${server.url}/plugins/p/1.0.0/plugin.wasm`)).headers["cache-tag"]).toBe("plugin:p,plugin:p@1.0.0");
      expect((await request(`${server.url}/plugins/p/1.0.0/metadata.txt`)).headers["cache-tag"]).toBe("plugin:p,plugin:p@1.0.0");
      expect((await request(`${server.url}/plugins/p/stable/plugin.wasm`)).headers["cache-tag"]).toBe("plugin:p,plugin:p@stable,plugin:p@1.0.0");
    } finally {
      await server.stop();
    }
    const { publishAliases } = await import("../uploader/publish.ts");
    expect(await publishAliases(new FileStore(store), "p", { stable: "2.0.0" })).toEqual(["stable"]);
    expect(await publishAliases(new FileStore(store), "p", { stable: "2.0.0", next: "2.0.0" })).toEqual([]);

    // A token without the permission: the run fails (exit 1) and says what the edges keep.
    await writeFile(path.join(tree, "p", "1.0.0", "plugin.wasm"), wasmModule(2_000, 54));
    const denied = await cli(["import-dir", tree, "--to", store, "--replace", "--purge-cloudflare"], { ...env, CLOUDFLARE_API_TOKEN: "wrong" });
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain("Cloudflare purge failed (10000 Authentication error); the edges keep the old copies of plugin:p@1.0.0 until they expire");
    // Missing settings are refused before anything is written.
    await writeFile(path.join(tree, "p", "1.0.0", "plugin.wasm"), wasmModule(2_000, 55));
    const unset = await cli(["import-dir", tree, "--to", store, "--replace", "--purge-cloudflare"], { CLOUDFLARE_ZONE_ID: zone });
    expect(unset.code).toBe(2);
    expect(unset.stderr).toContain("--purge-cloudflare needs CLOUDFLARE_API_TOKEN");
    expect(sha256(await readFile(path.join(store, "plugins/p/1.0.0/plugin.wasm")))).toBe(sha256(wasmModule(2_000, 54)));
    // --replace without a purge says what edges may still serve.
    const unpurged = await cli(["import-dir", tree, "--to", store, "--replace"]);
    expect(unpurged.stderr).toContain("edge caches may still serve the old bytes of p 1.0.0");
  } finally {
    await api.close();
  }
});
