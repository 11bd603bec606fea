import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { expect, test } from "vitest";
import { cli } from "./support/cli.ts";
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
