import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { setTimeout as sleep } from "node:timers/promises";
import { hashSync } from "bcryptjs";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { BIG, fixture, sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { fileTarget, workerdTarget, type Target } from "./support/targets.ts";

/**
 * Access control, run against the Node entry and the worker in workerd: downloads need HTTP
 * Basic (what a gateway sends for user:password@ in the plugin URL) or a bearer token, health
 * checks stay open, the catalog follows CATALOG, and nothing behind credentials may be kept by
 * a shared cache.
 */

const run = promisify(execFile);
const goClient = inject("goClient");
const data = await fixture();
const TOKEN = "tok_0123456789abcdef0123";
const PASSWORD = "s3cret pass:with colon";
const HTPASSWD = `# gateways\ngateway:${hashSync(PASSWORD, 5)}\n`;
const BIG_URL = "/plugins/big/2.0.0/plugin.wasm";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;
const IDENTITY = { "Accept-Encoding": "identity" };

const targets: [string, (env: Record<string, string>) => Promise<Target>][] = [
  ["node + file", (env) => fileTarget(data.objects, env)],
  ["workerd + r2", (env) => workerdTarget(data.objects, env)],
];

describe.each(targets)("with credentials: %s", (_name, start) => {
  let target: Target;
  const get = (path: string, headers: Record<string, string> = {}) => request(`${target.url}${path}`, { headers: { ...IDENTITY, ...headers } });
  beforeAll(async () => {
    target = await start({ AUTH_BASIC: HTPASSWD, AUTH_TOKENS: TOKEN });
  });
  afterAll(() => target?.stop());

  test("no credentials: 401 with both challenges, a text body with the request id, nothing of the plugin", async () => {
    const res = await get(BIG_URL);
    expect(res.status).toBe(401);
    expect(res.headers["www-authenticate"]).toBe('Basic realm="higress-plugin-server", charset="UTF-8", Bearer realm="higress-plugin-server"');
    expect(res.headers["cache-control"]).toBe("no-store");
    expect(res.body.toString()).toMatch(/^credentials required: .*\nrequest id: \S+\n$/);
    expect(res.body.toString()).toContain(`request id: ${res.headers["x-request-id"]}`);
  });

  test("Basic with the right password gets the exact bytes, private to the client", async () => {
    const res = await get(BIG_URL, { Authorization: basic("gateway", PASSWORD) });
    expect(res.status).toBe(200);
    expect(sha256(res.body)).toBe(sha256(BIG));
    expect(res.headers["cache-control"]).toBe("private, max-age=31536000, immutable");
  });

  test("a wrong password, an unknown user, a wrong or truncated token: 401 wrong credentials", async () => {
    for (const authorization of [basic("gateway", "guess"), basic("admin", PASSWORD), `Bearer ${TOKEN.slice(0, -1)}`, `Bearer ${TOKEN}0`]) {
      const res = await get(BIG_URL, { Authorization: authorization });
      expect(res.status, authorization).toBe(401);
      expect(res.body.toString()).toMatch(/^wrong credentials\n/);
    }
  });

  test("a bearer token gets plugin files and metadata", async () => {
    const wasm = await get(BIG_URL, { Authorization: `Bearer ${TOKEN}` });
    expect(wasm.status).toBe(200);
    expect(wasm.body.equals(Buffer.from(BIG))).toBe(true);
    const metadata = await get("/plugins/big/2.0.0/metadata.txt", { Authorization: `Bearer ${TOKEN}` });
    expect(metadata.status).toBe(200);
    expect((await get("/plugins/big/2.0.0/metadata.txt")).status).toBe(401);
  });

  test("health checks need nothing; the catalog and API need the credentials (CATALOG defaults to auth)", async () => {
    expect((await get("/healthz")).status).toBe(200);
    expect((await get("/readyz")).status).toBe(200);
    expect((await get("/")).status).toBe(401);
    expect((await get("/api/v1/plugins")).status).toBe(401);
    expect((await get("/plugins/big")).status).toBe(401);
    const api = await get("/api/v1/plugins", { Authorization: `Bearer ${TOKEN}`, Accept: "application/json" });
    expect(api.status).toBe(200);
    expect(api.headers["cache-control"]).toMatch(/^private\b|\bprivate\b/);
  });

  test("JSON error bodies carry the request id", async () => {
    const res = await get(BIG_URL, { Accept: "application/json" });
    expect(JSON.parse(res.body.toString())).toEqual({
      error: { status: 401, message: expect.stringMatching(/^credentials required/), requestId: res.headers["x-request-id"] },
    });
  });

  test.skipIf(!goClient)("a Go net/http client (the gateway's) with user:password@ in the URL downloads the plugin", async () => {
    const url = new URL(`${target.url}${BIG_URL}`);
    url.username = "gateway";
    url.password = PASSWORD;
    const { stdout } = await run(goClient!, [url.toString()]);
    expect(JSON.parse(stdout)).toMatchObject({ status: 200, wasmMagic: true, sha256: sha256(BIG) });
    url.password = "wrong";
    expect(JSON.parse((await run(goClient!, [url.toString()])).stdout)).toMatchObject({ status: 401, wasmMagic: false });
  });
});

describe.each(targets)("catalog switch and allow-list: %s", (name, start) => {
  const stops: Target[] = [];
  afterAll(() => Promise.all(stops.map((t) => t.stop())));
  const started = async (env: Record<string, string>) => {
    const t = await start(env);
    stops.push(t);
    return t;
  };

  test("CATALOG=public opens the catalog, not the downloads; CATALOG=off hides it even from credentials", async () => {
    const open = await started({ AUTH_TOKENS: TOKEN, CATALOG: "public" });
    expect((await request(`${open.url}/api/v1/plugins`)).status).toBe(200);
    expect((await request(`${open.url}${BIG_URL}`)).status).toBe(401);
    const off = await started({ AUTH_TOKENS: TOKEN, CATALOG: "off" });
    const hidden = await request(`${off.url}/`, { headers: { Authorization: `Bearer ${TOKEN}` } });
    expect(hidden.status).toBe(404);
    expect(hidden.body.toString()).toMatch(/^the catalog is turned off/);
    expect((await request(`${off.url}${BIG_URL}`, { headers: { Authorization: `Bearer ${TOKEN}` } })).status).toBe(200);
  });

  test("percent-encoding a path gets nothing past the guard (review N2): the router matches the path the guard classified", async () => {
    // A plugin named "plugins": /%70lugins/1.0.0/plugin.wasm once decoded to its download.
    const objects = new Map(data.objects);
    for (const [key, bytes] of data.objects) if (key.startsWith("plugins/big/2.0.0/")) objects.set(key.replace("plugins/big/2.0.0/", "plugins/plugins/2.0.0/"), bytes);
    const off = name.startsWith("node") ? await fileTarget(objects, { AUTH_TOKENS: TOKEN, CATALOG: "off" }) : await workerdTarget(objects, { AUTH_TOKENS: TOKEN, CATALOG: "off" });
    stops.push(off);
    const bearer = { Authorization: `Bearer ${TOKEN}` };
    expect((await request(`${off.url}/plugins/plugins/2.0.0/plugin.wasm`, { headers: bearer })).status).toBe(200);
    for (const path of ["/%61pi/v1/plugins", "/%61pi/v1/plugins/big", "/%6detrics", "/%70lugins/2.0.0/plugin.wasm", "/%70lugins/plugins/2.0.0/plugin.wasm", "/%2fplugins/big/2.0.0/plugin.wasm", "/nothing-here"]) {
      // Without credentials, every such path asks for them: its spelling decides nothing.
      const anonymous = await request(`${off.url}${path}`);
      expect(anonymous.status, path).toBe(401);
      // With them, none of these spellings is a route: never the catalog (CATALOG=off), the metrics or a plugin.
      const authorised = await request(`${off.url}${path}`, { headers: { ...bearer, Accept: "application/json" } });
      expect(authorised.status, path).toBe(404);
      expect(authorised.body.toString(), path).not.toMatch(/"versions"|plugin_server_|\0asm/);
    }
    // Encoded characters inside plugin segments still work as before (the gateway never sends them, people do).
    expect((await request(`${off.url}/plugins/%62ig/2.0.0/plugin.wasm`, { headers: bearer })).status).toBe(200);
  });

  test("ALLOW_CIDRS refuses other addresses with 403, whatever the credentials; health stays open", async () => {
    const closed = await started({ ALLOW_CIDRS: "192.0.2.0/24" });
    const res = await request(`${closed.url}${BIG_URL}`);
    expect(res.status).toBe(403);
    expect(res.body.toString()).toMatch(/is not allowed \(ALLOW_CIDRS\)/);
    expect((await request(`${closed.url}/healthz`)).status).toBe(200);
    const loopback = await started({ ALLOW_CIDRS: name.startsWith("node") ? "127.0.0.0/8, ::1" : "127.0.0.0/8, ::1, 192.0.2.0/24" });
    // workerd takes the client from CF-Connecting-IP, as Cloudflare sets it.
    expect((await request(`${loopback.url}${BIG_URL}`, { headers: { "CF-Connecting-IP": "192.0.2.9" } })).status).toBe(200);
  });
});

describe("trusted proxies (Node)", () => {
  let target: Target;
  beforeAll(async () => {
    target = await fileTarget(data.objects, { ALLOW_CIDRS: "198.51.100.0/24", TRUSTED_PROXIES: "127.0.0.1, ::1" });
  });
  afterAll(() => target?.stop());

  test("behind a trusted proxy, the client is the rightmost untrusted X-Forwarded-For entry; its request id is kept", async () => {
    const ok = await request(`${target.url}${BIG_URL}`, { headers: { "X-Forwarded-For": "203.0.113.1, 198.51.100.7", "X-Request-Id": "edge-42" } });
    expect(ok.status).toBe(200);
    expect(ok.headers["x-request-id"]).toBe("edge-42");
    // A forged leftmost entry does not help a client the proxy saw elsewhere.
    const forged = await request(`${target.url}${BIG_URL}`, { headers: { "X-Forwarded-For": "198.51.100.7, 203.0.113.1" } });
    expect(forged.status).toBe(403);
    expect(forged.body.toString()).toContain("address 203.0.113.1 is not allowed");
  });
});

describe("edge cache under credentials (workerd)", () => {
  let target: Target;
  beforeAll(async () => {
    target = await workerdTarget(data.objects, { AUTH_TOKENS: TOKEN, ALLOW_CIDRS: "192.0.2.0/24" });
  });
  afterAll(() => target?.stop());
  const get = (headers: Record<string, string>) => request(`${target.url}${BIG_URL}`, { headers: { ...IDENTITY, "CF-Connecting-IP": "192.0.2.9", ...headers } });

  test("a cached plugin is only answered after the credentials are checked, and stays private", async () => {
    const first = await get({ Authorization: `Bearer ${TOKEN}` });
    expect(first.status).toBe(200);
    let second = first;
    for (let i = 0; i < 20 && second.headers["x-edge-cache"] !== "hit"; i++) second = await get({ Authorization: `Bearer ${TOKEN}` });
    expect(second.headers["x-edge-cache"]).toBe("hit");
    expect(second.headers["cache-control"]).toBe("private, max-age=31536000, immutable");
    expect(second.headers["x-request-id"]).not.toBe(first.headers["x-request-id"]);
    expect(second.body.equals(Buffer.from(BIG))).toBe(true);
    expect((await get({})).status).toBe(401);
    expect((await get({ Authorization: `Bearer ${TOKEN}`, "CF-Connecting-IP": "203.0.113.1" })).status).toBe(403);
  });
});

describe("a flood of wrong Basic headers (security review N1)", () => {
  // Cost 10, htpasswd's default: 50-100 ms of a core per check in bcryptjs.
  const HTPASSWD_10 = `gateway:${hashSync(PASSWORD, 10)}\n`;
  const p99 = (samples: number[]) => [...samples].sort((a, b) => a - b)[Math.floor(samples.length * 0.99)]!;
  const junk = () => basic("gateway", `guess-${Math.random()}`);

  test("Node: from many addresses, probes and a gateway's download stay fast; checks beyond the queue get 503 + Retry-After", async () => {
    const target = await fileTarget(data.objects, { AUTH_BASIC: HTPASSWD_10, TRUSTED_PROXIES: "127.0.0.1, ::1" });
    try {
      const gateway = { ...IDENTITY, Authorization: basic("gateway", PASSWORD) };
      expect((await request(`${target.url}${BIG_URL}`, { headers: gateway })).status).toBe(200); // its verdict is remembered, as in a rollout
      const statuses = new Map<number, number>();
      let retryAfter = true;
      let stop = false;
      // 32 attackers at once, each request from a new address, so no per-address budget holds them.
      const attackers = Array.from({ length: 32 }, async (_, a) => {
        for (let i = 0; !stop; i++) {
          const res = await request(`${target.url}${BIG_URL}`, { headers: { Authorization: junk(), "X-Forwarded-For": `10.${a}.${i >> 8 & 255}.${i & 255}` } });
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status === 503 && res.headers["retry-after"] !== "1") retryAfter = false;
        }
      });
      await sleep(300);
      const health: number[] = [];
      const downloads: number[] = [];
      for (let i = 0; i < 60; i++) {
        let started = performance.now();
        expect((await request(`${target.url}/healthz`)).status).toBe(200);
        health.push(performance.now() - started);
        started = performance.now();
        const res = await request(`${target.url}${BIG_URL}`, { headers: gateway });
        downloads.push(performance.now() - started);
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(BIG.length);
        await sleep(20);
      }
      stop = true;
      await Promise.all(attackers);
      console.log(`[access] bcrypt flood: statuses ${JSON.stringify(Object.fromEntries(statuses))}, /healthz p99 ${p99(health).toFixed(1)} ms, download p99 ${p99(downloads).toFixed(1)} ms`);
      expect(statuses.get(401)).toBeGreaterThan(0);
      expect(statuses.get(503)).toBeGreaterThan(0);
      expect([...statuses.keys()].sort()).toEqual([401, 503]);
      expect(retryAfter).toBe(true);
      expect(p99(health)).toBeLessThan(100);
      expect(p99(downloads)).toBeLessThan(100);
    } finally {
      await target.stop();
    }
  });

  test.each(targets)("%s: one address's failures are budgeted; spent, it gets 429 + Retry-After while others still get checked", async (_name, start) => {
    const target = await start({ AUTH_BASIC: HTPASSWD_10 });
    try {
      const from = (client: string, authorization: string) =>
        request(`${target.url}${BIG_URL}`, { headers: { ...IDENTITY, Authorization: authorization, "CF-Connecting-IP": client } });
      const attacker = _name.startsWith("node") ? "127.0.0.1" : "203.0.113.7";
      const answers = [];
      for (let i = 0; i < 12; i++) answers.push((await from(attacker, junk())).status);
      expect(answers).toEqual([...Array(10).fill(401), 429, 429]);
      const throttled = await from(attacker, junk());
      expect(throttled.status).toBe(429);
      expect(Number(throttled.headers["retry-after"])).toBeGreaterThanOrEqual(1);
      expect(throttled.body.toString()).toMatch(/^too many failed credential checks from this address/);
      // workerd takes the client from CF-Connecting-IP: another address has its own budget.
      if (!_name.startsWith("node")) expect((await from("198.51.100.3", basic("gateway", PASSWORD))).status).toBe(200);
    } finally {
      await target.stop();
    }
  });
});
