import { mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { writeOciLayout, orasPlugin } from "./oci-layout.ts";
import { push, type Registry } from "./registry.ts";
import { ROOT } from "./targets.ts";
import { wasmModule } from "./wasm.ts";

/** The official registry the default configuration pulls from, and a local stand-in for it. */
export const OFFICIAL = "higress-registry.cn-hangzhou.cr.aliyuncs.com";

export const DEFAULT_CONFIG = JSON.parse(await readFile(path.join(ROOT, "uploader/plugins.default.json"), "utf8")) as {
  plugins: Record<string, { versions: Record<string, string>; aliases?: Record<string, string> }>;
};

/** Uploader options that pull the official images from `registry` instead. */
export const mirrorArgs = (registry: Registry) => ["--mirror", `${OFFICIAL}=${registry.host}`, "--plain-http", registry.host];

/**
 * Pushes every image the default configuration names, as the official registry holds them (ORAS
 * artifacts), each a distinct module. Returns repository:tag -> the module pushed there.
 */
export async function pushOfficialSet(registry: Registry): Promise<Map<string, Uint8Array>> {
  const pushed = new Map<string, Uint8Array>();
  const images = [...new Set(Object.values(DEFAULT_CONFIG.plugins).flatMap((p) => Object.values(p.versions)))].map((ref) => ref.replace(`oci://${OFFICIAL}/`, ""));
  // One at a time: the images share blobs (config, docs), and concurrent pushes of a shared
  // blob to several repositories race inside distribution's filesystem driver.
  for (const image of images) {
    const wasm = wasmModule(1000 + pushed.size, pushed.size + 1000);
    pushed.set(image, wasm);
    const dir = await mkdtemp(path.join(tmpdir(), "layout-"));
    const tag = image.split(":")[1]!;
    const { manifest, blobs } = orasPlugin(wasm);
    await writeOciLayout(dir, tag, manifest, blobs);
    await push(`oci:${dir}:${tag}`, registry, image);
  }
  return pushed;
}

/** The version whose bytes a Console URL's version is served from (itself or its alias's target), and that image. */
export function servedImage(name: string, version: string): string {
  const entry = DEFAULT_CONFIG.plugins[name]!;
  const served = entry.versions[version] ? version : entry.aliases![version]!;
  return entry.versions[served]!.replace(`oci://${OFFICIAL}/`, "");
}
