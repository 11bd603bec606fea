import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createGunzip, gzipSync } from "node:zlib";
import tarStream from "tar-stream";
import { buildExample } from "../../scripts/examples.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import { wasmModule } from "./wasm.ts";

/** The store content every target is seeded with, so one request matrix runs against all of them. */

export const sha256 = (data: Uint8Array) => createHash("sha256").update(data).digest("hex");
export const md5 = (data: Uint8Array) => createHash("md5").update(data).digest("hex");
const text = (s: string) => new TextEncoder().encode(s);

export const BIG = wasmModule(300_000, 7);
export const BIG_GZIP = gzipSync(BIG);
export const PLAIN = wasmModule(4_000, 11);
export const REFERENCE = wasmModule(2_000, 13);
export const REFERENCE_METADATA = `Plugin Name: reference
Size: ${REFERENCE.byteLength} bytes
Last Modified: 2026-02-03T08:00:00.123456
Created: 2026-02-03T08:00:00.123456
MD5: ${md5(REFERENCE)}
`;

/** A README that tries everything: stored content is untrusted and must never run. */
export const HOSTILE_README = `# plain <script>window.pwned = 1</script>

Configure it like this: <img src=x onerror="window.pwned = 2">

| key | meaning |
| --- | --- |
| \`allow\` | **who** may pass <iframe src="javascript:alert(1)"></iframe> |

- [docs](https://higress.io/docs)
- [click me](javascript:window.pwned=3)
- [data](data:text/html,<script>alert(1)</script>)

\`\`\`yaml
allow: [consumer1]
\`\`\`
`;

export interface Fixture {
  readonly objects: ReadonlyMap<string, Uint8Array>;
  readonly hello: Uint8Array;
  readonly helloGzip: Uint8Array;
}

export async function fixture(): Promise<Fixture> {
  const hello = await buildExample("hello-world", "1.0.0");
  const objects = new Map<string, Uint8Array>();
  for (const [file, bytes] of hello.files) objects.set(`plugins/hello-world/1.0.0/${file}`, bytes);
  // A large plugin with a gzip variant and an alias, as the uploader publishes key-auth 2.0.0 for 1.0.0 URLs.
  objects.set("plugins/big/2.0.0/plugin.wasm", BIG);
  objects.set("plugins/big/2.0.0/plugin.wasm.gz", BIG_GZIP);
  objects.set("plugins/big/aliases.json", text(JSON.stringify({ aliases: { "1.0.0": "2.0.0" } })));
  // A hand-made tree: only plugin.wasm, so both metadata files are derived.
  objects.set("plugins/plain/1.0.0/plugin.wasm", PLAIN);
  objects.set("plugins/plain/1.0.0/README.md", text(HOSTILE_README));
  // The reference server's tree: plugin.wasm and its 5-line metadata.txt.
  objects.set("plugins/reference/1.0.0/plugin.wasm", REFERENCE);
  objects.set("plugins/reference/1.0.0/metadata.txt", text(REFERENCE_METADATA));
  // An operator's mistake the server must report instead of hiding.
  objects.set("plugins/broken/1.0.0/plugin.wasm", PLAIN);
  objects.set("plugins/broken/aliases.json", text("{ not json"));
  return { objects, hello: hello.files.get("plugin.wasm")!, helloGzip: hello.files.get("plugin.wasm.gz")! };
}

/** A real store whose writes pass `before` first (which may wait, or throw to fail the write): a fake beside the real tests. */
export function beforePuts(real: WritableStore, before: (key: string, data: Uint8Array) => Promise<void> | void): WritableStore {
  return {
    description: real.description,
    get: (key, options) => real.get(key, options),
    head: (key) => real.head(key),
    list: (prefix) => real.list(prefix),
    delete: (key) => real.delete(key),
    put: async (key, data) => {
      await before(key, data);
      return real.put(key, data);
    },
  };
}

/** Every regular file of a .tar.gz, in order, as [name, bytes] (read with tar-stream, as the uploader reads bundles). */
export async function tarGzEntries(file: string): Promise<[string, Uint8Array][]> {
  const entries: [string, Uint8Array][] = [];
  const extract = tarStream.extract();
  extract.on("entry", (header, entry, next) => {
    const chunks: Buffer[] = [];
    entry.on("data", (c) => void chunks.push(c as Buffer));
    entry.on("end", () => {
      if (header.type === "file") entries.push([header.name, new Uint8Array(Buffer.concat(chunks))]);
      next();
    });
  });
  await pipeline(createReadStream(file), createGunzip(), extract);
  return entries;
}
