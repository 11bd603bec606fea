/**
 * The uploader beside the reference server's build step, in one run against one loopback registry
 * (the CNCF distribution registry, images pushed by skopeo in the official oras format):
 * - the reference build step: an OCI client (skopeo) copies each image into a layout, then the
 *   wasm is extracted and its MD5 written to metadata.txt, one plugin after another, no upload;
 * - our `sync` of the same plugins to a file store and to S3 (pull, verify, gzip, publish);
 * - our `sync` of the default config (86 versions, the registry standing in for the official
 *   one through a mirror) to a file store, then again with nothing changed.
 * Every run is the CLI in its own process; its peak RSS and CPU seconds come from getrusage at exit.
 */
import { execFile, spawn, spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import path from "node:path";
import { promisify } from "node:util";
import defaultConfig from "../uploader/plugins.default.json" with { type: "json" };
import { S3Store } from "../src/storage/s3.ts";
import { mapPool } from "../uploader/pool.ts";
import { orasPlugin, writeOciLayout } from "../test/support/oci-layout.ts";
import { cpuSeconds } from "../test/support/process.ts";
import { push, startRegistry } from "../test/support/registry.ts";
import { goModule, goWasm, SIZES_MB } from "./plugin-set.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");
const OFFICIAL = "higress-registry.cn-hangzhou.cr.aliyuncs.com";
const TITLE = "org.opencontainers.image.title";

export interface UploaderRun {
  readonly ms: number;
  readonly cpu: number;
  /** CPU seconds by thread kind: `MainThread`, `libuv-worker` (gzip, gunzip, file I/O), V8's helpers. */
  readonly threads: Readonly<Record<string, number>>;
  readonly peakRss: number;
  readonly published: number;
  readonly unchanged: number;
  /** CPU seconds the S3 server (radosgw, on the same two cores) spent meanwhile. */
  readonly storeCpu?: number;
}

export interface UploaderFigures {
  readonly plugins: number;
  readonly defaultVersions: number;
  readonly defaultMb: number;
  readonly reference: { readonly ms: number; readonly bytes: number };
  readonly syncFile: UploaderRun;
  readonly syncS3: UploaderRun;
  readonly defaultFile: UploaderRun;
  readonly defaultNoop: UploaderRun;
}

export interface S3Target {
  readonly endpoint: string;
  readonly accessKeyId: string;
  readonly secretAccessKey: string;
}

