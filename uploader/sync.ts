import type { WritableStore } from "../src/storage/store.ts";
import type { SyncPlan } from "./config.ts";
import type { Credentials } from "./oci/auth.ts";
import { RegistryClient } from "./oci/client.ts";
import { imageDigest, pullPlugin } from "./oci/pull.ts";
import { applyMirrors, formatReference } from "./oci/reference.ts";
import { runPipeline, type Job, type PipelineOptions, type Report } from "./pipeline.ts";

export interface RegistryOptions {
  /** Registry hosts reached over plain HTTP. */
  readonly plainHttp?: ReadonlySet<string>;
  /** Mirrors from the command line; they win over the config's. */
  readonly mirrors?: ReadonlyMap<string, string>;
  /** Credentials by host from flags, environment or Docker config; the config's win. */
  readonly credentials?: ReadonlyMap<string, Credentials>;
  /** Credentials for registries without their own (REGISTRY_USERNAME / REGISTRY_PASSWORD)... */
  readonly defaultCredentials?: Credentials;
  /** ...among these hosts only (REGISTRY_HOSTS); unset: none. */
  readonly defaultCredentialHosts?: ReadonlySet<string>;
  /** Retry pacing of the registry client (tests shorten it). */
  readonly backoffMs?: number;
  /** Limit of one registry request, body included (a registry that trickles bytes is cut off). */
  readonly timeoutMs?: number;
  /** `--verbose`: every registry exchange. */
  readonly log?: (line: string) => void;
}

export interface SyncOptions extends RegistryOptions, PipelineOptions {
  readonly store: WritableStore;
  readonly plan: SyncPlan;
}

/** One job per planned version, each pulling from its (mirrored) registry reference. */
export function registryJobs(plan: SyncPlan, options: RegistryOptions): Job[] {
  const mirrors = new Map([...plan.mirrors, ...(options.mirrors ?? [])]);
  const sources = plan.sources.map((s) => ({ ...s, ref: applyMirrors(s.ref, mirrors) }));
  const perRepository = new Map(
    sources.filter((s) => s.credentials).map((s) => [`${s.ref.host}/${s.ref.repository}`, s.credentials!]),
  );
  const client = new RegistryClient({
    plainHttp: options.plainHttp ?? new Set(),
    credentials: (host, repository) =>
      perRepository.get(`${host}/${repository}`) ??
      plan.credentials.get(host) ??
      options.credentials?.get(host) ??
      (options.defaultCredentialHosts?.has(host) ? options.defaultCredentials : undefined),
    credentialHint: (host) =>
      options.defaultCredentials && !options.defaultCredentialHosts?.has(host)
        ? `REGISTRY_USERNAME and REGISTRY_PASSWORD are set, but go only to the hosts in REGISTRY_HOSTS, which does not name ${host}: add it (REGISTRY_HOSTS=${[...(options.defaultCredentialHosts ?? []), host].join(",")}) or use --credentials ${host}=<user>`
        : undefined,
    ...(options.backoffMs !== undefined ? { backoffMs: options.backoffMs } : {}),
    ...(options.timeoutMs !== undefined ? { timeoutMs: options.timeoutMs } : {}),
    ...(options.log ? { log: options.log } : {}),
  });
  return sources.map((s) => ({
    name: s.name,
    version: s.version,
    source: formatReference(s.ref),
    load: async () => ({ name: s.name, version: s.version, ...(await pullPlugin(client, s.ref)) }),
    // A rerun asks the registry for the manifest only: the same image digest as published means nothing to download.
    // (The digest names the content, so a moved mirror with the same image is no change either.)
    published: async (stored) => stored.manifestDigest !== undefined && stored.manifestDigest === (await imageDigest(client, s.ref)),
  }));
}

/** Mirrors the planned registry plugins into the store. */
export function sync(options: SyncOptions): Promise<Report> {
  return runPipeline(options.store, registryJobs(options.plan, options), options.plan.aliases, options);
}
