import { createHash, randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { mkdtemp, open, readFile, rename, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import tarStream from "tar-stream";
import { parseAliases } from "../src/core/aliases.ts";
import { checkName, checkVersion } from "../src/core/names.ts";
import { sha256Hex } from "./digest.ts";
import { ArtifactError } from "./errors.ts";
import { checkExtras, EXTRAS_DESCRIPTION, isExtra, MAX_EXTRA_BYTES, MAX_EXTRAS } from "./extras.ts";
import { MAX_WASM_BYTES } from "./wasm.ts";
import { mapPool } from "./pool.ts";
import { DIGEST } from "./oci/reference.ts";
import type { Job, ProgressEvent, VersionResult } from "./pipeline.ts";
import type { PluginVersion } from "./publish.ts";

/**
 * Offline bundles for air-gapped sites: one .tar.gz with every plugin version's files, the
 * aliases, and an inventory (bundle.json) holding the sha256 of every file. Replaces
 * `docker save` / `docker load` of the reference nginx image.
 */

const FORMAT = "higress-plugin-bundle";
const INVENTORY = "bundle.json";

interface Inventory {
  readonly format: typeof FORMAT;
  readonly formatVersion: 1;
  readonly created: string;
  readonly plugins: readonly {
    readonly name: string;
    readonly version: string;
    readonly source: string;
    readonly manifestDigest?: string;
    /** file name -> sha256 of its bytes */
    readonly files: Readonly<Record<string, string>>;
  }[];
  readonly aliases: Readonly<Record<string, Readonly<Record<string, string>>>>;
}

/**
 * Loads every job (a failure is reported, not bundled) and writes the bundle atomically, in
 * bounded memory: each loaded version's files go to a spool directory as they are hashed (the
 * inventory, the archive's first entry, needs every sha256), then the tar is streamed from the
 * spool through gzip into the file, one entry at a time.
 */
export async function exportBundle(
  jobs: readonly Job[],
  aliases: ReadonlyMap<string, Readonly<Record<string, string>>>,
  out: string,
  options: { concurrency?: number; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<{ versions: VersionResult[]; failed: number }> {
  const progress = options.onProgress ?? (() => {});
  const spool = await mkdtemp(path.join(tmpdir(), "plugin-export-"));
  const temporary = `${out}.${randomBytes(4).toString("hex")}.partial`;
  try {
    let spooled = 0;
    const loaded: { plugin: Omit<PluginVersion, "wasm" | "extras">; files: { name: string; path: string; size: number; sha256: string }[] }[] = [];
    const versions = await mapPool(jobs, options.concurrency ?? 4, async (job): Promise<VersionResult> => {
      progress({ name: job.name, version: job.version, phase: "start", detail: job.source });
      try {
        const { wasm, extras, ...plugin } = await job.load();
        const files = [];
        for (const [name, data] of new Map<string, Uint8Array>([["plugin.wasm", wasm], ...extras])) {
          const file = path.join(spool, String(++spooled));
          await writeFile(file, data, { mode: 0o600 });
          files.push({ name, path: file, size: data.length, sha256: sha256Hex(data) });
        }
        loaded.push({ plugin, files });
        const sha256 = files[0]!.sha256;
        progress({ name: job.name, version: job.version, phase: "published", detail: sha256 });
        return { name: job.name, version: job.version, source: job.source, status: "published", sha256, size: wasm.length };
      } catch (error) {
        progress({ name: job.name, version: job.version, phase: "failed", detail: (error as Error).message });
        return { name: job.name, version: job.version, source: job.source, status: "failed", error: (error as Error).message };
      }
    });
    loaded.sort((a, b) => `${a.plugin.name}/${a.plugin.version}`.localeCompare(`${b.plugin.name}/${b.plugin.version}`));
    const inventory: Inventory = {
      format: FORMAT,
      formatVersion: 1,
      created: new Date().toISOString(),
      plugins: loaded.map(({ plugin: p, files }) => ({
        name: p.name,
        version: p.version,
        source: p.source,
        ...(p.manifestDigest ? { manifestDigest: p.manifestDigest } : {}),
        files: Object.fromEntries(files.map((f) => [f.name, f.sha256])),
      })),
      aliases: Object.fromEntries(aliases),
    };
    const pack = tarStream.pack();
    const written = pipeline(pack, createGzip({ level: 6 }), createWriteStream(temporary, { mode: 0o644 }));
    const header = (name: string, size: number) => ({ name, size, mode: 0o644, mtime: new Date(0), type: "file" as const });
    const index = new TextEncoder().encode(`${JSON.stringify(inventory, null, 2)}\n`);
    await new Promise<void>((resolve, reject) => pack.entry(header(INVENTORY, index.length), Buffer.from(index), (error) => (error ? reject(error) : resolve())));
    for (const { plugin: p, files } of loaded) {
      for (const f of files) await pipeline(createReadStream(f.path), pack.entry(header(`plugins/${p.name}/${p.version}/${f.name}`, f.size)));
    }
    pack.finalize();
    await written;
    await rename(temporary, out); // a reader never finds a half-written bundle under the final name
    return { versions, failed: versions.filter((v) => v.status === "failed").length };
  } finally {
    await rm(temporary, { force: true });
    await rm(spool, { recursive: true, force: true });
  }
}

const MAX_INVENTORY_BYTES = 16 * 1024 * 1024;
const HEX64 = /^[0-9a-f]{64}$/;
/** What a bundle may unpack to in one run, unless `--max-unpacked-mb` says otherwise (the official set is far below). */
export const DEFAULT_MAX_UNPACKED_BYTES = 4096 * 1024 * 1024;
const WASM_HEADER = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];

export interface OpenedBundle {
  readonly jobs: Job[];
  readonly aliases: Map<string, Record<string, string>>;
  /** Removes the unpacked files; call once the jobs have run. */
  close(): Promise<void>;
}

/**
 * Reads and verifies a bundle completely before anything is published from it, in bounded memory.
 * The gzip and the tar are streamed: the inventory comes first and says which entries may follow
 * and how large each may be, so an entry the inventory does not list, one larger than its cap, or
 * one that takes the run past `maxUnpackedBytes` stops the read at its header, and a module that
 * does not start with the wasm header stops it at its first bytes (a 1 MB bundle of 1 GiB of zeros
 * costs nothing). Entries are spooled to a temporary directory as they are hashed, and each job
 * reads its own version back (its `size` lets the pipeline bound how many modules it holds).
 * Bundles are untrusted: every name, version, digest and source line is validated.
 */
export async function readBundle(file: string, options: { maxUnpackedBytes?: number } = {}): Promise<OpenedBundle> {
  const budget = options.maxUnpackedBytes ?? DEFAULT_MAX_UNPACKED_BYTES;
  const fail = (why: string) => new ArtifactError(`bundle ${file}: ${why}`);
  const spool = await mkdtemp(path.join(tmpdir(), "plugin-bundle-"));
  const close = () => rm(spool, { recursive: true, force: true });
  let inventory: Inventory | undefined;
  /** key -> what the inventory says of it */
  const expected = new Map<string, { sha256: string; max: number; spooled?: { file: string; size: number } }>();
  let unpacked = 0;
  let entries = 0;
  const extract = tarStream.extract();
  const source = pipeline(createReadStream(file), createGunzip(), extract).catch((error: Error) => error);
  try {
    for await (const entry of extract) {
      const { name, size = 0, type } = entry.header;
      if (type === "directory") {
        entry.resume();
        continue;
      }
      if (type !== "file") throw fail(`${name} is a ${type}; bundles hold regular files only`);
      if (!inventory) {
        if (name !== INVENTORY) throw fail(`its first entry is ${name}, not ${INVENTORY}`);
        if (size > MAX_INVENTORY_BYTES) throw fail(`${INVENTORY} is ${size} bytes, more than ${MAX_INVENTORY_BYTES}`);
        inventory = parseInventory(new TextDecoder().decode(await readEntry(entry, size)), fail);
        for (const p of inventory.plugins) {
          for (const [f, sha256] of Object.entries(p.files)) {
            expected.set(`plugins/${p.name}/${p.version}/${f}`, { sha256, max: f === "plugin.wasm" ? MAX_WASM_BYTES : MAX_EXTRA_BYTES });
          }
        }
        continue;
      }
      const want = expected.get(name);
      if (!want) throw fail(`holds ${name}, which its inventory does not list`);
      if (want.spooled) throw fail(`holds ${name} twice`);
      if (size > want.max) throw fail(`${name} is ${size} bytes; at most ${want.max} are accepted`);
      unpacked += size;
      if (unpacked > budget) throw fail(`unpacks to more than ${budget} bytes at ${name} (--max-unpacked-mb ${Math.floor(budget / 1048576)}); raise it if the bundle is meant to be this large`);
      const spooled = path.join(spool, String(++entries));
      const module = name.endsWith("/plugin.wasm");
      const sha256 = await spoolEntry(entry, size, spooled, module ? WASM_HEADER : []);
      if (sha256 === undefined) throw fail(`${name} does not start with the WebAssembly header (\\0asm, version 1): not a module`);
      if (sha256 !== want.sha256) throw fail(`${name} does not match its sha256 in ${INVENTORY}: the bundle is damaged`);
      want.spooled = { file: spooled, size };
    }
    const failure = await source;
    if (failure) throw fail(`cannot be read as a .tar.gz (${failure.message})`);
    if (!inventory) throw fail(`has no ${INVENTORY}`);
    for (const [key, want] of expected) if (!want.spooled) throw fail(`${key} is listed but missing`);
  } catch (error) {
    extract.destroy();
    await close();
    if (error instanceof ArtifactError) throw error;
    throw fail(`cannot be read as a .tar.gz (${(error as Error).message})`);
  }
  const jobs = inventory.plugins.map((p): Job => {
    const files = Object.keys(p.files).map((f) => [f, expected.get(`plugins/${p.name}/${p.version}/${f}`)!.spooled!] as const);
    const load = async (): Promise<PluginVersion> => {
      checkExtras(files.filter(([f]) => f !== "plugin.wasm").map(([f, { size }]) => ({ name: f, size })), `${p.name} ${p.version} of bundle ${file}`);
      const data = new Map<string, Uint8Array>();
      for (const [f, spooled] of files) data.set(f, await readFile(spooled.file));
      const wasm = data.get("plugin.wasm")!;
      data.delete("plugin.wasm");
      return { name: p.name, version: p.version, wasm, extras: data, source: p.source, ...(p.manifestDigest ? { manifestDigest: p.manifestDigest } : {}) };
    };
    return { name: p.name, version: p.version, source: p.source, size: files.reduce((n, [, s]) => n + s.size, 0), load };
  });
  const aliases = new Map<string, Record<string, string>>();
  for (const [name, map] of Object.entries(inventory.aliases)) aliases.set(name, parseAliases(name, JSON.stringify({ aliases: map })));
  return { jobs, aliases, close };
}

/** Reads one tar entry whole, never more than its header declared. */
async function readEntry(entry: AsyncIterable<unknown>, size: number): Promise<Uint8Array> {
  const buffer = Buffer.alloc(size);
  let at = 0;
  for await (const data of entry) {
    const chunk = data as Buffer;
    if (at + chunk.length > size) throw new ArtifactError("a tar entry is longer than its header says");
    buffer.set(chunk, at);
    at += chunk.length;
  }
  return buffer.subarray(0, at);
}

/**
 * Writes one tar entry to `file` as it arrives, hashing it, and returns its sha256; undefined as
 * soon as its first bytes differ from `header` (a module that is not one is refused unread).
 */
async function spoolEntry(entry: AsyncIterable<unknown>, size: number, file: string, header: readonly number[]): Promise<string | undefined> {
  const hash = createHash("sha256");
  const out = await open(file, "wx", 0o600);
  let at = 0;
  try {
    for await (const data of entry) {
      const chunk = data as Buffer;
      if (at + chunk.length > size) throw new ArtifactError("a tar entry is longer than its header says");
      for (let i = at; i < header.length && i < at + chunk.length; i++) if (chunk[i - at] !== header[i]) return undefined;
      hash.update(chunk);
      await out.write(chunk);
      at += chunk.length;
    }
  } finally {
    await out.close();
  }
  return at < header.length ? undefined : hash.digest("hex");
}

function parseInventory(text: string, fail: (why: string) => ArtifactError): Inventory {
  let value: Inventory;
  try {
    value = JSON.parse(text) as Inventory;
  } catch {
    throw fail(`${INVENTORY} is not JSON`);
  }
  if (value?.format !== FORMAT || value.formatVersion !== 1) throw fail(`is not a ${FORMAT} version 1`);
  if (!Array.isArray(value.plugins)) throw fail(`${INVENTORY} has no plugins list`);
  const seen = new Set<string>();
  for (const p of value.plugins) {
    const problem = checkName(p?.name) ?? checkVersion(p?.version);
    if (problem) throw fail(`${INVENTORY}: ${problem}`);
    const id = `${p.name} ${p.version}`;
    if (seen.has(id)) throw fail(`${INVENTORY} lists ${id} twice`);
    seen.add(id);
    if (typeof p.source !== "string" || !/^[\x20-\x7e]{1,1024}$/.test(p.source)) throw fail(`${id}: source must be one printable line`);
    if (p.manifestDigest !== undefined && (typeof p.manifestDigest !== "string" || !DIGEST.test(p.manifestDigest))) throw fail(`${id}: manifestDigest must be sha256:<64 hex>`);
    if (typeof p.files !== "object" || p.files === null || typeof p.files["plugin.wasm"] !== "string") throw fail(`${id} has no plugin.wasm`);
    if (Object.keys(p.files).length - 1 > MAX_EXTRAS) throw fail(`${id} lists ${Object.keys(p.files).length - 1} extra files; at most ${MAX_EXTRAS} are accepted`);
    for (const [f, sha] of Object.entries(p.files)) {
      if (f !== "plugin.wasm" && !isExtra(f)) throw fail(`${id}: ${f} is not a file a bundle may carry (plugin.wasm and ${EXTRAS_DESCRIPTION}; plugin.wasm.gz and metadata are always made from the module)`);
      if (typeof sha !== "string" || !HEX64.test(sha)) throw fail(`${id}: the sha256 of ${f} is not 64 hex digits`);
    }
  }
  if (value.aliases !== undefined && (typeof value.aliases !== "object" || value.aliases === null)) throw fail(`${INVENTORY}: aliases must be an object`);
  for (const name of Object.keys(value.aliases ?? {})) {
    const problem = checkName(name);
    if (problem) throw fail(`${INVENTORY}: alias plugin ${problem}`);
  }
  return { ...value, aliases: value.aliases ?? {} };
}
