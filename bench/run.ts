/**
 * `npm run bench`: our Node server and the reference architecture (nginx serving the same files
 * from disk) side by side on this machine, under the same wrk load. Prints a Markdown table of
 * ratios (ours / nginx) that the README quotes. Needs nginx and wrk (scripts/install-system-deps.sh).
 *
 * Each server gets one worker (nginx `worker_processes 1`, one Node process), leaving the
 * other core to wrk: the machine has two. Ours runs twice: as configured by default (in-memory
 * cache on) and with CACHE_TTL_SECONDS=0, every request reaching the disk.
 */
import { execFile, spawn, spawnSync, type ChildProcess } from "node:child_process";
import { chmod, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { FileStore } from "../src/storage/fs.ts";
import { wasmModule } from "../test/support/wasm.ts";

const run = promisify(execFile);
const ROOT = path.resolve(import.meta.dirname, "..");
const DURATION = process.env.BENCH_SECONDS ?? "8";
const CONNECTIONS = process.env.BENCH_CONNECTIONS ?? "32";

for (const tool of ["nginx", "wrk"]) {
  if (spawnSync("sh", ["-c", `command -v ${tool}`]).status !== 0) {
    console.error(`${tool} is missing: run scripts/install-system-deps.sh`);
    process.exit(2);
  }
}

interface Sample {
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly mbps: number;
}

/** Runs wrk and reads its --latency report. */
async function wrk(url: string, headers: string[]): Promise<Sample> {
  const args = ["-t1", `-c${CONNECTIONS}`, `-d${DURATION}s`, "--latency", ...headers.flatMap((h) => ["-H", h]), url];
  const { stdout } = await run("wrk", args, { maxBuffer: 1 << 20 });
  const ms = (label: string) => {
    const m = new RegExp(`${label}\\s+([\\d.]+)(us|ms|s)`).exec(stdout);
    if (!m) throw new Error(`wrk output without ${label}:\n${stdout}`);
    return Number(m[1]) * ({ us: 0.001, ms: 1, s: 1000 } as const)[m[2] as "us" | "ms" | "s"];
  };
  const transfer = /Transfer\/sec:\s+([\d.]+)(B|KB|MB|GB)/.exec(stdout)!;
  const unit = { B: 1 / 1048576, KB: 1 / 1024, MB: 1, GB: 1024 }[transfer[2] as "B" | "KB" | "MB" | "GB"];
  if (/Non-2xx/.test(stdout)) throw new Error(`errors under load:\n${stdout}`);
  return { rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]), p50: ms("50%"), p99: ms("99%"), mbps: Number(transfer[1]) * unit };
}

/** Peak resident memory of a process, in MiB (VmHWM). */
async function peakRss(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, "utf8");
  return Number(/VmHWM:\s+(\d+)/.exec(status)![1]) / 1024;
}

async function waitFor(url: string) {
  for (let i = 0; i < 100; i++) {
    if (await fetch(url).then((r) => r.ok, () => false)) return;
    await sleep(100);
  }
  throw new Error(`${url} did not come up`);
}

