import { randomBytes } from "node:crypto";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import * as v from "valibot";
import { sha256Hex } from "./digest.ts";
import { ArtifactError, UsageError } from "./errors.ts";
import { DIGEST } from "./oci/reference.ts";
import { stands, type Job, type Report } from "./pipeline.ts";

/**
 * A lock of what a sync published, like the reference server's lockfile: per version its
 * source, the manifest digest it was pulled from and the module's sha256. `--lock FILE` writes
 * it after a run; `--lock FILE --locked` holds a later run to it: a registry that now answers
 * another digest or other bytes for a locked version, a version the plan adds or drops, each
 * fails by name, and nothing of it is published.
 */

const LOCK_SCHEMA = v.strictObject({
  lockVersion: v.literal(1),
  generated: v.string(),
  versions: v.array(
    v.strictObject({
      name: v.string(),
      version: v.string(),
      source: v.string(),
      manifestDigest: v.optional(v.pipe(v.string(), v.regex(DIGEST))),
      sha256: v.pipe(v.string(), v.regex(/^[0-9a-f]{64}$/)),
    }),
  ),
});

export type Lock = v.InferOutput<typeof LOCK_SCHEMA>;
type Entry = Lock["versions"][number];

export async function readLock(file: string): Promise<Lock> {
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`--locked: cannot read the lock ${file}: ${(error as NodeJS.ErrnoException).code ?? error} (write one first with --lock ${file})`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new UsageError(`the lock ${file} is not JSON`);
  }
  const parsed = v.safeParse(LOCK_SCHEMA, raw);
  if (!parsed.success) throw new UsageError(`the lock ${file} is not a plugin-uploader lock: ${parsed.issues.slice(0, 3).map((i) => `${v.getDotPath(i) ?? "(top)"}: ${i.message}`).join("; ")}`);
  return parsed.output;
}

/** The jobs held to the lock, and the failures of versions the plan and the lock disagree on. */
export function lockedJobs(jobs: readonly Job[], lock: Lock, file: string): { jobs: Job[]; drift: { name: string; version: string; source: string; error: string }[] } {
  const entries = new Map(lock.versions.map((e) => [`${e.name}/${e.version}`, e]));
  const drift: { name: string; version: string; source: string; error: string }[] = [];
  const held: Job[] = [];
  for (const job of jobs) {
    const entry = entries.get(`${job.name}/${job.version}`);
    entries.delete(`${job.name}/${job.version}`);
    if (!entry) {
      drift.push({ name: job.name, version: job.version, source: job.source, error: `${job.name} ${job.version} is not in the lock ${file} (--locked publishes only what it holds)` });
      continue;
    }
    held.push(hold(job, entry, file));
  }
  for (const e of entries.values()) drift.push({ name: e.name, version: e.version, source: e.source, error: `${e.name} ${e.version} is in the lock ${file} but no longer in the plan` });
  return { jobs: held, drift };
}

function hold(job: Job, entry: Entry, file: string): Job {
  const drifted = (what: string, locked: string, now: string) =>
    new ArtifactError(`${job.name} ${job.version} drifted from the lock ${file}: its ${what} is ${now}, the lock holds ${locked}`);
  return {
    ...job,
    ...(job.published ? { published: async (stored) => stored.sha256 === entry.sha256 && stored.manifestDigest === entry.manifestDigest && job.published!(stored) } : {}),
    load: async () => {
      const plugin = await job.load();
      if (entry.manifestDigest && plugin.manifestDigest && plugin.manifestDigest !== entry.manifestDigest) throw drifted("manifest digest", entry.manifestDigest, plugin.manifestDigest);
      const sha256 = sha256Hex(plugin.wasm);
      if (sha256 !== entry.sha256) throw drifted("module sha256", entry.sha256, sha256);
      return plugin;
    },
  };
}

/** Writes the lock of every version the run left published (atomically: a reader never sees half of it). */
export async function writeLock(file: string, report: Report): Promise<number> {
  const versions = report.versions
    .filter(stands)
    .map((r) => ({ name: r.name, version: r.version, source: r.source, ...(r.manifestDigest ? { manifestDigest: r.manifestDigest } : {}), sha256: r.sha256 }))
    .sort((a, b) => `${a.name}/${a.version}`.localeCompare(`${b.name}/${b.version}`));
  const lock: Lock = { lockVersion: 1, generated: new Date().toISOString(), versions };
  const temporary = `${file}.${randomBytes(4).toString("hex")}.partial`;
  try {
    await writeFile(temporary, `${JSON.stringify(lock, null, 2)}\n`);
    await rename(temporary, file);
  } finally {
    await rm(temporary, { force: true });
  }
  return versions.length;
}
