import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { Miniflare } from "miniflare";
import { FileStore } from "../../src/storage/fs.ts";
import { S3Store } from "../../src/storage/s3.ts";
import type { S3Service } from "./global-setup.ts";

/** The three ways the app runs, each started for real and reached over HTTP on 127.0.0.1. */
export interface Target {
  readonly name: string;
  readonly url: string;
  stop(): Promise<void>;
}

export const ROOT = path.resolve(import.meta.dirname, "../..");
export const NODE_ENTRY = path.join(ROOT, "dist/node.js");
/** The worker runs under the compatibility date it is deployed with. */
export const COMPATIBILITY_DATE = /^compatibility_date = "([\d-]+)"$/m.exec(readFileSync(path.join(ROOT, "wrangler.toml"), "utf8"))![1]!;

export interface NodeServer extends Target {
  readonly process: ChildProcess;
  /** Everything the process printed so far (stdout and stderr). */
  output(): string;
  exited: Promise<number | null>;
}

/**
 * Spawns the built Node entry with exactly `env` (plus PATH, and HOST/PORT for a loopback port unless given)
 * and waits for it to listen. `cwd` runs the entry of another tree (the image test's).
 */
export interface StartOptions {
  /** Run as this user and group (root can), as a pod's securityContext or OpenShift's arbitrary UID would. */
  readonly user?: { readonly uid: number; readonly gid: number };
  /** `env` is the whole environment: no loopback host, port 0 or drain delay added. */
  readonly exactEnv?: boolean;
}

export async function startNode(name: string, env: Record<string, string>, cwd?: string, node = process.execPath, options: StartOptions = {}): Promise<NodeServer> {
  // As the image and `npm start` run it, and as anyone's own launcher would: `node dist/node.js`, nothing else.
  const child = spawn(node, cwd ? ["dist/node.js"] : [NODE_ENTRY], {
    ...(cwd ? { cwd } : {}),
    ...(options.user ?? {}),
    env: options.exactEnv ? env : { PATH: process.env.PATH ?? "", HOST: "127.0.0.1", PORT: "0", DRAIN_DELAY_SECONDS: "0", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout.on("data", (d) => (output += d));
  child.stderr.on("data", (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const url = await new Promise<string>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${output}`)), 10_000);
    const check = () => {
      const m = /listening on (http:\/\/[^\s]+)/.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    };
    child.stdout.on("data", check);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${output}`));
    });
  });
  return {
    name,
    url,
    process: child,
    output: () => output,
    exited,
    async stop() {
      if (child.exitCode === null) child.kill("SIGTERM");
      await exited;
    },
  };
}

export async function seedDirectory(objects: ReadonlyMap<string, Uint8Array>): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "plugin-store-"));
  const store = new FileStore(dir);
  for (const [key, bytes] of objects) await store.put(key, bytes);
  return dir;
}

export async function fileTarget(objects: ReadonlyMap<string, Uint8Array>, env: Record<string, string> = {}) {
  const dir = await seedDirectory(objects);
  return startNode("node + file", { STORE: `file:${dir}`, ...env });
}

export function s3Env(s3: S3Service): Record<string, string> {
  return { S3_ENDPOINT: s3.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
}

let buckets = 0;
/** A fresh bucket per target, with the objects under a prefix, as `s3://bucket/mirror/` users have. */
export async function seedBucket(s3: S3Service, objects: ReadonlyMap<string, Uint8Array>) {
  const bucket = `plugins-${process.pid}-${Date.now().toString(36)}-${++buckets}`;
  const store = new S3Store({
    bucket,
    prefix: "mirror/",
    endpoint: s3.endpoint,
    region: "us-east-1",
    forcePathStyle: true,
    credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey },
  });
  await store.ensureBucket();
  await Promise.all([...objects].map(([key, bytes]) => store.put(key, bytes)));
  await store.close();
  return { bucket, store: `s3://${bucket}/mirror` };
}

export async function s3Target(s3: S3Service, objects: ReadonlyMap<string, Uint8Array>, env: Record<string, string> = {}) {
  const { store } = await seedBucket(s3, objects);
  return startNode("node + s3", { STORE: store, ...s3Env(s3), ...env });
}

/** The worker bundle inside workerd (through Miniflare), with a local R2 bucket bound as PLUGINS. */
export async function workerdTarget(objects: ReadonlyMap<string, Uint8Array>, bindings: Record<string, string> = {}): Promise<Target & { mf: Miniflare }> {
  const mf = new Miniflare({
    modules: true,
    scriptPath: path.join(ROOT, "dist/worker.js"),
    compatibilityDate: COMPATIBILITY_DATE,
    r2Buckets: ["PLUGINS"],
    bindings: { STORE_PREFIX: "edge", ...bindings },
    host: "127.0.0.1",
    port: 0,
  });
  const url = (await mf.ready).toString().replace(/\/$/, "");
  // Miniflare types the binding with workers-types; we only need put.
  const bucket = (await mf.getR2Bucket("PLUGINS")) as unknown as { put(key: string, value: ArrayBuffer): Promise<unknown> };
  for (const [key, bytes] of objects) {
    // A plain ArrayBuffer: Miniflare's serialiser rejects views onto pooled Buffers.
    await bucket.put(`edge/${key}`, bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer);
  }
  return { name: "workerd + r2", url, mf, stop: () => mf.dispose() };
}
