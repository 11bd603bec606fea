import { promisify } from "node:util";
import { gzip as gzipCallback } from "node:zlib";
import { parseAliases } from "../src/core/aliases.ts";
import { contentTypeFor } from "../src/core/content-type.ts";
import { aliasesKey, fileKey, METADATA_JSON, METADATA_TEXT, WASM, WASM_GZIP } from "../src/core/layout.ts";
import { parseMetadataJson, renderMetadataText, type PluginMetadata } from "../src/core/metadata.ts";
import { discard, readBytes, readText, type Store, type StoredObject, type WritableStore } from "../src/storage/store.ts";
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

/** `replaced`: the version held other bytes, and `replace` said to publish over them. */
export type PublishStatus = "published" | "unchanged" | "replaced";

/**
 * A published version's URL is served `immutable` and pinned by sha256 in WasmPlugin resources:
 * its bytes never change unless the operator says so (`--replace`). Moving an alias is the way
 * to point a Console version at new bytes.
 */
export class ConflictError extends UploaderError {
  constructor(
    name: string,
    version: string,
    readonly published: string,
    readonly offered: string,
  ) {
    super(
      `${name} ${version} is published with sha256 ${published}, and the source now has other bytes (sha256 ${offered}): ` +
        `a published version never changes (gateways cache it and WasmPlugins pin its sha256); publish the new bytes as a new version, or --replace to overwrite on purpose`,
    );
  }
}

export interface PublishResult {
  readonly status: PublishStatus;
  readonly sha256: string;
  readonly metadata: PluginMetadata;
  /** For `replaced`: the sha256 the version held before. */
  readonly previousSha256?: string;
}

const text = (s: string) => new TextEncoder().encode(s);
// Level 5: on Go-built plugin modules it makes files 1.4% larger than level 6 (0.274 against 0.270 of the
// module; level 9 gains another 1%) for two thirds of the CPU (4.4 s against 6.4 s for the bench's 270 MB);
// the gzip variant is most of the uploader's work. The asynchronous API runs in libuv's pool, so several
// plugins compress at once; output comes back in 1 MiB pieces rather than 16 KiB ones (a few
// main-thread callbacks per module, not hundreds).
const gzip = (data: Uint8Array) => promisify(gzipCallback)(data, { level: 5, chunkSize: 1 << 20 });

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
  options: { force?: boolean; replace?: boolean; now?: Date } = {},
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
  if (existing && existing.sha256 !== sha256 && !options.replace) throw new ConflictError(plugin.name, plugin.version, existing.sha256, sha256);

  const now = (options.now ?? new Date()).toISOString();
  // The gzip variant is made on libuv's pool while plugin.wasm is written.
  const gzipping = gzip(plugin.wasm);
  gzipping.catch(() => {}); // awaited below; a failed write must not leave it unhandled
  const md5 = md5Hex(plugin.wasm);
  const key = (file: string) => fileKey(plugin.name, plugin.version, file);
  /** What this run wrote, with the ETag the store gave it: a rollback removes only objects still ours. */
  const written = new Map<string, string>();
  // Another uploader may publish the same version at the same moment: its metadata differs from
  // ours only in its timestamps, and names the same module; that is a success, not a damaged write.
  const sameModule = (back: Uint8Array) => new TextDecoder().decode(back).includes(sha256);
  const put = async (file: string, data: Uint8Array, knownMd5?: string) => {
    const metadataFile = file === METADATA_TEXT || file === METADATA_JSON;
    written.set(key(file), await putVerified(store, key(file), data, { ...(metadataFile ? { equivalent: sameModule } : {}), ...(knownMd5 ? { md5: knownMd5 } : {}) }));
  };
  let metadata: PluginMetadata;
  try {
    // A stale gzip variant must not outlive the module it was made from.
    if (existing) await store.delete(key(WASM_GZIP));
    await put(WASM, plugin.wasm, md5);
    const gzipped = await gzipping;
    metadata = {
      name: plugin.name,
      version: plugin.version,
      size: plugin.wasm.length,
      md5,
      sha256,
      created: existing?.created ?? now,
      lastModified: now,
      source: plugin.source,
      ...(plugin.manifestDigest ? { manifestDigest: plugin.manifestDigest } : {}),
      gzipSize: gzipped.length,
      gzipMd5: md5Hex(gzipped),
    };
    await put(WASM_GZIP, gzipped, metadata.gzipMd5);
    for (const [file, data] of plugin.extras) await put(file, data);
    await put(METADATA_TEXT, text(renderMetadataText(metadata)));
    await put(METADATA_JSON, text(`${JSON.stringify(metadata, null, 2)}\n`));
    await settleMetadataText(store, key(METADATA_TEXT), plugin.name, plugin.version, sha256, sameModule);
  } catch (error) {
    if (!existing) await rollBack(store, written);
    throw error;
  }
  return existing && existing.sha256 !== sha256 ? { status: "replaced", sha256, metadata, previousSha256: existing.sha256 } : { status: "published", sha256, metadata };
}

