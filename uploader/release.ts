import { readFile } from "node:fs/promises";
import * as v from "valibot";
import { isName, isVersion } from "../src/core/names.ts";
import { readText, type Store, type WritableStore } from "../src/storage/store.ts";
import type { PluginSource, SyncPlan } from "./config.ts";
import { UsageError } from "./errors.ts";
import { DIGEST, parseReference } from "./oci/reference.ts";
import { stands, type Report } from "./pipeline.ts";
import { putVerified } from "./publish.ts";

/**
 * Release-exact mirroring. For every gateway release the Higress project publishes a snapshot of
 * the plugins it ships (`plugins/release/snapshots/<version>.json` in the Higress repository):
 * per plugin its version, OCI reference, the manifest digest to pull, the Console's name for it
 * and the plugin server's path. A sync from snapshots pulls every plugin by digest (never by a
 * tag that can move), publishes it under the snapshot's version beside every older one, and
 * records the release in the store, so `check` can say which releases the store covers.
 */

const SNAPSHOT_SCHEMA = v.looseObject({
  schemaVersion: v.literal(1, "schemaVersion must be 1 (a snapshot format this uploader reads)"),
  gatewayVersion: v.pipe(v.string(), v.check(isVersion, "gatewayVersion must be a version like 2.2.5")),
  previousRelease: v.optional(v.pipe(v.string(), v.check(isVersion, "previousRelease must be a version"))),
  plugins: v.pipe(
    v.array(
      v.looseObject({
        logicalId: v.pipe(v.string(), v.check(isName, "logicalId must be a plugin name")),
        version: v.pipe(v.string(), v.check(isVersion, "version must be a version like 2.0.2")),
        ociRef: v.pipe(v.string(), v.minLength(1, "ociRef must name an image")),
        digest: v.pipe(v.string(), v.regex(DIGEST, "digest must be sha256:<64 hex digits> (the manifest to pull)")),
        consumers: v.optional(
          v.looseObject({
            console: v.optional(v.looseObject({ propertyKey: v.optional(v.pipe(v.string(), v.check(isName, "console.propertyKey must be a plugin name"))) })),
            pluginServer: v.optional(v.looseObject({ httpPath: v.pipe(v.string(), v.check(isName, "pluginServer.httpPath must be a plugin name")) })),
          }),
        ),
      }),
    ),
    v.minLength(1, "plugins lists no plugin"),
  ),
});

export interface ReleasePlugin {
  /** The name served: the plugin server's path, else the Console's name, else the logical id. */
  readonly name: string;
  readonly version: string;
  readonly source: PluginSource;
  readonly digest: string;
}

export interface Release {
  readonly gatewayVersion: string;
  readonly previousRelease?: string;
  readonly plugins: readonly ReleasePlugin[];
}

/** Where a message names a field: `plugins[3].digest`. */
const at = (issue: v.BaseIssue<unknown>) =>
  (issue.path ?? []).map((p) => (typeof p.key === "number" ? `[${p.key}]` : `${p.key === undefined ? "" : "."}${String(p.key)}`)).join("").replace(/^\./, "");

export function parseSnapshot(text: string, where: string): Release {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`release snapshot ${where} is not JSON (${(error as Error).message})`);
  }
  const parsed = v.safeParse(SNAPSHOT_SCHEMA, raw);
  if (!parsed.success) {
    const first = parsed.issues.slice(0, 5).map((i) => `${at(i) || "(top)"}: ${i.input === undefined ? "is missing" : i.message}`);
    throw new UsageError(`release snapshot ${where} is not one this uploader can mirror: ${first.join("; ")}`);
  }
  const snapshot = parsed.output;
  const seen = new Set<string>();
  const plugins = snapshot.plugins.map((p, i): ReleasePlugin => {
    const name = p.consumers?.pluginServer?.httpPath ?? p.consumers?.console?.propertyKey ?? p.logicalId;
    let ref;
    try {
      ref = parseReference(p.ociRef);
    } catch (error) {
      throw new UsageError(`release snapshot ${where}: plugins[${i}].ociRef: ${(error as Error).message}`);
    }
    if (seen.has(`${name}/${p.version}`)) throw new UsageError(`release snapshot ${where} lists ${name} ${p.version} twice`);
    seen.add(`${name}/${p.version}`);
    // By digest: the tag stays in the reference for people to read, the digest decides what is pulled.
    return { name, version: p.version, digest: p.digest, source: { name, version: p.version, ref: { ...ref, digest: p.digest } } };
  });
  return { gatewayVersion: snapshot.gatewayVersion, ...(snapshot.previousRelease ? { previousRelease: snapshot.previousRelease } : {}), plugins };
}

