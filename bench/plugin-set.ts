import { createHash } from "node:crypto";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";
import type { WritableStore } from "../src/storage/store.ts";
import { leb128 } from "../test/support/wasm.ts";

/**
 * A plugin set shaped like the official one: 43 modules of 0.3 to 23 MB (median 5 MB, 270 MB in
 * all) whose bytes compress like real Go-built wasm: each is a valid module carrying slices of
 * esbuild's Go-compiled esbuild.wasm in a custom section, at an offset of its own.
 */
export const SIZES_MB = [
  0.3, 0.45, 0.7, 1.0, 1.3, 1.7, 2.1, 2.5, 2.9, 3.3, 3.6, 3.9, 4.1, 4.3, 4.5, 4.6, 4.7, 4.8, 4.9, 5.0, 5.0, 5.0, 5.1, 5.2, 5.4,
  5.6, 5.9, 6.2, 6.5, 6.8, 7.2, 7.6, 8.0, 8.5, 9.0, 9.6, 10.3, 11.2, 12.2, 13.4, 15.0, 17.5, 23.0,
];

export const goWasm = async () => readFile(createRequire(import.meta.url).resolve("esbuild-wasm/esbuild.wasm"));

/** A valid module of `mb` megabytes of Go-built wasm bytes, starting at an offset chosen by `seed`. */
export function goModule(go: Uint8Array, mb: number, seed: number): Uint8Array {
  const size = Math.round(mb * 1_000_000);
  const name = new TextEncoder().encode("go.code");
  const content = [...leb128(name.length), ...name];
  const header = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x00, ...leb128(content.length + size), ...content]);
  const wasm = new Uint8Array(header.length + size);
  wasm.set(header);
  let at = header.length;
  let offset = (seed * 7_919_993) % go.length;
  while (at < wasm.length) {
    const n = Math.min(wasm.length - at, go.length - offset);
    wasm.set(go.subarray(offset, offset + n), at);
    at += n;
    offset = 0;
  }
  return wasm;
}

export async function pluginSet(): Promise<{ name: string; wasm: Uint8Array }[]> {
  const go = await goWasm();
  return SIZES_MB.map((mb, i) => ({ name: `plugin-${String(i + 1).padStart(2, "0")}`, wasm: goModule(go, mb, i) }));
}

/**
 * The set on disk in `dir`: `tree/<name>/2.0.0/plugin.wasm` as import-dir reads it, and
 * `plugins.list`, one `<path> <sha256>` line per plugin, as the burst client reads it.
 */
export async function writePluginSet(plugins: readonly { name: string; wasm: Uint8Array }[], dir: string): Promise<{ tree: string; list: string }> {
  const tree = path.join(dir, "tree");
  for (const p of plugins) {
    await mkdir(path.join(tree, p.name, "2.0.0"), { recursive: true });
    await writeFile(path.join(tree, p.name, "2.0.0", "plugin.wasm"), p.wasm);
  }
  const list = path.join(dir, "plugins.list");
  await writeFile(list, plugins.map((p) => `/plugins/${p.name}/2.0.0/plugin.wasm ${createHash("sha256").update(p.wasm).digest("hex")}\n`).join(""));
  return { tree, list };
}

/** Removes every published version and the index: radosgw's memstore keeps every byte in memory, so leave it as found. */
export async function removePublished(store: WritableStore): Promise<void> {
  for (const name of (await store.list("plugins/")).prefixes) {
    for (const version of (await store.list(`plugins/${name}/`)).prefixes) {
      for (const object of (await store.list(`plugins/${name}/${version}/`)).objects) await store.delete(object.key);
    }
  }
  await store.delete("index.json");
}
