import { LRUCache } from "lru-cache";
import { readAliases } from "../plugins/read.ts";
import { cacheTags } from "../core/cache-tags.ts";
import { describeVersions } from "../core/versions.ts";
import { listFiles, listVersions } from "../plugins/read.ts";
import { contentTypeFor } from "../core/content-type.ts";
import { NotFoundError } from "../core/errors.ts";
import { fileKey, METADATA_JSON, METADATA_TEXT, WASM, WASM_GZIP } from "../core/layout.ts";
import { parseMetadataJson, renderMetadataText, type HasherFactory, type PluginMetadata } from "../core/metadata.ts";
import { parsedOnce } from "../core/parsed-once.ts";
import { discard, readBytes, readerStream, type ObjectInfo, type Store } from "../storage/store.ts";
import type { Reply } from "./reply.ts";
import { serveObject, type ObjectRequest } from "./serve-object.ts";

export interface PluginFileContext {
  readonly store: Store;
  /** Cache-Control of a version's own files: immutable once published. */
  readonly cacheControl: string;
  /** Cache-Control of files served through an alias, which can be re-pointed. */
  readonly aliasCacheControl: string;
  readonly hasher: HasherFactory;
  /** Metadata derived from modules stored without any, per key and ETag (computed once, shared). */
  readonly derived: LRUCache<string, Promise<PluginMetadata | null>>;
}

export function derivedMetadataCache(): PluginFileContext["derived"] {
  return new LRUCache({ max: 256 });
}

/** Stored files are data, never pages: no script runs even if one is opened in a browser. */
const FILE_HEADERS = { "Content-Security-Policy": "default-src 'none'; sandbox", "X-Content-Type-Options": "nosniff" } as const;

/**
 * GET/HEAD /plugins/<name>/<version>/<file>. The version's own files win; otherwise the
 * version's alias serves its target's files under this URL, with no redirect and no copy.
 */
export async function servePluginFile(ctx: PluginFileContext, req: ObjectRequest, name: string, version: string, file: string): Promise<Reply> {
  const direct = await serveVersion(ctx, req, name, version, file, undefined, version);
  if (direct) return direct;
  const aliases = await readAliases(ctx.store, name);
  const target = Object.hasOwn(aliases, version) ? aliases[version] : undefined;
  if (target) {
    const aliased = await serveVersion(ctx, req, name, target, file, target, version);
    if (aliased) return aliased;
  }
  throw await notFound(ctx.store, name, target ?? version, file);
}

async function serveVersion(
  ctx: PluginFileContext,
  req: ObjectRequest,
  name: string,
  version: string,
  file: string,
  aliasOf: string | undefined,
  requested: string,
): Promise<Reply | null> {
  const tags = cacheTags(name, requested, aliasOf);
  const extraHeaders = aliasOf ? { ...FILE_HEADERS, "X-Alias-Of": aliasOf, "Cache-Tag": tags } : { ...FILE_HEADERS, "Cache-Tag": tags };
  const cacheControl = aliasOf ? ctx.aliasCacheControl : ctx.cacheControl;
  // Modules get content-based tags (their sha256), so two versions of equal size written in the same
  // second never share one; any file served through an alias carries its target in the tag.
  const sha256 = file === WASM ? (await storedMetadata(ctx.store, name, version))?.sha256 : undefined;
  const etag = sha256
    ? (_: ObjectInfo, encoding: "gzip" | undefined) => `"${sha256}${encoding ? "-gz" : ""}"`
    : aliasOf
      ? (info: ObjectInfo) => tagged(info.etag, aliasOf)
      : undefined;
  const stored = await serveObject(ctx.store, fileKey(name, version, file), req, {
    contentType: contentTypeFor(file),
    cacheControl,
    extraHeaders,
    ...(etag ? { etag } : {}),
    ...(file === WASM ? { gzipKey: fileKey(name, version, WASM_GZIP) } : {}),
  });
  if (stored || (file !== METADATA_TEXT && file !== METADATA_JSON)) return stored;
  // A tree without our metadata (hand-made, or the reference server's without metadata.json):
  // derive it, so every version answers both metadata URLs.
  const metadata = await deriveMetadata(ctx, name, version);
  if (!metadata) return null;
  const body = new TextEncoder().encode(file === METADATA_TEXT ? renderMetadataText(metadata) : `${JSON.stringify(metadata, null, 2)}\n`);
  return {
    status: 200,
    headers: {
      "Content-Type": contentTypeFor(file),
      "Content-Length": String(body.byteLength),
      "Cache-Control": "no-cache",
      ...extraHeaders,
    },
    body: req.method === "HEAD" ? null : body,
  };
}

/** `"abc"` served through alias 2.0.0 becomes `"abc.2.0.0"` (weakness kept). */
function tagged(etag: string, target: string): string {
  const weak = etag.startsWith("W/") ? "W/" : "";
  return `${weak}${etag.slice(weak.length, -1)}.${target}"`;
}

async function storedMetadata(store: Store, name: string, version: string): Promise<PluginMetadata | undefined> {
  const object = await store.get(fileKey(name, version, METADATA_JSON));
  if (!object) return undefined;
  if (object.bytes) {
    discard(object);
    return parsedOnce(object.bytes, (bytes) => parseMetadataJson(new TextDecoder().decode(bytes)));
  }
  return parseMetadataJson(new TextDecoder().decode(await readBytes(object)));
}

async function deriveMetadata(ctx: PluginFileContext, name: string, version: string): Promise<PluginMetadata | null> {
  const stored = await storedMetadata(ctx.store, name, version);
  if (stored) return stored;
  const wasm = await ctx.store.get(fileKey(name, version, WASM));
  if (!wasm) return null;
  // One computation per module and ETag, shared by every request asking meanwhile; the module
  // is hashed as it streams, never held whole.
  const key = `${wasm.info.key}|${wasm.info.etag}|${wasm.info.size}`;
  let pending = ctx.derived.get(key);
  if (pending) {
    discard(wasm);
    return pending;
  }
  pending = (async () => {
    const hasher = ctx.hasher();
    if (wasm.bytes) {
      hasher.update(wasm.bytes);
      discard(wasm);
    } else {
      const stream = wasm.reader ? readerStream(wasm.reader) : wasm.body;
      for await (const chunk of stream ?? []) hasher.update(chunk);
    }
    const { md5, sha256, size } = await hasher.digest();
    const time = wasm.info.lastModified.toISOString();
    return { name, version, size, md5, sha256, created: time, lastModified: time };
  })();
  ctx.derived.set(key, pending);
  pending.catch(() => ctx.derived.delete(key));
  return pending;
}

/** A 404 that says what does exist, so a wrong version in a WasmPlugin is fixed at a glance. */
async function notFound(store: Store, name: string, version: string, file: string): Promise<NotFoundError> {
  const found = await listVersions(store, name);
  if (!found) {
    return new NotFoundError(`no plugin named "${name}"; the list of plugins is at /plugins/`, { plugin: name });
  }
  const details = { plugin: name, version, versions: found.versions, aliases: found.aliases };
  if (!found.versions.includes(version)) {
    return new NotFoundError(`plugin "${name}" has no version "${version}"; versions: ${describeVersions(found)}`, details);
  }
  const files = (await listFiles(store, name, version)).map((f) => f.key.slice(f.key.lastIndexOf("/") + 1));
  return new NotFoundError(`plugin "${name}" version "${version}" has no file "${file}"; files: ${files.join(", ")}`, {
    ...details,
    files,
  });
}
