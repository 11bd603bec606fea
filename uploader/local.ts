import { readdir, readFile, stat } from "node:fs/promises";
import path from "node:path";
import { checkFile, checkName, checkVersion, isName, isVersion } from "../src/core/names.ts";
import { UsageError } from "./errors.ts";
import type { Job } from "./pipeline.ts";
import type { PluginVersion } from "./publish.ts";

/** Files published beside the module when a local version directory has them. */
const EXTRA = /^(README(_[A-Za-z-]+)?\.md|spec\.ya?ml|icon\.(png|svg))$/i;

/**
 * Local plugins built in-house: a directory in the reference layout (`<name>/<version>/plugin.wasm`,
 * optionally under `plugins/`), or one wasm file published as `name` and `version`.
 */
export async function localJobs(target: string, single: { name?: string; version?: string } = {}): Promise<Job[]> {
  const stats = await stat(target).catch(() => undefined);
  if (!stats) throw new UsageError(`${target} does not exist`);
  if (stats.isFile()) {
    const { name, version } = single;
    if (!name || !version) throw new UsageError(`a single file needs --name and --version (${target})`);
    const problem = checkName(name) ?? checkVersion(version);
    if (problem) throw new UsageError(problem);
    return [job(name, version, path.resolve(target), new Map())];
  }
  const root = (await stat(path.join(target, "plugins")).catch(() => undefined))?.isDirectory() ? path.join(target, "plugins") : target;
  const jobs: Job[] = [];
  for (const name of (await readdir(root)).filter(isName).sort()) {
    const pluginDir = path.join(root, name);
    if (!(await stat(pluginDir)).isDirectory()) continue;
    for (const version of (await readdir(pluginDir)).filter(isVersion).sort()) {
      const dir = path.join(pluginDir, version);
      const files = await readdir(dir).catch(() => [] as string[]);
      if (!files.includes("plugin.wasm")) continue;
      const extras = new Map(files.filter((f) => EXTRA.test(f) && !checkFile(f)).map((f) => [f, path.join(dir, f)]));
      jobs.push(job(name, version, path.join(dir, "plugin.wasm"), extras));
    }
  }
  if (jobs.length === 0) throw new UsageError(`${target} holds no <name>/<version>/plugin.wasm`);
  return jobs;
}

function job(name: string, version: string, wasmPath: string, extras: ReadonlyMap<string, string>): Job {
  const source = `file:${wasmPath}`;
  return {
    name,
    version,
    source,
    load: async (): Promise<PluginVersion> => ({
      name,
      version,
      wasm: await readFile(wasmPath),
      extras: new Map(await Promise.all([...extras].map(async ([f, p]) => [f, await readFile(p)] as const))),
      source,
    }),
  };
}