export async function benchUploader(
  work: string,
  set: readonly { name: string; wasm: Uint8Array }[],
  s3: S3Target,
  log: (line: string) => void,
): Promise<UploaderFigures> {
  // Nothing is served meanwhile: the registry, the reference step and the uploader get both cores
  // (the orchestrator keeps itself, and so its children, on core 1 for the serving runs).
  const cores = (list: string) => spawnSync("taskset", ["-a", "-p", "-c", list, String(process.pid)], { stdio: "ignore" });
  cores("0,1");
  const registry = await startRegistry();
  try {
    // The images: the plugin set at :2.0.0, and every version of the default config under its own repository.
    log(`pushing ${set.length} plugins and the default config's versions to a local registry`);
    const go = await goWasm();
    const defaults = Object.entries(defaultConfig.plugins).flatMap(([name, p]) =>
      Object.entries(p.versions as Record<string, string>).map(([version, url]) => ({ name, version, url })),
    );
    // Default-config modules are made one at a time as they are pushed: 540 MB need not sit in memory.
    const images: { target: string; wasm: () => Uint8Array }[] = [
      ...set.map((p) => ({ target: `plugins/${p.name}:2.0.0`, wasm: () => p.wasm })),
      ...defaults.map((d, i) => ({ target: d.url.slice(`oci://${OFFICIAL}/`.length), wasm: () => goModule(go, SIZES_MB[i % SIZES_MB.length]!, 100 + i) })),
    ];
    const defaultMb = defaults.reduce((sum, _, i) => sum + SIZES_MB[i % SIZES_MB.length]!, 0);
    await mapPool(images, 4, async (image) => {
      const wasm = image.wasm();
      const layout = path.join(work, "push", image.target.replace(/[/:]/g, "_"));
      const { manifest, blobs } = orasPlugin(wasm);
      await writeOciLayout(layout, "latest", manifest, blobs);
      await push(`oci:${layout}:latest`, registry, image.target);
      await rm(layout, { recursive: true, force: true, maxRetries: 5 });
    });

    const env = { ...process.env, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
    const properties = path.join(work, "set.properties");
    await writeFile(properties, set.map((p) => `${p.name}=oci://${registry.host}/plugins/${p.name}:2.0.0\n`).join(""));
    const mirrored = path.join(work, "default.json");
    await writeFile(mirrored, JSON.stringify({ ...defaultConfig, mirrors: { [OFFICIAL]: registry.host } }));
    const sync = (config: string, to: string, ...extra: string[]) =>
      uploader(work, ["sync", "--config", config, "--to", to, "--plain-http", registry.host, "--json", ...extra], env);

    log("reference build step (skopeo copy to a layout, extract, MD5), one plugin after another");
    const reference = await referenceBuild(work, registry.host, set.map((p) => p.name));
    log(`reference build step: ${reference.ms} ms`);
    const syncFile = await sync(properties, path.join(work, "uploader-store"));
    log(`sync to a file store: ${JSON.stringify(syncFile)}`);
    const bucket = `uploader-${Date.now().toString(36)}`;
    // A fresh radosgw creates its data pools on the first writes (seconds of cluster set-up, not ours to time).
    const warm = new S3Store({ bucket, prefix: "", endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: s3 });
    await warm.ensureBucket();
    await warm.put("warm-up", new Uint8Array(1 << 20));
    await warm.delete("warm-up");
    await warm.close();
    const rgw = await radosgwClock();
    const syncS3 = { ...(await sync(properties, `s3://${bucket}`, "--s3-endpoint", s3.endpoint, "--s3-force-path-style", "true", "--create-bucket")), ...rgw() };
    log(`sync to S3: ${JSON.stringify(syncS3)}`);
    await emptyBucket(s3, bucket);
    const defaultStore = path.join(work, "uploader-default-store");
    const defaultFile = await sync(mirrored, defaultStore);
    log(`default config to a file store: ${JSON.stringify(defaultFile)}`);
    const defaultNoop = await sync(mirrored, defaultStore);
    log(`default config again, nothing changed: ${JSON.stringify(defaultNoop)}`);
    const setBytes = set.reduce((n, p) => n + p.wasm.length, 0);
    if (reference.bytes !== setBytes) throw new Error(`reference build step extracted ${reference.bytes} bytes of wasm, expected ${setBytes}`);
    for (const [what, r, expected] of [["set to file", syncFile, set.length], ["set to S3", syncS3, set.length], ["default config", defaultFile, defaults.length]] as const) {
      if (r.published !== expected) throw new Error(`${what}: ${r.published} versions published, expected ${expected}`);
    }
    if (defaultNoop.unchanged !== defaults.length) throw new Error(`no-op rerun: ${defaultNoop.unchanged} of ${defaults.length} unchanged`);
    return { plugins: set.length, defaultVersions: defaults.length, defaultMb, reference, syncFile, syncS3, defaultFile, defaultNoop };
  } finally {
    await registry.stop();
    cores("1");
  }
}

/** CPU seconds radosgw (on the same two cores) spends from now on, as `{ storeCpu }`; nothing when it runs elsewhere. */
export async function radosgwClock(): Promise<() => { storeCpu?: number }> {
  const pid = Number((await run("pgrep", ["-x", "radosgw"]).catch(() => ({ stdout: "" }))).stdout.split("\n")[0]);
  if (!pid) return () => ({});
  const before = cpuSeconds(pid);
  return () => ({ storeCpu: cpuSeconds(pid) - before });
}

/** The reference image's build step, as its pull script does it with oras, here with skopeo: sequential, no upload. */
async function referenceBuild(work: string, host: string, names: readonly string[]): Promise<{ ms: number; bytes: number }> {
  const out = path.join(work, "reference-plugins");
  const started = Date.now();
  let bytes = 0;
  for (const name of names) {
    const layout = path.join(work, "reference-layouts", name);
    await mkdir(layout, { recursive: true });
    await run("skopeo", ["copy", "--quiet", "--src-tls-verify=false", `docker://${host}/plugins/${name}:2.0.0`, `oci:${layout}:2.0.0`]);
    const blob = (digest: string) => path.join(layout, "blobs/sha256", digest.slice("sha256:".length));
    const index = JSON.parse(await readFile(path.join(layout, "index.json"), "utf8")) as { manifests: { digest: string }[] };
    const manifest = JSON.parse(await readFile(blob(index.manifests[0]!.digest), "utf8")) as { layers: { digest: string; annotations?: Record<string, string> }[] };
    const layer = manifest.layers.findLast((l) => l.annotations?.[TITLE] === "plugin.tar.gz");
    if (!layer) throw new Error(`${name}: no plugin.tar.gz layer`);
    const dir = path.join(out, name, "2.0.0");
    await mkdir(dir, { recursive: true });
    await run("tar", ["-xzf", blob(layer.digest), "-C", dir]);
    const wasm = await readFile(path.join(dir, "plugin.wasm"));
    bytes += wasm.length;
    const now = new Date().toISOString().replace("Z", "");
    const md5 = createHash("md5").update(wasm).digest("hex");
    await writeFile(path.join(dir, "metadata.txt"), `Plugin Name: ${name}\nSize: ${wasm.length} bytes\nLast Modified: ${now}\nCreated: ${now}\nMD5: ${md5}\n`);
  }
  return { ms: Date.now() - started, bytes };
}

/** The CLI in its own process, with its peak RSS and CPU seconds reported at exit by a preloaded hook. */
async function uploader(work: string, args: string[], env: NodeJS.ProcessEnv): Promise<UploaderRun> {
  const usage = path.join(work, `usage-${Date.now()}.json`);
  const started = Date.now();
  // BENCH_UPLOADER_FLAGS: Node flags for the measured runs (--cpu-prof --cpu-prof-dir=<dir> to profile them).
  const flags = process.env.BENCH_UPLOADER_FLAGS?.split(" ").filter(Boolean) ?? [];
  const child = spawn(process.execPath, [...flags, "--require", path.join(ROOT, "bench/usage-at-exit.cjs"), path.join(ROOT, "dist/uploader.js"), ...args], {
    env: { ...env, BENCH_USAGE_FILE: usage },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d: Buffer) => (stdout += d));
  child.stderr.on("data", (d: Buffer) => (stderr += d));
  const code = await new Promise<number | null>((resolve) => child.on("close", resolve));
  const ms = Date.now() - started;
  if (code !== 0) throw new Error(`plugin-uploader ${args.join(" ")} exited ${code}:\n${stderr.slice(-2000)}`);
  const report = JSON.parse(stdout) as { versions: { status: string }[] };
  const { maxRssMiB, cpu, threads } = JSON.parse(await readFile(usage, "utf8")) as { maxRssMiB: number; cpu: number; threads: Record<string, number> };
  const count = (status: string) => report.versions.filter((v) => v.status === status).length;
  return { ms, cpu, threads, peakRss: maxRssMiB, published: count("published"), unchanged: count("unchanged") };
}

async function emptyBucket(s3: S3Target, bucket: string) {
  // An S3 endpoint of memstore keeps every byte in memory: leave it as we found it.
  const store = new S3Store({ bucket, prefix: "", endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: s3 });
  const walk = async (prefix: string): Promise<void> => {
    const { prefixes, objects } = await store.list(prefix);
    for (const o of objects) await store.delete(o.key);
    for (const p of prefixes) await walk(`${prefix}${p}/`);
  };
  await walk("");
  await store.close();
}

/** The uploader's targets, as rows of the bench table: scenario, target, this run, met. */
export function uploaderRows(u: UploaderFigures): [string, string, string, boolean][] {
  const ratio = (r: UploaderRun) => r.ms / u.reference.ms;
  const run = (r: UploaderRun) => `${r.ms} ms, ${r.cpu.toFixed(1)} s CPU (main thread ${(r.threads.MainThread ?? 0).toFixed(1)} s), peak RSS ${r.peakRss.toFixed(0)} MiB`;
  return [
    [`uploader: sync of ${u.plugins} plugins to a file store (reference build step: ${u.reference.ms} ms)`, "<= 1.0x", `${run(u.syncFile)} = ${ratio(u.syncFile).toFixed(2)}x`, ratio(u.syncFile) <= 1.0],
    [`uploader: sync of ${u.plugins} plugins to S3 (radosgw)`, "<= 1.5x (issue 22)", `${run(u.syncS3)}${u.syncS3.storeCpu !== undefined ? `, radosgw ${u.syncS3.storeCpu.toFixed(1)} s CPU` : ""} = ${ratio(u.syncS3).toFixed(2)}x`, ratio(u.syncS3) <= 1.5],
    [`uploader: default config (${u.defaultVersions} versions, ${u.defaultMb.toFixed(0)} MB) to a file store`, "measured", run(u.defaultFile), true],
    ["uploader: peak RSS of that sync, --concurrency 4", "<= 384 MiB", `${u.defaultFile.peakRss.toFixed(0)} MiB`, u.defaultFile.peakRss <= 384],
    ["uploader: no-op re-sync of the default config", "<= 0.5 s", run(u.defaultNoop), u.defaultNoop.ms <= 500],
  ];
}
