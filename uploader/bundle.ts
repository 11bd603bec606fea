import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { gunzipSync, gzipSync } from "node:zlib";
import { parseAliases } from "../src/core/aliases.ts";
import { checkFile, checkName, checkVersion } from "../src/core/names.ts";
import { readTar, writeTar } from "./archive/tar.ts";
import { sha256Hex } from "./digest.ts";
import { ArtifactError } from "./errors.ts";
import { mapPool } from "./pool.ts";
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

/** Loads every job (a failure is reported, not bundled) and writes the bundle atomically. */
export async function exportBundle(
  jobs: readonly Job[],
  aliases: ReadonlyMap<string, Readonly<Record<string, string>>>,
  out: string,
  options: { concurrency?: number; onProgress?: (e: ProgressEvent) => void } = {},
): Promise<{ versions: VersionResult[]; failed: number }> {
  const progress = options.onProgress ?? (() => {});
  const loaded: PluginVersion[] = [];
  const versions = await mapPool(jobs, options.concurrency ?? 4, async (job): Promise<VersionResult> => {
    progress({ name: job.name, version: job.version, phase: "start", detail: job.source });
    try {
      const plugin = await job.load();
      loaded.push(plugin);
      const sha256 = sha256Hex(plugin.wasm);
      progress({ name: job.name, version: job.version, phase: "published", detail: sha256 });
      return { name: job.name, version: job.version, source: job.source, status: "published", sha256, size: plugin.wasm.length };
    } catch (error) {
      progress({ name: job.name, version: job.version, phase: "failed", detail: (error as Error).message });
      return { name: job.name, version: job.version, source: job.source, status: "failed", error: (error as Error).message };
    }
  });
  loaded.sort((a, b) => `${a.name}/${a.version}`.localeCompare(`${b.name}/${b.version}`));
  const files: [string, Uint8Array][] = [];
  const inventory: Inventory = {
    format: FORMAT,
    formatVersion: 1,
    created: new Date().toISOString(),
    plugins: loaded.map((p) => {
      const entries = new Map<string, Uint8Array>([["plugin.wasm", p.wasm], ...p.extras]);
      for (const [file, data] of entries) files.push([`plugins/${p.name}/${p.version}/${file}`, data]);
      return {
        name: p.name,
        version: p.version,
        source: p.source,
        ...(p.manifestDigest ? { manifestDigest: p.manifestDigest } : {}),
        files: Object.fromEntries([...entries].map(([f, d]) => [f, sha256Hex(d)])),
      };
    }),
    aliases: Object.fromEntries(aliases),
  };
  const archive = gzipSync(writeTar([[INVENTORY, new TextEncoder().encode(`${JSON.stringify(inventory, null, 2)}\n`)], ...files]));
  const temporary = `${out}.${randomBytes(4).toString("hex")}.partial`;
  try {
    await writeFile(temporary, archive);
    await rename(temporary, out); // a reader never finds a half-written bundle under the final name
  } finally {
    await rm(temporary, { force: true });
  }
  return { versions, failed: versions.filter((v) => v.status === "failed").length };
}

/** Reads and verifies a bundle completely before anything is published from it. */
export async function readBundle(file: string): Promise<{ jobs: Job[]; aliases: Map<string, Record<string, string>> }> {
  const fail = (why: string) => new ArtifactError(`bundle ${file}: ${why}`);
  let entries;
  try {
    entries = new Map([...readTar(gunzipSync(await readFile(file)))].filter((e) => e.type === "file").map((e) => [e.name, e.data]));
  } catch (error) {
    throw fail(`cannot be read as a .tar.gz (${(error as Error).message})`);
  }
  const raw = entries.get(INVENTORY);
  if (!raw) throw fail(`has no ${INVENTORY}`);
  let inventory: Inventory;
  try {
    inventory = JSON.parse(new TextDecoder().decode(raw)) as Inventory;
  } catch {
    throw fail(`${INVENTORY} is not JSON`);
  }
  if (inventory.format !== FORMAT || inventory.formatVersion !== 1) throw fail(`is not a ${FORMAT} version 1`);
  const listed = new Set([INVENTORY]);
  const jobs: Job[] = [];
  for (const p of inventory.plugins ?? []) {
    const problem = checkName(p.name) ?? checkVersion(p.version);
    if (problem) throw fail(problem);
    const data = new Map<string, Uint8Array>();
    for (const [name, sha256] of Object.entries(p.files ?? {})) {
      const bad = checkFile(name);
      if (bad) throw fail(bad);
      const key = `plugins/${p.name}/${p.version}/${name}`;
      const bytes = entries.get(key);
      if (!bytes) throw fail(`${key} is listed but missing`);
      if (sha256Hex(bytes) !== sha256) throw fail(`${key} does not match its sha256 in ${INVENTORY}: the bundle is damaged`);
      listed.add(key);
      data.set(name, bytes);
    }
    const wasm = data.get("plugin.wasm");
    if (!wasm) throw fail(`${p.name} ${p.version} has no plugin.wasm`);
    data.delete("plugin.wasm");
    const plugin: PluginVersion = { name: p.name, version: p.version, wasm, extras: data, source: p.source, ...(p.manifestDigest ? { manifestDigest: p.manifestDigest } : {}) };
    jobs.push({ name: p.name, version: p.version, source: p.source, load: async () => plugin });
  }
  const unlisted = [...entries.keys()].filter((k) => !listed.has(k));
  if (unlisted.length > 0) throw fail(`holds files its inventory does not list: ${unlisted.slice(0, 5).join(", ")}`);
  const aliases = new Map<string, Record<string, string>>();
  for (const [name, map] of Object.entries(inventory.aliases ?? {})) {
    aliases.set(name, parseAliases(name, JSON.stringify({ aliases: map })));
  }
  return { jobs, aliases };
}
