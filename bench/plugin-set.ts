import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
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

export async function pluginSet(): Promise<{ name: string; wasm: Uint8Array }[]> {
  const go = await readFile(createRequire(import.meta.url).resolve("esbuild-wasm/esbuild.wasm"));
  return SIZES_MB.map((mb, i) => {
    const size = Math.round(mb * 1_000_000);
    const name = new TextEncoder().encode("go.code");
    const payload = new Uint8Array(size);
    let at = 0;
    let offset = (i * 7_919_993) % go.length;
    while (at < size) {
      const n = Math.min(size - at, go.length - offset);
      payload.set(go.subarray(offset, offset + n), at);
      at += n;
      offset = 0;
    }
    const content = [...leb128(name.length), ...name];
    const sectionSize = leb128(content.length + size);
    const header = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x00, ...sectionSize, ...content]);
    const wasm = new Uint8Array(header.length + size);
    wasm.set(header);
    wasm.set(payload, header.length);
    return { name: `plugin-${String(i + 1).padStart(2, "0")}`, wasm };
  });
}