const work = await mkdtemp(path.join(tmpdir(), "plugin-bench-"));
await chmod(work, 0o755); // nginx workers run as an unprivileged user
const children: ChildProcess[] = [];
try {
  // A store in the reference layout, with what the uploader writes beside each module.
  const store = new FileStore(path.join(work, "store"));
  const plugins = { small: wasmModule(16 * 1024, 3), large: wasmModule(2 * 1024 * 1024, 5) };
  for (const [name, wasm] of Object.entries(plugins)) {
    await store.put(`plugins/${name}/1.0.0/plugin.wasm`, wasm);
    await store.put(`plugins/${name}/1.0.0/plugin.wasm.gz`, gzipSync(wasm));
  }

  // nginx as the reference image runs it: static files, autoindex, gzip_static for the .gz variant.
  const nginxPort = 18600;
  await writeFile(
    path.join(work, "nginx.conf"),
    `worker_processes 1;
daemon off;
pid ${work}/nginx.pid;
error_log ${work}/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  sendfile on;
  tcp_nopush on;
  types { application/wasm wasm; }
  client_body_temp_path ${work}/nginx-body;
  proxy_temp_path ${work}/nginx-proxy;
  fastcgi_temp_path ${work}/nginx-fastcgi;
  uwsgi_temp_path ${work}/nginx-uwsgi;
  scgi_temp_path ${work}/nginx-scgi;
  server {
    listen 127.0.0.1:${nginxPort};
    root ${work}/store;
    autoindex on;
    gzip_static on;
  }
}
`,
  );
  const nginx = spawn("nginx", ["-c", path.join(work, "nginx.conf"), "-e", path.join(work, "nginx-error.log")], {
    stdio: "inherit",
  });
  children.push(nginx);

  await run(process.execPath, [path.join(ROOT, "scripts/build.mjs")]);
  // Ours as configured by default (in-memory cache on), and with every request reaching the disk.
  const startOurs = (port: number, env: Record<string, string>) => {
    const child = spawn(process.execPath, [path.join(ROOT, "dist/node.js")], {
      env: { PATH: process.env.PATH, PORT: String(port), HOST: "127.0.0.1", STORE: `file:${work}/store`, ...env },
      stdio: ["ignore", "ignore", "inherit"], // the access log would measure the terminal
    });
    children.push(child);
    return child;
  };
  const ourPort = 18601;
  const uncachedPort = 18602;
  const ours = startOurs(ourPort, {});
  const uncached = startOurs(uncachedPort, { CACHE_TTL_SECONDS: "0" });

  await waitFor(`http://127.0.0.1:${nginxPort}/plugins/small/1.0.0/plugin.wasm`);
  await waitFor(`http://127.0.0.1:${ourPort}/healthz`);
  await waitFor(`http://127.0.0.1:${uncachedPort}/healthz`);
  const nginxWorker = Number(
    (await run("pgrep", ["-P", String(nginx.pid), "-f", "nginx: worker"]).catch(() => ({ stdout: String(nginx.pid) })))
      .stdout.trim()
      .split("\n")[0],
  );

  const scenarios: [string, string, string[]][] = [
    ["16 KiB plugin, identity", "small", []],
    ["16 KiB plugin, gzip (gateway)", "small", ["Accept-Encoding: gzip"]],
    ["2 MiB plugin, identity", "large", []],
    ["2 MiB plugin, gzip (gateway)", "large", ["Accept-Encoding: gzip"]],
  ];
  const rows: string[] = [];
  for (const [label, name, headers] of scenarios) {
    const urlPath = `/plugins/${name}/1.0.0/plugin.wasm`;
    const ref = await wrk(`http://127.0.0.1:${nginxPort}${urlPath}`, headers);
    const our = await wrk(`http://127.0.0.1:${ourPort}${urlPath}`, headers);
    const disk = await wrk(`http://127.0.0.1:${uncachedPort}${urlPath}`, headers);
    rows.push(
      `| ${label} | ${our.rps.toFixed(0)} | ${disk.rps.toFixed(0)} | ${ref.rps.toFixed(0)} | **${(our.rps / ref.rps).toFixed(2)}** / ${(disk.rps / ref.rps).toFixed(2)} | ${our.p99.toFixed(1)} / ${disk.p99.toFixed(1)} / ${ref.p99.toFixed(1)} | ${our.mbps.toFixed(0)} / ${ref.mbps.toFixed(0)} |`,
    );
    console.error(`${label}: ${our.rps.toFixed(0)} (no cache ${disk.rps.toFixed(0)}) vs ${ref.rps.toFixed(0)} req/s`);
  }
  const ourRss = await peakRss(ours.pid!);
  const diskRss = await peakRss(uncached.pid!);
  const refRss = await peakRss(nginxWorker);
  console.log(`Load: wrk, 1 thread, ${CONNECTIONS} connections, ${DURATION} s per scenario; one server process each.\n`);
  console.log("| scenario | ours req/s | ours, no cache | nginx req/s | ratio (ours / no cache, to nginx) | p99 ms (ours / no cache / nginx) | MiB/s (ours / nginx) |");
  console.log("|---|---|---|---|---|---|---|");
  for (const row of rows) console.log(row);
  console.log(
    `\nPeak RSS: ours ${ourRss.toFixed(0)} MiB, ours without cache ${diskRss.toFixed(0)} MiB, nginx worker ${refRss.toFixed(0)} MiB (ratio ${(ourRss / refRss).toFixed(1)}).`,
  );
} finally {
  for (const child of children) child.kill("SIGTERM");
  await sleep(300);
  await rm(work, { recursive: true, force: true });
}
