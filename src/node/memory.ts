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