const MAX_SNAPSHOT_BYTES = 4 * 1024 * 1024;

/** A snapshot from a file or an https:// URL (the Higress repository's raw file, or a mirror of it). */
export async function loadSnapshot(location: string): Promise<Release> {
  let text: string;
  if (/^https?:\/\//.test(location)) {
    let res: Response;
    try {
      res = await fetch(location, { signal: AbortSignal.timeout(60_000) });
    } catch (error) {
      throw new UsageError(`release snapshot ${location} cannot be fetched: ${(error as { cause?: { code?: string } }).cause?.code ?? (error as Error).message}`);
    }
    if (!res.ok) throw new UsageError(`release snapshot ${location}: HTTP ${res.status}`);
    const bytes = new Uint8Array(await res.arrayBuffer());
    if (bytes.length > MAX_SNAPSHOT_BYTES) throw new UsageError(`release snapshot ${location} is over ${MAX_SNAPSHOT_BYTES} bytes`);
    text = new TextDecoder().decode(bytes);
  } else {
    try {
      text = await readFile(location, "utf8");
    } catch (error) {
      throw new UsageError(`cannot read release snapshot ${location}: ${(error as NodeJS.ErrnoException).code ?? error}`);
    }
  }
  return parseSnapshot(text, location);
}

/** One plan of every release's plugins; a version two releases share is pulled once (the same digest, or a conflict is reported). */
export function releasePlan(releases: readonly Release[]): SyncPlan {
  const sources = new Map<string, PluginSource>();
  for (const release of releases) {
    for (const p of release.plugins) {
      const key = `${p.name}/${p.version}`;
      const other = sources.get(key);
      if (other && other.ref.digest !== p.digest) {
        throw new UsageError(`${p.name} ${p.version} has two digests in the snapshots (${other.ref.digest} and ${p.digest} in ${release.gatewayVersion}): a version is one set of bytes`);
      }
      sources.set(key, p.source);
    }
  }
  return { sources: [...sources.values()], aliases: new Map(), mirrors: new Map(), credentials: new Map() };
}

/** What the store records of a mirrored release (`releases/<gatewayVersion>.json`). */
export interface RecordedRelease {
  readonly gatewayVersion: string;
  readonly previousRelease?: string;
  readonly recorded: string;
  readonly plugins: readonly { readonly name: string; readonly version: string; readonly digest: string; readonly sha256: string }[];
}

export const RELEASES = "releases/";
const releaseKey = (version: string) => `${RELEASES}${version}.json`;

/** Records each release whose every plugin the run left published, and says of the others what is missing. */
export async function recordReleases(store: WritableStore, releases: readonly Release[], report: Report, log: (line: string) => void): Promise<void> {
  const sha256s = new Map(report.versions.filter(stands).map((r) => [`${r.name}/${r.version}`, r.sha256]));
  for (const release of releases) {
    const lacking = release.plugins.filter((p) => !sha256s.has(`${p.name}/${p.version}`));
    if (lacking.length > 0) {
      log(`${"failed".padEnd(13)} release ${release.gatewayVersion}  not recorded: ${lacking.map((p) => `${p.name} ${p.version}`).join(", ")} not published`);
      continue;
    }
    await recordRelease(store, release, sha256s);
    log(`${"release".padEnd(13)} ${release.gatewayVersion}  recorded: ${release.plugins.length} plugins, by digest`);
  }
}

async function recordRelease(store: WritableStore, release: Release, sha256s: ReadonlyMap<string, string>): Promise<void> {
  const record: RecordedRelease = {
    gatewayVersion: release.gatewayVersion,
    ...(release.previousRelease ? { previousRelease: release.previousRelease } : {}),
    recorded: new Date().toISOString(),
    plugins: release.plugins.map((p) => ({ name: p.name, version: p.version, digest: p.digest, sha256: sha256s.get(`${p.name}/${p.version}`)! })),
  };
  await putVerified(store, releaseKey(release.gatewayVersion), new TextEncoder().encode(`${JSON.stringify(record, null, 2)}\n`));
}

export async function recordedReleases(store: Store): Promise<RecordedRelease[]> {
  const listing = await store.list(RELEASES);
  const releases: RecordedRelease[] = [];
  for (const object of listing.objects) {
    const stored = await store.get(object.key);
    if (!stored) continue;
    try {
      const record = JSON.parse(await readText(stored)) as RecordedRelease;
      if (isVersion(record.gatewayVersion) && Array.isArray(record.plugins)) releases.push(record);
    } catch {
      // not one of ours
    }
  }
  return releases;
}
