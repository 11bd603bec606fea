import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";
import { parseAliases } from "../src/core/aliases.ts";
import { contentTypeFor } from "../src/core/content-type.ts";
import { aliasesKey, fileKey, METADATA_JSON, METADATA_TEXT, WASM, WASM_GZIP } from "../src/core/layout.ts";
import { parseMetadataJson, renderMetadataText, type PluginMetadata } from "../src/core/metadata.ts";
import { readBytes, readText, type Store, type WritableStore } from "../src/storage/store.ts";
import { ArtifactError, UploaderError } from "./errors.ts";
import { EXTRAS_DESCRIPTION, isExtra } from "./extras.ts";
import { md5Hex, sha256Hex } from "./digest.ts";
import { validateWasm } from "./wasm.ts";

export interface PluginVersion {
  readonly name: string;
  readonly version: string;
  readonly wasm: Uint8Array;
  readonly extras: ReadonlyMap<string, Uint8Array>;
  readonly source: string;
  readonly manifestDigest?: string;
}

export type PublishStatus = "published" | "unchanged";

export interface PublishResult {
  readonly status: PublishStatus;
  readonly sha256: string;
  readonly metadata: PluginMetadata;
}

const text = (s: string) => new TextEncoder().encode(s);
// Level 6 compresses plugin modules as well as 9 (0.256 against 0.254) at 2.5 times the speed, and the
// asynchronous API runs in libuv's pool, so several plugins compress at once.
const gzip = (data: Uint8Array) => promisify(gzipCallback)(data, { level: 6 });

/** The metadata.json a store holds for a version, if it is one we wrote and can trust. */
export async function storedMetadata(store: Store, name: string, version: string): Promise<PluginMetadata | undefined> {
  const object = await store.get(fileKey(name, version, METADATA_JSON));
  return object ? parseMetadataJson(await readText(object)) : undefined;
}

/**
 * Publishes one version. Writes go in an order readers can live with: plugin.wasm first,
 * then its gzip variant and the extra files, metadata.json last as the commit marker (a rerun
 * redoes any version without it). Each object is read back and checked. A new version that
 * fails half-way is removed again, so it is either all there or not there.
 */
export async function publishVersion(
  store: WritableStore,
  plugin: PluginVersion,
  options: { force?: boolean; now?: Date } = {},
): Promise<PublishResult> {
  validateWasm(plugin.wasm, `${plugin.name} ${plugin.version}`);
  for (const file of plugin.extras.keys()) {
    if (!isExtra(file)) throw new ArtifactError(`${plugin.name} ${plugin.version}: ${file} is not published beside a module (only ${EXTRAS_DESCRIPTION})`);
  }
  const sha256 = sha256Hex(plugin.wasm);
  const existing = await storedMetadata(store, plugin.name, plugin.version);
  if (existing && existing.sha256 === sha256 && !options.force && (await intact(store, existing))) {
    return { status: "unchanged", sha256, metadata: existing };
  }

  const now = (options.now ?? new Date()).toISOString();
  const gzipped = await gzip(plugin.wasm);
  const metadata: PluginMetadata = {
    name: plugin.name,
    version: plugin.version,
    size: plugin.wasm.length,
    md5: md5Hex(plugin.wasm),
    sha256,
    created: existing?.created ?? now,
    lastModified: now,
    source: plugin.source,
    ...(plugin.manifestDigest ? { manifestDigest: plugin.manifestDigest } : {}),
    gzipSize: gzipped.length,
    gzipMd5: md5Hex(gzipped),
  };
  const key = (file: string) => fileKey(plugin.name, plugin.version, file);
  /** What this run wrote, with the ETag the store gave it: a rollback removes only objects still ours. */
  const written = new Map<string, string>();
  // Another uploader may publish the same version at the same moment: its metadata differs from
  // ours only in its timestamps, and names the same module; that is a success, not a damaged write.
  const sameModule = (back: Uint8Array) => new TextDecoder().decode(back).includes(sha256);
  const put = async (file: string, data: Uint8Array) => {
    const metadataFile = file === METADATA_TEXT || file === METADATA_JSON;
    written.set(key(file), await putVerified(store, key(file), data, metadataFile ? sameModule : undefined));
  };
  try {
    // A stale gzip variant must not outlive the module it was made from.
    if (existing) await store.delete(key(WASM_GZIP));
    await put(WASM, plugin.wasm);
    await put(WASM_GZIP, gzipped);
    for (const [file, data] of plugin.extras) await put(file, data);
    await put(METADATA_TEXT, text(renderMetadataText(metadata)));
    await put(METADATA_JSON, text(`${JSON.stringify(metadata, null, 2)}\n`));
    // A concurrent publisher of the same module may have written its metadata.json after ours:
    // metadata.txt follows whichever one stands, so the two never disagree once both are done.
    const standing = await storedMetadata(store, plugin.name, plugin.version);
    if (standing && standing.sha256 === sha256 && standing.lastModified !== metadata.lastModified) {
      await putVerified(store, key(METADATA_TEXT), text(renderMetadataText(standing)), sameModule);
    }
  } catch (error) {
    if (!existing) await rollBack(store, written);
    throw error;
  }
  return { status: "published", sha256, metadata };
}

