import { execFile } from "node:child_process";
import { promisify } from "node:util";

const run = promisify(execFile);

export interface Sample {
  readonly rps: number;
  readonly p99: number;
  /** Server CPU seconds over the run. */
  readonly cpu: number;
  readonly requests: number;
}

/** wrk on core 1 against a server pinned to core 0; `cpu` reads the server's CPU seconds. */
export async function wrk(url: string, options: { readonly headers?: readonly string[]; readonly connections: string; readonly seconds: string; readonly cpu: () => number }): Promise<Sample> {
  const before = options.cpu();
  const args = ["-c", "1", "wrk", "-t1", `-c${options.connections}`, `-d${options.seconds}s`, "--latency", ...(options.headers ?? []).flatMap((h) => ["-H", h]), url];
  const { stdout } = await run("taskset", args, { maxBuffer: 1 << 20 });
  const m = /99%\s+([\d.]+)(us|ms|s)/.exec(stdout);
  const requests = /(\d+) requests in/.exec(stdout);
  if (!m || !requests) throw new Error(`wrk output without a 99th percentile or a request count:\n${stdout}`);
  return {
    rps: Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)![1]),
    p99: Number(m[1]) * { us: 0.001, ms: 1, s: 1000 }[m[2] as "us" | "ms" | "s"],
    cpu: options.cpu() - before,
    requests: Number(requests[1]),
  };
}