/**
 * Another publisher of the same module may be writing its own metadata at the same moment (the
 * two differ in their timestamps only): metadata.txt must end up rendering whichever metadata.json
 * stands. Each publisher renders what it reads and stops only when a fresh read after its write
 * shows the same metadata.json; then the last write of metadata.txt by anyone rendered the last
 * metadata.json, whatever the interleaving. (Writing ours, then checking once, is not enough:
 * the other publisher's metadata.txt can land after ours while our metadata.json lands last.)
 */
async function settleMetadataText(store: WritableStore, key: string, name: string, version: string, sha256: string, sameModule: (back: Uint8Array) => boolean) {
  let rendered: string | undefined;
  for (let round = 0; round < 10; round++) {
    const standing = await storedMetadata(store, name, version);
    // Gone, or another module now: its publisher owns metadata.txt.
    if (!standing || standing.sha256 !== sha256) return;
    const wanted = renderMetadataText(standing);
    if (wanted === rendered) return;
    await putVerified(store, key, text(wanted), { equivalent: sameModule });
    rendered = wanted;
  }
  throw new UploaderError(`${name} ${version}: metadata.json keeps changing under us (another uploader publishing it?); run again`);
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
 * Writes an object and reads it back: the size must match, and the bytes (or S3's MD5 ETag, against
 * `md5` when the caller has it), or, where `equivalent` says so, bytes a concurrent writer put there
 * that mean the same. Returns the ETag.
 */
export async function putVerified(
  store: WritableStore,
  key: string,
  data: Uint8Array,
  options: { equivalent?: (back: Uint8Array) => boolean; md5?: string } = {},
): Promise<string> {
  const { equivalent } = options;
  const md5 = options.md5 ?? md5Hex(data);
  const written = await store.put(key, data, { contentType: contentTypeFor(key), md5 });
  const info = await store.head(key);
  if (!info || (info.size !== data.length && !equivalent)) {
    throw new UploaderError(`${key} did not verify after upload: expected ${data.length} bytes, store has ${info?.size ?? "nothing"}`);
  }
  const etagMd5 = /^"([0-9a-f]{32})"$/.exec(written.etag)?.[1];
  if (etagMd5) {
    if (etagMd5 !== md5) throw new UploaderError(`${key} did not verify after upload: MD5 differs`);
    return info.etag;
  }
  const object = await store.get(key);
  if (!object) throw new UploaderError(`${key} did not verify after upload: the store no longer has it`);
  const same = equivalent ? await readBytes(object).then((back) => equal(back, data) || equivalent(back)) : await sameBytes(object, data);
  if (!same) throw new UploaderError(`${key} did not verify after upload: content differs`);
  return info.etag;
}

const equal = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

/** Compares a stored object with `data` a piece at a time, so a large module is not read back whole. */
async function sameBytes(object: StoredObject, data: Uint8Array): Promise<boolean> {
  if (object.bytes) return equal(object.bytes, data);
  let at = 0;
  const matches = (chunk: Uint8Array) => {
    const ok = at + chunk.length <= data.length && equal(chunk, data.subarray(at, at + chunk.length));
    at += chunk.length;
    return ok;
  };
  if (object.reader) {
    const into = new Uint8Array(1 << 20);
    try {
      for (let chunk = await object.reader.read(into.length, into); chunk; chunk = await object.reader.read(into.length, into)) {
        if (!matches(chunk)) return false;
      }
    } finally {
      object.reader.close();
    }
  } else {
    for await (const chunk of object.body ?? []) {
      if (!matches(chunk)) {
        discard(object);
        return false;
      }
    }
  }
  return at === data.length;
}

/**
 * Writes the plugin's aliases.json: merged into what is there, or replacing it (prune).
 * Every target must be a version in the store. Returns the aliases that now point elsewhere
 * (what an edge cache may hold the old bytes of).
 */
export async function publishAliases(
  store: WritableStore,
  name: string,
  aliases: Readonly<Record<string, string>>,
  options: { replace?: boolean } = {},
): Promise<string[]> {
  const current = await store.get(aliasesKey(name));
  const before = current ? parseAliases(name, await readText(current)) : {};
  const merged = { ...(options.replace ? {} : before), ...aliases };
  const moved = Object.keys(before).filter((from) => merged[from] !== before[from]);
  for (const [from, to] of Object.entries(merged)) {
    if (!(await store.head(fileKey(name, to, WASM)))) {
      throw new UploaderError(`alias ${name} ${from} -> ${to}: version ${to} is not in the store`);
    }
  }
  const body = `${JSON.stringify({ aliases: Object.fromEntries(Object.entries(merged).sort()) }, null, 2)}\n`;
  parseAliases(name, body); // the server must accept what we write
  await putVerified(store, aliasesKey(name), text(body));
  return moved;
}
