import { gunzip as gunzipCallback } from "node:zlib";
import { promisify } from "node:util";
import { InvalidStoreContentError } from "../src/core/aliases.ts";
import { listPlugins, listVersions } from "../src/plugins/read.ts";
import { fileKey, INDEX, METADATA_TEXT, WASM, WASM_GZIP } from "../src/core/layout.ts";
import { renderMetadataText, type PluginMetadata } from "../src/core/metadata.ts";
import { readBytes, readText, type Store } from "../src/storage/store.ts";
import { sha256Hex } from "./digest.ts";
import { storedMetadata } from "./publish.ts";

const gunzip = promisify(gunzipCallback);

export interface StoreEntry {
  readonly name: string;
  readonly version: string;
  /** Set for an alias: the version whose files it serves. */
  readonly aliasOf?: string;
  readonly metadata: PluginMetadata | undefined;
}

/** Every version and alias the store holds, with its metadata.json (undefined when it has none). */
export async function listStore(store: Store): Promise<{ entries: StoreEntry[]; problems: string[] }> {
  const entries: StoreEntry[] = [];
  const problems: string[] = [];
  for (const name of await listPlugins(store)) {
    let found;
    try {
      found = await listVersions(store, name);
    } catch (error) {
      if (!(error instanceof InvalidStoreContentError)) throw error;
      problems.push(error.message);
      continue;
    }
    if (!found) continue;
    for (const version of found.versions) entries.push({ name, version, metadata: await storedMetadata(store, name, version) });
    for (const [version, target] of Object.entries(found.aliases)) {
      if (!found.versions.includes(target)) problems.push(`${name} ${version}: alias of ${target}, which is not in the store`);
      entries.push({ name, version, aliasOf: target, metadata: entries.find((e) => e.name === name && e.version === target)?.metadata });
    }
  }
  return { entries, problems };
}

/**
 * Checks every published version the way a gateway would use it: the module is wasm and has
 * the sha256 of its metadata.json, the gzip variant unpacks to the same bytes, metadata.txt
 * says what metadata.json says, aliases resolve, and index.json lists what the store holds.
 */
export async function verifyStore(store: Store): Promise<{ versions: number; problems: string[] }> {
  const { entries, problems } = await listStore(store);
  const versions = entries.filter((e) => !e.aliasOf);
  for (const { name, version, metadata } of versions) {
    const at = `${name} ${version}`;
    if (!metadata) {
      problems.push(`${at}: no valid metadata.json (not published by the uploader, or interrupted)`);
      continue;
    }
    const object = await store.get(fileKey(name, version, WASM));
    if (!object) {
      problems.push(`${at}: plugin.wasm is missing`);
      continue;
    }
    const wasm = await readBytes(object);
    if (wasm[0] !== 0 || wasm[1] !== 0x61 || wasm[2] !== 0x73 || wasm[3] !== 0x6d) problems.push(`${at}: plugin.wasm does not start with the wasm magic`);
    if (wasm.length !== metadata.size || sha256Hex(wasm) !== metadata.sha256) problems.push(`${at}: plugin.wasm does not match the size and sha256 in metadata.json`);
    const gz = await store.get(fileKey(name, version, WASM_GZIP));
    if (!gz) problems.push(`${at}: plugin.wasm.gz is missing (gateways would get the identity module)`);
    else {
      const unpacked = await gunzip(await readBytes(gz)).catch(() => undefined);
      if (!unpacked || sha256Hex(unpacked) !== metadata.sha256) problems.push(`${at}: plugin.wasm.gz does not unpack to the module`);
    }
    const text = await store.get(fileKey(name, version, METADATA_TEXT));
    if (!text || (await readText(text)) !== renderMetadataText(metadata)) problems.push(`${at}: metadata.txt differs from metadata.json`);
  }
  const index = await store.get(INDEX);
  const listed = index ? (JSON.parse(await readText(index).catch(() => "{}")) as { plugins?: Record<string, { versions?: object; aliases?: object }> }).plugins : undefined;
  const indexed = new Set(Object.entries(listed ?? {}).flatMap(([n, p]) => [...Object.keys(p.versions ?? {}), ...Object.keys(p.aliases ?? {})].map((v) => `${n} ${v}`)));
  const held = new Set(entries.map((e) => `${e.name} ${e.version}`));
  if (indexed.size !== held.size || [...held].some((v) => !indexed.has(v))) {
    problems.push(`index.json is out of date (${index ? `${[...held].filter((v) => !indexed.has(v)).length} missing, ${[...indexed].filter((v) => !held.has(v)).length} extra` : "absent"}): run plugin-uploader index`);
  }
  return { versions: versions.length, problems };
}
