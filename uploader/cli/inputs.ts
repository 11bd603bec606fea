// The command line's options made into what the library takes: stores, registry access, cluster access.
import { EnvReader } from "../../src/config/env.ts";
import { parseStoreLocation, LocationError } from "../../src/storage/location.ts";
import { openStore } from "../../src/storage/open.ts";
import { PolicyStore } from "../../src/storage/policy.ts";
import { S3Store } from "../../src/storage/s3.ts";
import type { WritableStore } from "../../src/storage/store.ts";
import { waitForStore } from "../bucket.ts";
import type { CheckOptions } from "../cluster/command.ts";
import type { ClusterOptions } from "../cluster/kube.ts";
import type { SyncPlan } from "../config.ts";
import { UsageError } from "../errors.ts";
import { dockerConfigCredentials, type Credentials } from "../oci/auth.ts";
import { applyMirrors } from "../oci/reference.ts";
import type { RegistryOptions } from "../sync.ts";
import type { Values } from "./spec.ts";

/** What every cluster command checks against: the cluster reader's options, --server-url and --console-pattern. */
export function checkInputs(values: Values): Omit<CheckOptions, "store"> {
  return {
    ...clusterOptions(values),
    serverUrls: values["server-url"] ?? [],
    ...(values["console-pattern"] ? { consolePattern: values["console-pattern"] } : {}),
  };
}

/** --kubeconfig, --context, --namespace, --controller, as the cluster reader takes them. */
function clusterOptions(values: Values): ClusterOptions {
  const controller = values.controller;
  let parsed: ClusterOptions["controller"];
  if (controller === "none") parsed = false;
  else if (controller !== undefined) {
    const m = /^([a-z0-9-]{1,63})\/([a-z0-9.-]{1,253})$/.exec(controller);
    if (!m) throw new UsageError(`--controller takes <namespace>/<deployment> or none, got "${controller}"`);
    parsed = { namespace: m[1]!, name: m[2]! };
  }
  if (values.namespace !== undefined && !/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/.test(values.namespace)) {
    throw new UsageError(`--namespace ${values.namespace} is not a Kubernetes namespace name`);
  }
  const timeout = values["cluster-timeout"] === undefined ? 30 : Number(values["cluster-timeout"]);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 600) throw new UsageError("--cluster-timeout takes a whole number of seconds from 1 to 600");
  return {
    timeoutMs: timeout * 1000,
    ...(values.kubeconfig ? { kubeconfig: values.kubeconfig } : {}),
    ...(values.context ? { context: values.context } : {}),
    ...(values.namespace ? { namespace: values.namespace } : {}),
    ...(parsed !== undefined ? { controller: parsed } : {}),
  };
}

/** The S3 flags, as the variables they stand for; a flag wins over the environment. */
const S3_FLAGS = {
  "s3-endpoint": "S3_ENDPOINT",
  "s3-region": "S3_REGION",
  "s3-force-path-style": "S3_FORCE_PATH_STYLE",
  "s3-access-key-id": "AWS_ACCESS_KEY_ID",
  "s3-secret-access-key": "AWS_SECRET_ACCESS_KEY",
} as const;

/** For commands that only read the store (verify, list, check) or rebuild what is in it (index): a mistyped --to is an error, never a new empty store. */
export const READ_ONLY = { create: false } as const;

/**
 * The store to publish to, behind the server's policy layer: a write or read that fails with a
 * 5xx, a reset or a timeout is retried with backoff (a whole-object PUT is idempotent); one that
 * still fails fails its version, which the pipeline then rolls back.
 */
export async function target(values: Values, env: NodeJS.ProcessEnv, options: { create: boolean } = { create: true }): Promise<WritableStore> {
  const store = await openTarget(values, env, options);
  return new PolicyStore(store, { timeoutMs: 10 * 60_000, stallMs: 120_000, retries: 4, backoffMs: 250, failureThreshold: 50, ...verbose(values) });
}

