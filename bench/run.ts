/**
 * `npm run bench`: our Node server (file store and S3 store), the worker on workerd, and the
 * reference architecture (nginx serving the same tree: as the reference image runs it, sendfile
 * without gzip, and with gzip_static) side by side on this machine, with a plugin set shaped like
 * the official one. Servers are pinned to core 0, clients (wrk, the Go burst client) to core 1;
 * the figures the clients cannot distort are the servers' CPU seconds (/proc/<pid>/stat) and peak
 * RSS (VmHWM, reset before each measurement), reported beside req/s. Prints a Markdown table of
 * the targets of the serving issue and writes everything to reports/bench.json.
 *
 * Needs nginx, wrk, go and radosgw (scripts/install-system-deps.sh), or BENCH_S3_ENDPOINT with
 * BENCH_S3_ACCESS_KEY_ID / BENCH_S3_SECRET_ACCESS_KEY for an S3 endpoint already running.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { closeSync, openSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Miniflare } from "miniflare";
import { FileStore } from "../src/storage/fs.ts";
import { S3Store } from "../src/storage/s3.ts";
import { readBytes, type WritableStore } from "../src/storage/store.ts";
import { localJobs } from "../uploader/local.ts";
import { runPipeline } from "../uploader/pipeline.ts";
import { anonRssMiB, cpuSeconds, peakRssMiB, threadCpuSeconds } from "../test/support/process.ts";
import { faultProxy, freePort } from "../test/support/net.ts";
import { pluginSet, removePublished, SIZES_MB, writePluginSet } from "./plugin-set.ts";
import { benchUploader, radosgwClock, type S3Target, uploaderRows } from "./uploader.ts";
import { wrk as measure, type Sample } from "./wrk.ts";
import { benchWorkerCpu, pinNewWorkerd, workerCpuRows, workerCpuTable } from "./worker-cpu.ts";
import { ceilingTable, identityCeiling } from "./identity-ceiling.ts";
import { publishVersion } from "../uploader/publish.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");
import { COMPATIBILITY_DATE } from "../test/support/targets.ts";
const DURATION = process.env.BENCH_SECONDS ?? "8";
const CONNECTIONS = process.env.BENCH_CONNECTIONS ?? "32";
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 20);
const CACHE_MAX_MB = 128; // the default, which the chart keeps

for (const tool of ["nginx", "wrk", "go", "taskset"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
    console.error(`${tool} is missing: run scripts/install-system-deps.sh`);
    process.exit(2);
  }
}
const log = (line: string) => console.error(`[bench] ${line}`);
// The orchestrator (and everything it starts without taskset) stays off the servers' core.
spawnSync("taskset", ["-a", "-p", "-c", "1", String(process.pid)], { stdio: "ignore" });

interface Server {
  readonly name: string;
  readonly url: string;
  /** Processes whose CPU and memory count (nginx: master and worker). */
  readonly pids: () => number[];
}

const cpu = (s: Server) => s.pids().reduce((sum, pid) => sum + cpuSeconds(pid), 0);
const peak = (s: Server) => Math.max(...s.pids().map(peakRssMiB));
/** Resets VmHWM (Linux: writing 5 to clear_refs), so a peak belongs to one measurement. */
const resetPeak = (s: Server) => s.pids().forEach((pid) => writeFileSync(`/proc/${pid}/clear_refs`, "5"));

