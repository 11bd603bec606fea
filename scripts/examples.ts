import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { gzipSync } from "node:zlib";
import wabt from "wabt";
import { renderMetadataText, type PluginMetadata } from "../src/core/metadata.ts";

/** The example plugins compiled from source, and the files the store holds for each. */

export const EXAMPLES_DIR = new URL("../examples/", import.meta.url);
export const EXAMPLE_STORE = new URL("store/", EXAMPLES_DIR);
/** Fixed, so a rebuild from the same source gives the same files. */
const PUBLISHED = "2026-11-21T00:00:00.000Z";

export interface ExamplePlugin {
  readonly name: string;
  readonly version: string;
  /** Store files of this version, by file name. */
  readonly files: ReadonlyMap<string, Uint8Array<ArrayBuffer>>;
  readonly metadata: PluginMetadata;
}

export async function compileWat(path: URL): Promise<Uint8Array<ArrayBuffer>> {
  const module = (await wabt()).parseWat(path.pathname, await readFile(path, "utf8"));
  try {
    module.resolveNames();
    module.validate();
    const bytes = new Uint8Array(module.toBinary({ write_debug_names: false }).buffer);
    if (!WebAssembly.validate(bytes)) throw new Error(`${path.pathname} compiles to an invalid module`);
    return bytes;
  } finally {
    module.destroy();
  }
}

const hash = (algorithm: string, data: Uint8Array) => createHash(algorithm).update(data).digest("hex");

export async function buildExample(name: string, version: string): Promise<ExamplePlugin> {
  const source = new URL(`plugins/${name}/`, EXAMPLES_DIR);
  const wasm = await compileWat(new URL("plugin.wat", source));
  const metadata: PluginMetadata = {
    name,
    version,
    size: wasm.byteLength,
    md5: hash("md5", wasm),
    sha256: hash("sha256", wasm),
    created: PUBLISHED,
    lastModified: PUBLISHED,
    source: `file:examples/plugins/${name}/plugin.wat`,
  };
  const text = (s: string) => new TextEncoder().encode(s) as Uint8Array<ArrayBuffer>;
  const files = new Map<string, Uint8Array<ArrayBuffer>>([
    ["plugin.wasm", wasm],
    // level 9 and a fixed header: the same bytes on every build
    ["plugin.wasm.gz", new Uint8Array(gzipSync(wasm, { level: 9 }))],
    ["metadata.txt", text(renderMetadataText(metadata))],
    ["metadata.json", text(`${JSON.stringify(metadata, null, 2)}\n`)],
    ["README.md", new Uint8Array(await readFile(new URL("README.md", source)))],
  ]);
  return { name, version, files, metadata };
}

export const EXAMPLES = [["hello-world", "1.0.0"]] as const;
