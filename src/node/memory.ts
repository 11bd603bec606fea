import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/**
 * The memory behaviour the server needs, owned by the server: a systemd unit, a distroless image
 * or someone's own Dockerfile that starts `node dist/node.js` gets it too, so no launcher has to
 * remember flags. Measured (README, Benchmarks):
 * - `--max-semi-space-size=16`: V8 sizes its young generation from the machine's memory (64 MiB and
 *   more on a big node, whatever the pod's limit); 16 MiB semi-spaces keep the heap at its working size.
 * - `MALLOC_MMAP_THRESHOLD_=65536`: glibc raises its mmap threshold to the largest block freed (a
 *   cached plugin, up to 32 MiB), after which the 64 KiB socket chunks of S3 downloads come from
 *   heaps that fragment and are not given back; a fixed threshold maps and unmaps them (S3 store, a
 *   warm burst after a cold one: peak RSS 243 -> 211 MiB, mean of 4 runs).
 * glibc reads its variable once, at start, so the process replaces itself once with both
 * (`process.execve`: same PID, same descriptors, so tini, the kubelet and log collectors see one
 * process). A value the operator set is kept.
 */
export const SEMI_SPACE_FLAG = "--max-semi-space-size=16";
export const MMAP_THRESHOLD = { MALLOC_MMAP_THRESHOLD_: "65536" } as const;
const MARKER = "HIGRESS_PLUGIN_SERVER_MEMORY_APPLIED";

export interface MemorySettings {
  /** The line for the start message. */
  readonly summary: string;
}

type Execve = (file: string, args: string[], env: Record<string, string | undefined>) => never;

/** Re-executes the process with what it lacks (never returns then), or says what is in effect. */
export function ownMemorySettings(): MemorySettings {
  const env = process.env;
  const flagged = [...process.execArgv, ...(env.NODE_OPTIONS ?? "").split(/\s+/)].find((a) => a.startsWith("--max-semi-space-size"));
  const threshold = env.MALLOC_MMAP_THRESHOLD_;
  const summary = () => `memory: ${flagged ?? SEMI_SPACE_FLAG}, MALLOC_MMAP_THRESHOLD_=${threshold ?? MMAP_THRESHOLD.MALLOC_MMAP_THRESHOLD_}`;
  if ((flagged && threshold) || env[MARKER]) return { summary: summary() };
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve !== "function") {
    // Node 20 has no execve: say what to set, rather than run a second process around this one.
    return { summary: `memory: not tuned (Node ${process.versions.node} cannot re-execute itself; start with MALLOC_MMAP_THRESHOLD_=65536 node ${SEMI_SPACE_FLAG}, or use Node 24)` };
  }
  const args = [process.execPath, ...(flagged ? [] : [SEMI_SPACE_FLAG]), ...process.execArgv, ...process.argv.slice(1)];
  execve.call(process, process.execPath, args, { ...env, ...(threshold ? {} : MMAP_THRESHOLD), [MARKER]: "1" });
  return { summary: summary() }; // not reached: execve replaces the process
}

/**
 * V8 collects a dropped buffer when its own heap needs it, not when the process's memory does:
 * a burst that cycles more plugins through the cache than it holds would leave hundreds of MiB of
 * dead buffers behind. Once 32 MiB of cached buffers are dropped, a collection runs.
 */
export function collectEarly(): ((bytes: number) => void) | undefined {
  let gc: unknown;
  try {
    setFlagsFromString("--expose-gc");
    gc = runInNewContext("gc");
  } catch {
    // a runtime without it: V8's own schedule then
  }
  if (typeof gc !== "function") return undefined;
  let dropped = 0;
  let scheduled = false;
  return (bytes) => {
    dropped += bytes;
    if (dropped < 32 * 1024 * 1024 || scheduled) return;
    scheduled = true;
    setImmediate(() => {
      scheduled = false;
      dropped = 0;
      (gc as () => void)();
    });
  };
}

/**
 * During a burst, a request's objects live for seconds (the download), so V8 learns to allocate
 * them in the old generation from then on ("pretenuring"); after the burst, small answers then
 * fill the old space and bring a mark-compact every 600 ms (p99 of metadata.txt 9-15 ms instead
 * of 4). Request objects die young in the steady state this server spends most of its life in.
 */
export function keepRequestsYoung(): void {
  try {
    setFlagsFromString("--no-allocation-site-pretenuring");
  } catch {
    // a runtime without the flag: V8's own heuristics then
  }
}