async function waitFor(url: string) {
  for (let i = 0; i < 200; i++) {
    if (await fetch(url).then((r) => r.status < 500, () => false)) return;
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

/** wrk with the bench's connections and duration, counting the server's CPU. */
const wrk = (server: Server, urlPath: string, headers: string[] = []): Promise<Sample> =>
  measure(`${server.url}${urlPath}`, { headers, connections: CONNECTIONS, seconds: DURATION, cpu: () => cpu(server) });

interface Burst {
  readonly ms: number;
  readonly errors: number;
  readonly cpu: number;
  readonly peakRss: number;
  /** The peak of anonymous memory (RSS without the runtime's code pages), sampled every 20 ms. */
  readonly peakAnon: number;
  readonly firstError?: string;
}

function countBy(values: readonly string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const v of values) counts[v] = (counts[v] ?? 0) + 1;
  return counts;
}

/** Samples a server's anonymous memory until stopped; the kernel keeps no high-water mark of it. */
function anonSampler(server: Server): () => number {
  let top = 0;
  const sample = () => {
    try {
      top = Math.max(top, server.pids().reduce((sum, pid) => sum + anonRssMiB(pid), 0));
    } catch {
      // a process gone meanwhile
    }
  };
  sample();
  const timer = setInterval(sample, 20);
  return () => {
    clearInterval(timer);
    sample();
    return top;
  };
}

async function burst(server: Server, identity: boolean, clients = CLIENTS, list = listFile): Promise<Burst> {
  resetPeak(server);
  const anon = anonSampler(server);
  const before = cpu(server);
  const { stdout } = await run("taskset", ["-c", "1", burstBinary, `-base=${server.url}`, `-list=${list}`, `-clients=${clients}`, ...(identity ? ["-identity"] : [])], { maxBuffer: 1 << 20 });
  const out = JSON.parse(stdout) as { ms: number; errors: number; firstError?: string };
  await sleep(200);
  return { ms: out.ms, errors: out.errors, cpu: cpu(server) - before, peakRss: peak(server), peakAnon: anon(), ...(out.firstError ? { firstError: out.firstError } : {}) };
}

/** CPU seconds per thread kind spent between two readings. */
function threadDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([k, v]) => [k, Math.round((v - (before[k] ?? 0)) * 100) / 100]).filter(([, v]) => (v as number) > 0));
}

class Done extends Error {}

/** Target rows of a quick round (BENCH_ONLY) as the table's Markdown lines. */
const markdownRows = (rows: readonly [string, string, string, boolean][]) => rows.map((r) => `| ${r.slice(0, 3).join(" | ")} | ${r[3] ? "met" : "**missed**"} |`).join("\n");

/** The first of the 5 MB plugins. */
const isMedian = (p: { wasm: Uint8Array }) => Math.abs(p.wasm.length - 5_000_000) < 100;

/** The files of `<name>/2.0.0` in a store, by key. */
async function versionObjects(store: FileStore, name: string): Promise<Map<string, Uint8Array>> {
  const keys = ["plugin.wasm", "plugin.wasm.gz", "metadata.json", "metadata.txt"].map((f) => `plugins/${name}/2.0.0/${f}`);
  return new Map(await Promise.all(keys.map(async (key) => [key, await readBytes((await store.get(key))!)] as const)));
}

const workerCpu = async (store: FileStore, median: string) =>
  benchWorkerCpu({ script: path.join(ROOT, "dist/worker.js"), compatibilityDate: COMPATIBILITY_DATE, objects: await versionObjects(store, median), versionPath: `/plugins/${median}/2.0.0`, seconds: process.env.BENCH_WORKER_SECONDS ?? "4", log });

const work = await mkdtemp(path.join(tmpdir(), "plugin-bench-"));
await chmod(work, 0o755); // nginx workers run as an unprivileged user
const children: ChildProcess[] = [];
const cleanups: (() => Promise<unknown>)[] = [];
let listFile = "";
let burstBinary = "";
const pinned = (command: string, args: string[], env: Record<string, string> = {}, log?: string) => {
  // An access log on a terminal would measure the terminal; to a file (BENCH_SERVER_LOGS) it costs what it costs in a pod.
  const out = log ? openSync(log, "a") : "ignore";
  const child = spawn("taskset", ["-c", "0", command, ...args], { env: { PATH: process.env.PATH ?? "", ...env }, stdio: ["ignore", out, "inherit"] });
  if (typeof out === "number") closeSync(out); // the child has its own copy
  children.push(child);
  return child;
};

