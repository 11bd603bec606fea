import { mkdir, readdir, rename, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { loadCatalog } from "../src/plugins/catalog.ts";
import { fileKey, WASM } from "../src/core/layout.ts";
import { readBytes, type Store } from "../src/storage/store.ts";
import { sha256Hex } from "./digest.ts";
import { ArtifactError, UsageError } from "./errors.ts";

/**
 * `export --layout file`: the store as `DIR/<name>/<version>/plugin.wasm`, every version and
 * alias (an alias as its own copy: a file:// URL names a path, and a link could point out of a
 * copied tree), for the gateway's own `/opt/plugins` mount (Higress's `global.volumeWasmPlugins`).
 * Each module is checked against its sha256 as written; the tree appears under DIR only once
 * whole. Trade-offs (README): no pull policy (the gateway reads what the node has), and one copy per node.
 */
export async function exportFileLayout(store: Store, dir: string, onWrite: (line: string) => void = () => {}): Promise<{ name: string; version: string; sha256: string }[]> {
  const existing = await readdir(dir).catch(() => undefined);
  if (existing && existing.length > 0) throw new UsageError(`--out ${dir} is not empty: export --layout file writes a whole tree into an empty or new directory`);
  const partial = `${dir.replace(/\/+$/, "")}.partial-${process.pid}`;
  await rm(partial, { recursive: true, force: true });
  const written: { name: string; version: string; sha256: string }[] = [];
  try {
    for (const plugin of await loadCatalog(store)) {
      for (const v of plugin.versions) {
        const object = await store.get(fileKey(plugin.name, v.aliasOf ?? v.version, WASM));
        if (!object) throw new ArtifactError(`${plugin.name} ${v.version}: no plugin.wasm in the store${v.aliasOf ? ` (alias of ${v.aliasOf})` : ""}`);
        const bytes = await readBytes(object);
        const sha256 = sha256Hex(bytes);
        if (v.sha256 && sha256 !== v.sha256) throw new ArtifactError(`${plugin.name} ${v.version}: the store's plugin.wasm has sha256 ${sha256}, its metadata says ${v.sha256}`);
        const target = path.join(partial, plugin.name, v.version);
        await mkdir(target, { recursive: true });
        await writeFile(path.join(target, WASM), bytes, { mode: 0o644 });
        written.push({ name: plugin.name, version: v.version, sha256 });
        onWrite(`${plugin.name} ${v.version}${v.aliasOf ? ` (alias of ${v.aliasOf})` : ""}`);
      }
    }
    if (written.length === 0) throw new UsageError("the store holds no plugin version to export");
    if (existing) await rm(dir, { recursive: true });
    await rename(partial, dir);
    return written;
  } finally {
    await rm(partial, { recursive: true, force: true });
  }
}