export async function openTarget(values: Values, env: NodeJS.ProcessEnv, options: { create: boolean } = { create: true }): Promise<WritableStore> {
  const overrides = Object.fromEntries(
    Object.entries(S3_FLAGS).flatMap(([flag, variable]) => {
      const value = values[flag as keyof typeof S3_FLAGS];
      return value === undefined ? [] : [[variable, value]];
    }),
  );
  const read = new EnvReader({ ...env, ...overrides });
  const text = values.to ?? read.get("STORE");
  if (!text) throw new UsageError("no target store: pass --to <store> or set STORE");
  let location;
  try {
    location = parseStoreLocation(text);
  } catch (error) {
    throw new UsageError(`--to ${text}: ${(error as Error).message}`);
  }
  const s3 = read.s3();
  read.check();
  let store;
  try {
    store = await openStore(location, s3, options);
  } catch (error) {
    if (error instanceof LocationError) throw new UsageError(`--to ${text}: ${error.message}${options.create ? "" : " (this command does not create a store)"}`);
    throw error;
  }
  const wait = seconds(values, "wait-for-store", 3600);
  if (wait > 0) await waitForStore(store, wait, (line) => process.stderr.write(`${line}\n`));
  if (values["create-bucket"] && store instanceof S3Store) await store.ensureBucket();
  return store;
}

export async function registryOptions(values: Values, env: NodeJS.ProcessEnv, plan: SyncPlan): Promise<RegistryOptions> {
  const pairs = (list: string[] | undefined, flag: string) =>
    (list ?? []).map((item) => {
      const eq = item.indexOf("=");
      if (eq <= 0 || eq === item.length - 1) throw new UsageError(`${flag} takes <left>=<right>, got "${item}"`);
      return [item.slice(0, eq), item.slice(eq + 1)] as const;
    });
  const mirrors = new Map(pairs(values.mirror, "--mirror"));
  const merged = new Map([...plan.mirrors, ...mirrors]); // as registryJobs applies them
  const hosts = plan.sources.map((s) => applyMirrors(s.ref, merged).host);
  const credentials = await dockerConfigCredentials([...new Set(hosts)]);
  const fromStdin = values["password-stdin"] ? await readStdin() : undefined;
  for (const [host, userPass] of pairs(values.credentials, "--credentials")) {
    const colon = userPass.indexOf(":");
    if (colon === 0) throw new UsageError(`--credentials takes <host>=<user>[:<password>]`);
    if (colon < 0 && fromStdin === undefined) throw new UsageError(`--credentials ${host}=<user> needs a password: add :<password> or --password-stdin`);
    credentials.set(host, colon < 0 ? { username: userPass, password: fromStdin! } : { username: userPass.slice(0, colon), password: userPass.slice(colon + 1) });
  }
  if (env.REGISTRY_USERNAME && !env.REGISTRY_PASSWORD) throw new UsageError("REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not");
  if (env.REGISTRY_PASSWORD && !env.REGISTRY_USERNAME) throw new UsageError("REGISTRY_PASSWORD is set but REGISTRY_USERNAME is not");
  const fallback: Credentials | undefined =
    env.REGISTRY_USERNAME && env.REGISTRY_PASSWORD ? { username: env.REGISTRY_USERNAME, password: env.REGISTRY_PASSWORD } : undefined;
  // Like Docker, credentials belong to hosts: REGISTRY_HOSTS names them, and without it they go
  // nowhere (a config that lists one more registry must not hand it the password).
  const scope = env.REGISTRY_HOSTS?.split(",").map((h) => h.trim()).filter(Boolean) ?? [];
  const timeout = values["registry-timeout"] === undefined ? 60 : Number(values["registry-timeout"]);
  if (!Number.isInteger(timeout) || timeout < 1 || timeout > 3600) throw new UsageError("--registry-timeout takes a whole number of seconds from 1 to 3600");
  return {
    mirrors,
    timeoutMs: timeout * 1000,
    ...verbose(values),
    plainHttp: new Set(values["plain-http"] ?? []),
    credentials,
    ...(fallback ? { defaultCredentials: fallback, defaultCredentialHosts: new Set(scope) } : {}),
  };
}

/** The password piped in (`... | plugin-uploader sync --credentials host=user --password-stdin`), without its final newline. */
async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString("utf8").replace(/\r?\n$/, "");
  if (text === "") throw new UsageError("--password-stdin: nothing on standard input");
  return text;
}

/** A `--<flag> <seconds>` option; 0 when absent. */
export function seconds(values: Values, flag: "wait-for-lease" | "wait-for-store" | "wait", max: number): number {
  const text = values[flag];
  if (text === undefined) return 0;
  const value = Number(text);
  if (!/^\d+$/.test(text) || value > max) throw new UsageError(`--${flag} takes a whole number of seconds from 0 to ${max}`);
  return value;
}

function verbose(values: Values): { log?: (line: string) => void } {
  return values.verbose ? { log: (line) => process.stderr.write(`  ${line}\n`) } : {};
}