try {
  await run(process.execPath, [path.join(ROOT, "scripts/build.mjs")]);
  burstBinary = path.join(work, "burst");
  await run("go", ["build", "-o", burstBinary, "."], { cwd: path.join(ROOT, "bench/burst"), env: { ...process.env, GO111MODULE: "off", GOCACHE: path.join(work, "gocache") } });

  // BENCH_ONLY=worker: the worker's CPU per request alone, on the median plugin.
  if (process.env.BENCH_ONLY === "worker") {
    const median = (await pluginSet()).find(isMedian)!;
    const store = new FileStore(path.join(work, "store"));
    await publishVersion(store, { name: median.name, version: "2.0.0", wasm: median.wasm, extras: new Map(), source: "bench" });
    const cases = await workerCpu(store, median.name);
    console.log(`${markdownRows(workerCpuRows(cases))}\n\n${workerCpuTable(cases)}`);
    throw new Done();
  }

  let s3: S3Target;
  if (process.env.BENCH_S3_ENDPOINT) {
    s3 = { endpoint: process.env.BENCH_S3_ENDPOINT, accessKeyId: process.env.BENCH_S3_ACCESS_KEY_ID ?? "RGWACCESSKEY", secretAccessKey: process.env.BENCH_S3_SECRET_ACCESS_KEY ?? "RGWSECRETKEY" };
  } else {
    const port = await freePort();
    // memstore holds everything in memory: room for the set and its gzip variants, twice.
    const env = { ...process.env, C: path.join(work, "rgw"), PORT: String(port), MON_PORT: String(await freePort()), MEMSTORE_BYTES: String(2 << 30) };
    await run("bash", [path.join(ROOT, "scripts/s3-radosgw-up.sh")], { env });
    cleanups.push(() => run("bash", [path.join(ROOT, "scripts/s3-radosgw-down.sh")], { env }));
    s3 = { endpoint: `http://127.0.0.1:${port}`, accessKeyId: "RGWACCESSKEY", secretAccessKey: "RGWSECRETKEY" };
  }

  // BENCH_ONLY=bursts: no uploader, no wrk; =cold: the cold S3 passes alone; =uploader: the uploader alone (quick rounds).
  const only = process.env.BENCH_ONLY;
  const plugins = await pluginSet();
  const uploader = only === "bursts" || only === "cold" || only === "ceiling" ? undefined : await benchUploader(work, plugins, s3, log);
  if (uploader && only === "uploader") {
    console.log(markdownRows(uploaderRows(uploader)));
    throw new Done();
  }

  // The plugin set, published through the uploader: to a file store and to S3.
  log("publishing the plugin set with the uploader");
  const { tree, list } = await writePluginSet(plugins, work);
  listFile = list;
  const median = plugins.find(isMedian)!.name;
  const publish = async (store: WritableStore) => {
    const started = Date.now();
    const report = await runPipeline(store, await localJobs(tree), new Map(), { concurrency: 4 });
    if (report.failed > 0) throw new Error(`publishing failed: ${JSON.stringify(report.versions.filter((v) => v.status === "failed"))}`);
    return Date.now() - started;
  };
  const fileStoreDir = path.join(work, "store");
  const publishFileMs = await publish(new FileStore(fileStoreDir));

  const bucket = `bench-${Date.now().toString(36)}`;
  const s3Store = new S3Store({ bucket, prefix: "", endpoint: s3.endpoint, region: "us-east-1", forcePathStyle: true, credentials: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
  await s3Store.ensureBucket();
  const publishS3Ms = await publish(s3Store);
  cleanups.push(async () => {
    await removePublished(s3Store);
    await s3Store.close();
  });
  log(`published ${plugins.length} plugins: file store ${publishFileMs} ms, S3 ${publishS3Ms} ms`);

  // nginx as the reference image runs it (sendfile, no gzip), and with gzip_static; one worker each.
  const nginx = async (name: string, gzipStatic: boolean): Promise<Server> => {
    const port = await freePort();
    const dir = path.join(work, name.replace(/[^a-z0-9]+/gi, "-"));
    await mkdir(dir);
    await writeFile(
      path.join(dir, "nginx.conf"),
      `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  types { application/wasm wasm; text/plain txt; }
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  server {
    listen 127.0.0.1:${port} backlog=4096;
    root ${fileStoreDir};
    autoindex on;
    ${gzipStatic ? "gzip_static on;" : ""}
  }
}
`,
    );
    const master = pinned("nginx", ["-c", path.join(dir, "nginx.conf"), "-e", path.join(dir, "error.log")]);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`${url}/plugins/`);
    const worker = Number((await run("pgrep", ["-P", String(master.pid), "-f", "nginx: worker"])).stdout.trim().split("\n")[0]);
    return { name, url, pids: () => [master.pid!, worker] };
  };
  const ours = async (name: string, env: Record<string, string>): Promise<Server & { child: ChildProcess }> => {
    const port = await freePort();
    const flags = process.env.BENCH_SERVER_FLAGS?.split(" ").filter(Boolean) ?? []; // e.g. --cpu-prof, for profiles
    const logs = process.env.BENCH_SERVER_LOGS; // a directory for our servers' access logs, one file per server
    const log = logs ? path.join(logs, `${name.replace(/\W+/g, "-")}-${port}.log`) : undefined;
    // Started as the image starts it: the server applies its own memory settings.
    const child = pinned(process.execPath, [...flags, path.join(ROOT, "dist/node.js")], { HOST: "127.0.0.1", PORT: String(port), ...env }, log);
    const url = `http://127.0.0.1:${port}`;
    await waitFor(`${url}/healthz`);
    return { name, url, child, pids: () => [child.pid!] };
  };

  const reference = await nginx("nginx (reference: sendfile, no gzip)", false);
  const gzipStatic = await nginx("nginx + gzip_static", true);
  const file = await ours("ours, file store", { STORE: `file:${fileStoreDir}` });
  // The self-contained image's own settings (Dockerfile), in Higress's pod template: 256Mi at most.
  const slot = await ours("ours, self-contained image (CACHE_MAX_MB=32)", { STORE: `file:${fileStoreDir}`, CACHE_MAX_MB: "32" });

  // The identity ceiling: a bare Node server sending the same files three ways, sendfile(2) among them.
  let ceiling: Awaited<ReturnType<typeof identityCeiling>> | undefined;
  if (!only || only === "ceiling") {
    log("identity ceiling");
    const bare = async (name: string, script: string, env: Record<string, string>): Promise<Server> => {
      const port = await freePort();
      const child = pinned(process.execPath, [script], { PORT: String(port), ...env });
      const url = `http://127.0.0.1:${port}`;
      await waitFor(`${url}/`);
      return { name, url, pids: () => [child.pid!] };
    };
    const allInMemory = await ours("ours, file store, CACHE_MAX_MB=512 (the whole set in memory)", { STORE: `file:${fileStoreDir}`, CACHE_MAX_MB: "512" });
    ceiling = await identityCeiling({ root: fileStoreDir, start: bare, burst: (s) => burst(s, true), alongside: [reference, file, allInMemory], log });
    allInMemory.child.kill("SIGINT");
    if (only === "ceiling") {
      console.log(ceilingTable(ceiling, reference.name));
      throw new Done();
    }
  }
  const proxy = await faultProxy(s3.endpoint); // counts the S3 requests our server makes
  cleanups.push(() => proxy.close());
  const s3Env = { STORE: `s3://${bucket}`, S3_ENDPOINT: proxy.endpoint, AWS_ACCESS_KEY_ID: s3.accessKeyId, AWS_SECRET_ACCESS_KEY: s3.secretAccessKey };
  const cacheDir = (n: number) => path.join(work, `disk-cache-${n}`);

  // Cold S3: one gateway's first pass (identity), then, on a fresh server, a cold burst of every gateway at once.
  log("cold passes through S3");
  let s3Server = await ours("ours, S3 store", { ...s3Env, CACHE_DIR: cacheDir(1) });
  const rgw = await radosgwClock();
  const threadsBefore = threadCpuSeconds(s3Server.child.pid!);
  const coldPassOurs = { ...(await burst(s3Server, true, 1)), ...rgw(), threads: threadDelta(threadsBefore, threadCpuSeconds(s3Server.child.pid!)) };
  const coldPassNginx = await burst(reference, true, 1);
  log(`cold first pass (one identity client): ours ${JSON.stringify(coldPassOurs)}, nginx from disk ${JSON.stringify(coldPassNginx)}`);
  s3Server.child.kill("SIGINT");
  await sleep(500);
  s3Server = await ours("ours, S3 store", { ...s3Env, CACHE_DIR: cacheDir(2) });
  proxy.requests.length = 0;
  const coldBurst = await burst(s3Server, false);
  const getsPerObject = new Map<string, number>();
  for (const r of proxy.requests) if (r.startsWith("GET ") && /\/plugin\.wasm(\.gz)?(\?|$)/.test(r)) getsPerObject.set(r, (getsPerObject.get(r) ?? 0) + 1);
  const coldGets = { objects: getsPerObject.size, max: Math.max(0, ...getsPerObject.values()) };
  log(`cold burst over S3: ${JSON.stringify(coldBurst)}; GETs per object ${JSON.stringify(coldGets)}`);
  if (only === "cold") throw new Done();

  // Warm bursts: every server, gateway header (gzip) and identity.
  const servers: Server[] = [reference, gzipStatic, file, s3Server];
  const bursts: Record<string, { gzip: Burst; identity: Burst }> = {};
  for (const s of [...servers, slot]) {
    // Warm-up with both kinds: an S3 store otherwise meets identity bodies for the first time in the measured burst.
    await burst(s, false);
    await burst(s, true);
    // What a warm burst still asks of S3 (revalidations once CACHE_TTL_SECONDS has passed): none of the bytes.
    const asked = proxy.requests.length;
    bursts[s.name] = { gzip: await burst(s, false), identity: await burst(s, true) };
    const storeRequests = s === s3Server ? countBy(proxy.requests.slice(asked).map((r) => r.split(" ")[0]!)) : undefined;
    log(`${s.name}: ${JSON.stringify(bursts[s.name])}${storeRequests ? `; S3 requests over both: ${JSON.stringify(storeRequests)}` : ""}`);
  }
  if (only === "bursts") throw new Done();

  // Steady load with wrk: the median plugin, metadata.txt, HEAD and 404.
  const medianPath = `/plugins/${median}/2.0.0/plugin.wasm`;
  const steady: Record<string, Record<string, Sample>> = {};
  for (const s of servers) {
    steady[s.name] = {
      "median plugin, gzip": await wrk(s, medianPath, ["Accept-Encoding: gzip"]),
      "median plugin, identity": await wrk(s, medianPath),
      "metadata.txt": await wrk(s, `/plugins/${median}/2.0.0/metadata.txt`),
      // Revalidation without a body (wrk cannot read HEAD answers; a 304 costs the server the same).
      "304": await wrk(s, medianPath, [`If-None-Match: ${(await fetch(`${s.url}${medianPath}`, { method: "HEAD", headers: { "Accept-Encoding": "identity" } })).headers.get("etag")}`]),
      "404": await wrk(s, `/plugins/${median}/2.0.0/nothing.txt`),
    };
    log(`${s.name}: ${JSON.stringify(steady[s.name])}`);
  }

  // The worker on workerd with a local R2 bucket holding the median plugin. Plain GETs are edge cache
  // hits after the first (Miniflare's local Cache API standing in for Cloudflare's); a GET with an
  // If-None-Match that matches nothing skips the cache (conditionals are answered by the app), so it
  // measures the worker's own path from R2. (Miniflare's `cache: false` would not do: the tee'd
  // copy for the cache is then never read, and workerd buffers it.)
  log("worker on workerd");
  const mf = new Miniflare({ modules: true, scriptPath: path.join(ROOT, "dist/worker.js"), compatibilityDate: COMPATIBILITY_DATE, r2Buckets: ["PLUGINS"], host: "127.0.0.1", port: await freePort() });
  cleanups.push(() => mf.dispose());
  const workerUrl = (await mf.ready).toString().replace(/\/$/, "");
  const r2 = (await mf.getR2Bucket("PLUGINS")) as unknown as { put(key: string, value: ArrayBuffer): Promise<unknown> };
  const fileStore = new FileStore(fileStoreDir);
  for (const [key, bytes] of await versionObjects(fileStore, median)) await r2.put(key, bytes.slice().buffer as ArrayBuffer);
  const workerd = pinNewWorkerd();
  const worker: Server = { name: "worker (workerd, local R2)", url: workerUrl, pids: () => workerd };
  const fromR2 = 'If-None-Match: "bench-matches-nothing"';
  steady[worker.name] = {
    "median plugin, gzip": await wrk(worker, medianPath, ["Accept-Encoding: gzip", fromR2]),
    "median plugin, identity": await wrk(worker, medianPath, [fromR2]),
    "median plugin, gzip, edge cache": await wrk(worker, medianPath, ["Accept-Encoding: gzip"]),
    "median plugin, identity, edge cache": await wrk(worker, medianPath),
  };
  log(`${worker.name}: ${JSON.stringify(steady[worker.name])}`);
  await mf.dispose();
  const workerCases = await workerCpu(fileStore, median);

  // The table of targets (ours / nginx serving the same tree, this run).
  const ref = reference.name;
  const ratio = (a: number, b: number) => (b > 0 ? a / b : NaN);
  const f = (n: number, d = 2) => (Number.isFinite(n) ? n.toFixed(d) : "-");
  const rows: [string, string, string, string][] = [];
  const row = (scenario: string, target: string, figures: string, met: boolean) => rows.push([scenario, target, figures, met ? "met" : "**missed**"]);
  for (const s of [file, s3Server]) {
    const b = bursts[s.name]!;
    for (const kind of ["gzip", "identity"] as const) {
      row(`peak RSS, burst of ${CLIENTS} x ${plugins.length}, ${kind} clients, ${s.name}`, `<= ${CACHE_MAX_MB + 96} MiB`, `${f(b[kind].peakRss, 0)} MiB, anonymous ${f(b[kind].peakAnon, 0)} (nginx ${f(bursts[ref]![kind].peakRss, 0)})`, b[kind].peakRss <= CACHE_MAX_MB + 96);
    }
    row(`server CPU s per burst, gzip clients, ${s.name}`, "<= 1.0x nginx", `${f(b.gzip.cpu)} s vs ${f(bursts[ref]!.gzip.cpu)} s = ${f(ratio(b.gzip.cpu, bursts[ref]!.gzip.cpu))}x`, ratio(b.gzip.cpu, bursts[ref]!.gzip.cpu) <= 1.0);
    row(`server CPU s per burst, identity clients, ${s.name}`, "<= 2.5x nginx", `${f(b.identity.cpu)} s vs ${f(bursts[ref]!.identity.cpu)} s = ${f(ratio(b.identity.cpu, bursts[ref]!.identity.cpu))}x`, ratio(b.identity.cpu, bursts[ref]!.identity.cpu) <= 2.5);
  }
  const inSlot = bursts[slot.name]!;
  for (const kind of ["gzip", "identity"] as const) {
    row(`peak RSS, burst of ${CLIENTS} x ${plugins.length}, ${kind} clients, ${slot.name}`, "<= 256 MiB (Higress's pluginServer limit)", `${f(inSlot[kind].peakRss, 0)} MiB, anonymous ${f(inSlot[kind].peakAnon, 0)}, ${f(inSlot[kind].cpu)} s CPU`, inSlot[kind].peakRss <= 256);
  }
  row("S3 GETs per object, cold burst", "exactly 1", `max ${coldGets.max} over ${coldGets.objects} objects`, coldGets.max === 1);
  for (const s of [file, s3Server]) {
    const t = steady[s.name]!;
    const r = steady[ref]!;
    row(`warm req/s, median plugin, gzip clients, ${s.name}`, ">= 5x nginx", `${f(t["median plugin, gzip"]!.rps, 0)} vs ${f(r["median plugin, gzip"]!.rps, 0)} = ${f(ratio(t["median plugin, gzip"]!.rps, r["median plugin, gzip"]!.rps))}x`, ratio(t["median plugin, gzip"]!.rps, r["median plugin, gzip"]!.rps) >= 5);
    row(`warm req/s, median plugin, identity, ${s.name}`, ">= 1.2x nginx", `${f(t["median plugin, identity"]!.rps, 0)} vs ${f(r["median plugin, identity"]!.rps, 0)} = ${f(ratio(t["median plugin, identity"]!.rps, r["median plugin, identity"]!.rps))}x`, ratio(t["median plugin, identity"]!.rps, r["median plugin, identity"]!.rps) >= 1.2);
    for (const k of ["metadata.txt", "304", "404"]) {
      const ours = t[k]!;
      const theirs = r[k]!;
      row(`${k} req/s, ${s.name}`, ">= 0.35x nginx, p99 <= 5 ms", `${f(ours.rps, 0)} vs ${f(theirs.rps, 0)} = ${f(ratio(ours.rps, theirs.rps))}x, p99 ${f(ours.p99, 1)} ms (nginx ${f(theirs.p99, 1)})`, ratio(ours.rps, theirs.rps) >= 0.35 && ours.p99 <= 5);
    }
  }
  row("cold first pass, one identity client, S3 store", "<= 1.5x nginx from disk", `${coldPassOurs.ms} ms (server ${f(coldPassOurs.cpu)} s CPU${coldPassOurs.storeCpu !== undefined ? `, radosgw ${f(coldPassOurs.storeCpu)} s` : ""}) vs ${coldPassNginx.ms} ms = ${f(ratio(coldPassOurs.ms, coldPassNginx.ms))}x`, ratio(coldPassOurs.ms, coldPassNginx.ms) <= 1.5);
  const w = steady[worker.name]!;
  row(
    "worker on workerd, local R2: warm req/s, median plugin",
    "measured",
    `from R2: gzip ${f(w["median plugin, gzip"]!.rps, 0)}, identity ${f(w["median plugin, identity"]!.rps, 0)}; Miniflare's local edge cache: gzip ${f(w["median plugin, gzip, edge cache"]!.rps, 0)}, identity ${f(w["median plugin, identity, edge cache"]!.rps, 0)} (ours, file store: ${f(steady[file.name]!["median plugin, gzip"]!.rps, 0)} / ${f(steady[file.name]!["median plugin, identity"]!.rps, 0)})`,
    true,
  );

  for (const r of workerCpuRows(workerCases)) row(...r);
  if (uploader) for (const r of uploaderRows(uploader)) row(...r);

  const totalMb = SIZES_MB.reduce((a, b) => a + b, 0);
  console.log(`Plugin set: ${plugins.length} modules, ${totalMb.toFixed(0)} MB, median 5 MB (Go-built wasm bytes). Bursts: ${CLIENTS} clients x ${plugins.length} plugins at once (Go net/http). wrk: ${CONNECTIONS} connections, ${DURATION} s. Servers on core 0, clients on core 1.\n`);
  console.log("| scenario | target | this run | |");
  console.log("|---|---|---|---|");
  for (const r of rows) console.log(`| ${r.join(" | ")} |`);
  console.log("\nBursts (wall ms / server CPU s / peak RSS MiB (of it anonymous)), gzip and identity clients:\n");
  console.log("| server | gzip | identity |");
  console.log("|---|---|---|");
  for (const [name, b] of Object.entries(bursts)) console.log(`| ${name} | ${b.gzip.ms} / ${f(b.gzip.cpu)} / ${f(b.gzip.peakRss, 0)} (${f(b.gzip.peakAnon, 0)}) | ${b.identity.ms} / ${f(b.identity.cpu)} / ${f(b.identity.peakRss, 0)} (${f(b.identity.peakAnon, 0)}) |`);
  console.log("\nSteady load (req/s, p99 ms, server CPU s over the run):\n");
  console.log("| server | median gzip | median identity | metadata.txt | 304 | 404 |");
  console.log("|---|---|---|---|---|---|");
  for (const [name, t] of Object.entries(steady)) {
    const cell = (k: string) => (t[k] ? `${f(t[k]!.rps, 0)} / ${f(t[k]!.p99, 1)} / ${f(t[k]!.cpu, 1)}` : "-");
    console.log(`| ${name} | ${cell("median plugin, gzip")} | ${cell("median plugin, identity")} | ${cell("metadata.txt")} | ${cell("304")} | ${cell("404")} |`);
  }
  if (ceiling) console.log(`\nThe identity ceiling (one identity burst each, after a warm-up; see bench/identity-ceiling.ts):\n\n${ceilingTable(ceiling, ref)}`);
  console.log(`\nThe worker's CPU per request on workerd (Miniflare, local R2 and cache; see bench/worker-cpu.ts):\n\n${workerCpuTable(workerCases)}`);
  await mkdir(path.join(ROOT, "reports"), { recursive: true });
  await writeFile(
    path.join(ROOT, "reports/bench.json"),
    `${JSON.stringify({ date: new Date().toISOString(), node: process.version, plugins: { count: plugins.length, totalMb, median }, publish: { fileMs: publishFileMs, s3Ms: publishS3Ms }, uploader, coldPass: { ours: coldPassOurs, nginx: coldPassNginx }, coldBurst, coldGets, bursts, ceiling, steady, worker: workerCases, targets: rows }, null, 2)}\n`,
  );
  const errors = [coldPassOurs, coldPassNginx, coldBurst, ...Object.values(bursts).flatMap((b) => [b.gzip, b.identity])].filter((b) => b.errors > 0);
  if (errors.length > 0) {
    console.error(`downloads failed in ${errors.length} bursts: ${errors.map((e) => e.firstError).join("; ")}`);
    process.exitCode = 1;
  }
} catch (error) {
  if (!(error instanceof Done)) throw error;
} finally {
  for (const child of children) child.kill("SIGINT");
  for (const cleanup of cleanups.reverse()) await cleanup().catch(() => {});
  await sleep(300);
  // BENCH_KEEP=1 leaves the plugin set, its stores and the burst client for profiling by hand.
  if (process.env.BENCH_KEEP) console.error(`[bench] kept ${work}`);
  else await rm(work, { recursive: true, force: true });
}
