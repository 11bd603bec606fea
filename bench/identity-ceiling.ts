/**
 * The identity ceiling (issue 22): what Node itself spends on a burst of identity downloads,
 * beside nginx (sendfile) and our server. A bare Node server (bench/sendfile/bare-server.mjs)
 * sends the same files three ways: from memory (one write per response, the copy our memory cache
 * pays), piped from a read stream, and with the server's sendfile(2) addon (dist/sendfile.node),
 * used bare. Each server gets a warm-up burst, then a
 * measured one; the figures are server CPU seconds and peak RSS, as in the other bursts.
 */
import { existsSync } from "node:fs";
import path from "node:path";

export interface CeilingServer {
  readonly name: string;
}

export interface CeilingBurst {
  readonly ms: number;
  readonly errors: number;
  readonly cpu: number;
  readonly peakRss: number;
  readonly peakAnon: number;
}

export interface CeilingOptions<S extends CeilingServer> {
  /** The file store's directory (the tree nginx serves). */
  readonly root: string;
  /** Starts a bare server (a node script with its environment) pinned like the others. */
  readonly start: (name: string, script: string, env: Record<string, string>) => Promise<S>;
  readonly burst: (server: S) => Promise<CeilingBurst>;
  /** Servers already running to measure beside them (nginx, ours). */
  readonly alongside: readonly S[];
  readonly log: (line: string) => void;
}

export async function identityCeiling<S extends CeilingServer>(options: CeilingOptions<S>): Promise<Record<string, CeilingBurst>> {
  const addon = path.join(import.meta.dirname, "../dist/sendfile.node");
  if (!existsSync(addon)) throw new Error(`${addon} was not built (npm run build needs a C compiler): the ceiling's sendfile server needs it`);
  const script = path.join(import.meta.dirname, "sendfile/bare-server.mjs");
  const bare = async (mode: string, label: string) => options.start(`bare Node, ${label}`, script, { ROOT: options.root, MODE: mode, ADDON: addon });
  const servers = [...options.alongside, await bare("memory", "every file in memory, one write each"), await bare("stream", "fs.createReadStream piped"), await bare("sendfile", "sendfile(2) (our addon)")];
  const results: Record<string, CeilingBurst> = {};
  for (const server of servers) {
    await options.burst(server); // warm-up: page cache, caches, keep-alive connections
    results[server.name] = await options.burst(server);
    options.log(`identity ceiling, ${server.name}: ${JSON.stringify(results[server.name])}`);
  }
  return results;
}

export function ceilingTable(results: Record<string, CeilingBurst>, reference: string): string {
  const ref = results[reference]?.cpu ?? NaN;
  const lines = ["| server | wall ms | server CPU s | vs nginx | peak RSS MiB (anonymous) |", "|---|---|---|---|---|"];
  for (const [name, b] of Object.entries(results)) lines.push(`| ${name} | ${b.ms} | ${b.cpu.toFixed(2)} | ${(b.cpu / ref).toFixed(1)}x | ${b.peakRss.toFixed(0)} (${b.peakAnon.toFixed(0)}) |`);
  return lines.join("\n");
}