/**
 * Removes what a failed publish wrote, unless another writer has replaced it since (another
 * uploader publishing the same version): never delete what this run cannot prove it wrote.
 */
async function rollBack(store: WritableStore, written: ReadonlyMap<string, string>): Promise<void> {
  await Promise.all(
    [...written].map(async ([key, etag]) => {
      const now = await store.head(key).catch(() => null);
      if (now?.etag === etag) await store.delete(key).catch(() => {});
    }),
  );
}

/** The module and its gzip variant are there as metadata.json describes them (size, and MD5 where the store's ETag is one). */
export async function intact(store: WritableStore, m: PluginMetadata): Promise<boolean> {
  const [wasm, gz] = await Promise.all([store.head(fileKey(m.name, m.version, WASM)), store.head(fileKey(m.name, m.version, WASM_GZIP))]);
  if (wasm?.size !== m.size || m.gzipSize === undefined || gz?.size !== m.gzipSize) return false;
  const md5 = (etag: string) => /^"([0-9a-f]{32})"$/.exec(etag)?.[1];
  const wasmMd5 = md5(wasm.etag);
  const gzMd5 = md5(gz.etag);
  return (wasmMd5 === undefined || wasmMd5 === m.md5) && (gzMd5 === undefined || gzMd5 === m.gzipMd5);
}

/**
 * Writes an object and reads it back: the size must match, and the bytes (or S3's MD5 ETag), or,
 * where `equivalent` says so, bytes a concurrent writer put there that mean the same. Returns the ETag.
 */
export async function putVerified(store: WritableStore, key: string, data: Uint8Array, equivalent?: (back: Uint8Array) => boolean): Promise<string> {
  const written = await store.put(key, data, { contentType: contentTypeFor(key) });
  const info = await store.head(key);
  if (!info || (info.size !== data.length && !equivalent)) {
    throw new UploaderError(`${key} did not verify after upload: expected ${data.length} bytes, store has ${info?.size ?? "nothing"}`);
  }
  const md5 = /^"([0-9a-f]{32})"$/.exec(written.etag)?.[1];
  if (md5) {
    if (md5 !== md5Hex(data)) throw new UploaderError(`${key} did not verify after upload: MD5 differs`);
    return info.etag;
  }
  const object = await store.get(key);
  const back = object ? await readBytes(object) : new Uint8Array();
  if (sha256Hex(back) !== sha256Hex(data) && !equivalent?.(back)) throw new UploaderError(`${key} did not verify after upload: content differs`);
  return info.etag;
}

/**
 * Writes the plugin's aliases.json: merged into what is there, or replacing it (prune).
 * Every target must be a version in the store.
 */
export async function publishAliases(
  store: WritableStore,
  name: string,
  aliases: Readonly<Record<string, string>>,
  options: { replace?: boolean } = {},
): Promise<void> {
  const current = options.replace ? null : await store.get(aliasesKey(name));
  const merged = { ...(current ? parseAliases(name, await readText(current)) : {}), ...aliases };
  for (const [from, to] of Object.entries(merged)) {
    if (!(await store.head(fileKey(name, to, WASM)))) {
      throw new UploaderError(`alias ${name} ${from} -> ${to}: version ${to} is not in the store`);
    }
  }
  const body = `${JSON.stringify({ aliases: Object.fromEntries(Object.entries(merged).sort()) }, null, 2)}\n`;
  parseAliases(name, body); // the server must accept what we write
  await putVerified(store, aliasesKey(name), text(body));
}
