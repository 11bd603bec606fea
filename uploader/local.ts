import { constants } from "node:fs";
import { lstat, open, readdir, realpath, stat } from "node:fs/promises";
import path from "node:path";
import { checkName, checkVersion, isName, isVersion } from "../src/core/names.ts";
import { ArtifactError, UsageError } from "./errors.ts";
import { checkExtras, EXTRAS_DESCRIPTION, isExtra, MAX_EXTRA_BYTES } from "./extras.ts";
import type { Job } from "./pipeline.ts";
import type { PluginVersion } from "./publish.ts";
import { MAX_WASM_BYTES } from "./wasm.ts";

/**
 * Local plugins built in-house: a directory in the reference layout (`<name>/<version>/plugin.wasm`,
 * optionally under `plugins/`), or one wasm file published as `name` and `version`.
 *
 * A source tree is untrusted like any plugin source: only regular files are read (a FIFO would
 * hang the run, a device would never end), within size caps, and a symbolic link is followed only
 * when it stays inside the imported directory (a README linked to /proc/self/environ would
 * publish the uploader's own secrets). A bad file fails its version with one clear line.
 */
export async function localJobs(target: string, single: { name?: string; version?: string } = {}): Promise<Job[]> {
  const stats = await stat(target).catch(() => undefined);
  if (!stats) throw new UsageError(`${target} does not exist`);
  if (stats.isFile()) {
    const { name, version } = single;
    if (!name || !version) throw new UsageError(`a single file needs --plugin-name and --plugin-version (${target})`);
    const problem = checkName(name) ?? checkVersion(version);
    if (problem) throw new UsageError(problem);
    // The operator named this file: it is read wherever a link points, but it must still be a regular file.
    const file = path.resolve(target);
    return [job(name, version, `file:${path.basename(file)}`, () => readRegular(file, MAX_WASM_BYTES, "plugin.wasm"), new Map())];
  }
  if (!stats.isDirectory()) throw new UsageError(`${target} is neither a directory nor a regular file`);
  const top = await realpath(target);
  const root = (await lstat(path.join(top, "plugins")).catch(() => undefined))?.isDirectory() ? path.join(top, "plugins") : top;
  const inside = async (p: string) => {
    const real = await realpath(p).catch(() => undefined);
    return real !== undefined && (real === top || real.startsWith(top + path.sep));
  };
  const jobs: Job[] = [];
  for (const name of (await readdir(root)).filter(isName).sort()) {
    const pluginDir = path.join(root, name);
    if (!(await inside(pluginDir)) || !(await stat(pluginDir)).isDirectory()) continue;
    for (const version of (await readdir(pluginDir)).filter(isVersion).sort()) {
      const dir = path.join(pluginDir, version);
      if (!(await inside(dir)) || !(await stat(dir).catch(() => undefined))?.isDirectory()) continue;
      const files = await readdir(dir).catch(() => [] as string[]);
      if (!files.includes("plugin.wasm")) continue;
      const relative = path.relative(top, path.join(dir, "plugin.wasm")).split(path.sep).join("/");
      const read = (file: string, max: number) => async () => {
        const full = path.join(dir, file);
        if (!(await inside(full))) throw new ArtifactError(`${relative.replace(/plugin\.wasm$/, file)} is a link that leaves ${target}; only files inside it are published`);
        return readRegular(full, max, file);
      };
      const extraFiles = files.filter(isExtra);
      const extras = new Map(extraFiles.map((f) => [f, read(f, MAX_EXTRA_BYTES)] as const));
      const sized = async () => checkExtras(await Promise.all(extraFiles.map(async (f) => ({ name: f, size: (await stat(path.join(dir, f)).catch(() => undefined))?.size ?? 0 }))), `${relative.replace(/\/plugin\.wasm$/, "")}`);
      jobs.push(job(name, version, `file:${relative}`, read("plugin.wasm", MAX_WASM_BYTES), extras, sized));
    }
  }
  if (jobs.length === 0) throw new UsageError(`${target} holds no <name>/<version>/plugin.wasm`);
  return jobs;
}

function job(
  name: string,
  version: string,
  source: string,
  wasm: () => Promise<Uint8Array>,
  extras: ReadonlyMap<string, () => Promise<Uint8Array>>,
  preflight: () => Promise<void> = async () => {},
): Job {
  return {
    name,
    version,
    source,
    load: async (): Promise<PluginVersion> => {
      await preflight();
      return {
        name,
        version,
        wasm: await wasm(),
        extras: new Map(await Promise.all([...extras].map(async ([f, read]) => [f, await read()] as const))),
        source,
      };
    },
  };
}

/** Reads a regular file of at most `max` bytes; never blocks on a FIFO or reads a device. */
async function readRegular(file: string, max: number, label: string): Promise<Uint8Array> {
  let handle;
  try {
    // O_NONBLOCK: opening a FIFO returns at once instead of waiting for a writer; fstat then refuses it.
    handle = await open(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new ArtifactError(`${label}: cannot be opened (${code === "ENOENT" ? "a dangling link or a missing file" : code})`);
  }
  try {
    const stats = await handle.stat();
    if (!stats.isFile()) throw new ArtifactError(`${label} is not a regular file (a FIFO, device or socket); only regular files are published`);
    if (stats.size > max) throw new ArtifactError(`${label} is ${stats.size} bytes; at most ${max} are accepted (extras: ${EXTRAS_DESCRIPTION})`);
    const buffer = Buffer.alloc(stats.size);
    const { bytesRead } = await handle.read(buffer, 0, stats.size, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
