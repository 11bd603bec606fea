import { readAliases } from "../core/aliases.ts";
import { describeVersions, listFiles, listVersions } from "../core/catalog.ts";
import { contentTypeFor } from "../core/content-type.ts";
import { NotFoundError } from "../core/errors.ts";
import { fileKey, METADATA_JSON, METADATA_TEXT, WASM, WASM_GZIP } from "../core/layout.ts";
import { computeMetadata, parseMetadataJson, renderMetadataText, type Digest, type PluginMetadata } from "../core/metadata.ts";
import type { Store } from "../storage/store.ts";
import { serveObject, type ObjectRequest } from "./serve-object.ts";

export interface PluginFileContext {
  readonly store: Store;
  readonly cacheControl: string;
  readonly digest: Digest;
}

/** Stored files are data, never pages: no script runs even if one is opened in a browser. */
const FILE_HEADERS = { "Content-Security-Policy": "default-src 'none'; sandbox" } as const;

/**
 * GET/HEAD /plugins/<name>/<version>/<file>. The version's own files win; otherwise the
 * version's alias serves its target's files under this URL, with no redirect and no copy.
 */
export async function servePluginFile(
  ctx: PluginFileContext,
  req: ObjectRequest,
  name: string,
  version: string,
  file: string,
): Promise<Response> {
  const direct = await serveVersion(ctx, req, name, version, file, {});
  if (direct) return direct;
  const target = (await readAliases(ctx.store, name))[version];
  if (target) {
    const aliased = await serveVersion(ctx, req, name, target, file, { "X-Alias-Of": target });
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
  extraHeaders: Record<string, string>,
): Promise<Response | null> {
  const stored = await serveObject(ctx.store, fileKey(name, version, file), req, {
    contentType: contentTypeFor(file),
    cacheControl: ctx.cacheControl,
    extraHeaders: { ...FILE_HEADERS, ...extraHeaders },
    ...(file === WASM ? { gzipKey: fileKey(name, version, WASM_GZIP) } : {}),
  });
  if (stored || (file !== METADATA_TEXT && file !== METADATA_JSON)) return stored;
  // A tree without our metadata (hand-made, or the reference server's without metadata.json):
  // derive it, so every version answers both metadata URLs.
  const metadata = await deriveMetadata(ctx, name, version);
  if (!metadata) return null;
  const body = file === METADATA_TEXT ? renderMetadataText(metadata) : `${JSON.stringify(metadata, null, 2)}\n`;
  return new Response(req.method === "HEAD" ? null : body, {
    headers: {
      "Content-Type": contentTypeFor(file),
      "Content-Length": String(new TextEncoder().encode(body).byteLength),
      "Cache-Control": "no-cache",
      ...FILE_HEADERS,
      ...extraHeaders,
    },
  });
}

async function deriveMetadata(ctx: PluginFileContext, name: string, version: string): Promise<PluginMetadata | null> {
  const json = await ctx.store.get(fileKey(name, version, METADATA_JSON));
  if (json?.body) {
    const parsed = parseMetadataJson(await new Response(json.body).text());
    if (parsed) return parsed;
  }
  const wasm = await ctx.store.get(fileKey(name, version, WASM));
  if (!wasm?.body) return null;
  const bytes = new Uint8Array(await new Response(wasm.body).arrayBuffer());
  return computeMetadata(ctx.digest, { name, version, bytes, lastModified: wasm.info.lastModified });
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
