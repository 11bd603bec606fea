import { createHash } from "node:crypto";
import { Agent, request as httpRequest } from "node:http";
import { afterAll, describe, expect, test } from "vitest";
import { sha256 } from "./support/fixtures.ts";
import { peakRssMiB, rssMiB } from "./support/process.ts";
import { fileTarget, type NodeServer } from "./support/targets.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * A fleet rollout in miniature: hundreds of gateways download one large plugin at once and read
 * it slowly. The server's memory must not grow with the number of connections: the memory cache
 * sends one shared buffer to all of them, and a streamed file holds one chunk per connection at most.
 */

const LARGE = wasmModule(4 * 1024 * 1024, 21);
const servers: NodeServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});

async function slowBurst(server: NodeServer, connections: number) {
  const agent = new Agent({ keepAlive: false, maxSockets: connections });
  const responses: import("node:http").IncomingMessage[] = [];
  const started = Promise.all(
    Array.from({ length: connections }, () =>
      new Promise<void>((resolve, reject) => {
        const req = httpRequest(`${server.url}/plugins/large/1.0.0/plugin.wasm`, { agent, headers: { "Accept-Encoding": "identity" } }, (res) => {
          res.pause(); // a slow gateway: nothing read yet, the kernel buffers fill up
          responses.push(res);
          resolve();
        });
        req.on("error", reject);
        req.end();
      }),
    ),
  );
  await started;
  await new Promise((resolve) => setTimeout(resolve, 2_000)); // everything in flight is now waiting on the clients
  const held = rssMiB(server.process.pid!);
  const digests = await Promise.all(
    responses.map(
      (res) =>
        new Promise<string>((resolve, reject) => {
          const hash = createHash("sha256");
          res.on("data", (c: Buffer) => hash.update(c));
          res.on("end", () => resolve(hash.digest("hex")));
          res.on("error", reject);
          res.resume();
        }),
    ),
  );
  agent.destroy();
  return { held, peak: peakRssMiB(server.process.pid!), digests };
}

describe("rollout: many slow downloads of a large plugin", () => {
  test.each([
    ["memory cache (one shared buffer)", {}, 40],
    ["no cache (streamed from the file, one chunk per connection)", { CACHE_TTL_SECONDS: "0" }, 80],
  ])("%s: peak RSS within CACHE_MAX_MB + 96 MiB, every download right", { timeout: 120_000 }, async (name, env, perBurst) => {
    const server = await fileTarget(new Map([["plugins/large/1.0.0/plugin.wasm", LARGE]]), env);
    servers.push(server);
    const idle = rssMiB(server.process.pid!);
    const { held, peak, digests } = await slowBurst(server, 400);
    console.log(`[rollout] ${name}: 400 slow downloads of 4 MiB: RSS idle ${idle.toFixed(1)} MiB, held ${held.toFixed(1)} MiB, peak ${peak.toFixed(1)} MiB`);
    expect(digests.every((d) => d === sha256(LARGE))).toBe(true);
    expect(peak).toBeLessThanOrEqual(128 + 96);
    // 400 connections x 4 MiB would be 1.6 GiB: what each connection costs is its socket and at most one chunk.
    expect(held - idle).toBeLessThanOrEqual(perBurst);
  });
});
