import { readFileSync, readdirSync, readlinkSync } from "node:fs";

/** What a running process holds, read from /proc: the figures the reliability suite reports. */

function status(pid: number, field: "VmRSS" | "VmHWM" | "RssAnon"): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** Resident memory now, in MiB. */
export const rssMiB = (pid: number) => status(pid, "VmRSS");
/** Peak resident memory since start, in MiB. */
export const peakRssMiB = (pid: number) => status(pid, "VmHWM");

/**
 * Anonymous resident memory now, in MiB: RSS without file-backed pages (the runtime's own code,
 * about 50 MiB of a Node process), which the kernel can drop under pressure and a container's
 * OOM killer does not hinge on.
 */
export const anonRssMiB = (pid: number) => status(pid, "RssAnon");

/** Open descriptors, and how many of them are sockets. */
export function descriptors(pid: number): { fds: number; sockets: number } {
  const entries = readdirSync(`/proc/${pid}/fd`);
  let sockets = 0;
  for (const fd of entries) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`).startsWith("socket:")) sockets++;
    } catch {
      // closed meanwhile
    }
  }
  return { fds: entries.length, sockets };
}

/** User + system CPU seconds the process has used (utime + stime from /proc/<pid>/stat). */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) / 100; // clock ticks; 100 per second on Linux
}

/** CPU seconds by thread kind (the main thread, libuv's pool "libuv-worker", V8's helpers), from /proc/<pid>/task. */
export function threadCpuSeconds(pid: number): Record<string, number> {
  const threads: Record<string, number> = {};
  for (const task of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${task}/stat`, "utf8");
      const name = /\((.*)\)/.exec(stat)![1]!.replace(/\d+$/, "");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      threads[name] = (threads[name] ?? 0) + (Number(fields[11]) + Number(fields[12])) / 100;
    } catch {
      // the thread ended meanwhile
    }
  }
  return threads;
}
