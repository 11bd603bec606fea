import { connect } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import parsePrometheus from "parse-prometheus-text-format";
import { afterAll, describe, expect, test } from "vitest";
import { BIG, BIG_GZIP, fixture, PLAIN } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { freePort } from "./support/net.ts";
import { fileTarget, type NodeServer } from "./support/targets.ts";

/**
 * What an operator sees of the Node entry: Prometheus metrics with exact counts after a known
 * sequence of requests, a request id on every answer, and an access log that tells a slow store
 * from a slow client and never shows a credential.
 */

const data = await fixture();
const servers: NodeServer[] = [];
afterAll(() => Promise.all(servers.map((s) => s.stop())));
const start = async (env: Record<string, string> = {}) => {
  const server = await fileTarget(data.objects, env);
  servers.push(server);
  return server;
};

type Labels = Record<string, string>;
async function scrape(url: string) {
  const res = await request(url);
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain; version=0\.0\.4/);
  const text = res.body.toString();
  // The parser throws on any line that is not valid exposition.
  const families = parsePrometheus(text);
  const family = (name: string) => families.find((f) => f.name === name);
  /** The sum of the samples whose labels include `labels`; 0 when there is none. */
  const value = (name: string, labels: Labels = {}) => {
    const samples = family(name)?.metrics.filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v)) ?? [];
    return samples.reduce((sum, m) => sum + Number(m.value ?? 0), 0);
  };
  /** A histogram's _count for one label set (the parser folds labelled histograms together, so read the line). */
  const count = (name: string, labels: string) => Number(new RegExp(`^${name}_count\\{${labels}\\} (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  return { families, family, value, count };
}

describe("GET /metrics", () => {
  test("exact counters after a known sequence of requests; the text parses as Prometheus exposition", async () => {
    const server = await start();
    const identity = { "Accept-Encoding": "identity" };
    for (let i = 0; i < 3; i++) expect((await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: identity })).status).toBe(200);
    for (let i = 0; i < 2; i++) expect((await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { "Accept-Encoding": "gzip" } })).status).toBe(200);
    expect((await request(`${server.url}/plugins/plain/1.0.0/plugin.wasm`, { headers: identity })).status).toBe(200);
    expect((await request(`${server.url}/plugins/big/9.9.9/plugin.wasm`)).status).toBe(404);
    expect((await request(`${server.url}/plugins/reference/1.0.0/metadata.txt`)).status).toBe(200);
    expect((await request(`${server.url}/healthz`)).status).toBe(200);
    expect((await request(`${server.url}/api/v1/plugins`)).status).toBe(200);
    // Scanner noise: none of these paths may become a label.
    for (let i = 0; i < 50; i++) await request(`${server.url}/plugins/scan-${i}/1.0.0/plugin.wasm`);
    await sleep(50);

    const m = await scrape(`${server.url}/metrics`);
    const requests = "plugin_server_http_requests_total";
    expect(m.value(requests, { route: "plugin", status_class: "2xx", encoding: "identity" })).toBe(4);
    expect(m.value(requests, { route: "plugin", status_class: "2xx", encoding: "gzip" })).toBe(2);
    expect(m.value(requests, { route: "plugin", status_class: "4xx" })).toBe(51);
    expect(m.value(requests, { route: "metadata", status_class: "2xx" })).toBe(1);
    expect(m.value(requests, { route: "health" })).toBe(1);
    expect(m.value(requests, { route: "api", status_class: "2xx" })).toBe(1);
    const plugin = m.value("plugin_server_http_response_bytes_total", { route: "plugin" });
    expect(plugin).toBeGreaterThanOrEqual(3 * BIG.byteLength + 2 * BIG_GZIP.byteLength + PLAIN.byteLength);
    expect(plugin).toBeLessThan(3 * BIG.byteLength + 2 * BIG_GZIP.byteLength + PLAIN.byteLength + 51 * 300); // plus the 404 texts
    expect(m.family("plugin_server_http_request_duration_seconds")?.type).toBe("HISTOGRAM");
    expect(m.count("plugin_server_http_request_duration_seconds", 'route="plugin"')).toBe(57);
    // The scrape itself is the one request in flight.
    expect(m.value("plugin_server_http_requests_in_flight")).toBe(1);
    const labels = new Set(m.families.flatMap((f) => f.metrics.flatMap((s) => Object.values(s.labels ?? {}))));
    expect([...labels].filter((l) => l.includes("scan-"))).toEqual([]);

    // big/2.0.0/plugin.wasm: loaded once (a miss), then answered from memory.
    expect(m.value("plugin_server_cache_lookups_total", { outcome: "miss" })).toBeGreaterThanOrEqual(3);
    expect(m.value("plugin_server_cache_lookups_total", { outcome: "hit" })).toBeGreaterThanOrEqual(4);
    expect(m.value("plugin_server_cache_bytes")).toBeGreaterThanOrEqual(BIG.byteLength + BIG_GZIP.byteLength);
    expect(m.value("plugin_server_store_operations_total", { operation: "get", outcome: "ok" })).toBeGreaterThanOrEqual(3);
    expect(m.count("plugin_server_store_operation_duration_seconds", 'operation="get"')).toBe(
      m.value("plugin_server_store_operations_total", { operation: "get" }),
    );
    expect(m.value("plugin_server_store_ready")).toBe(1);
    expect(m.value("plugin_server_cache_evictions_total")).toBe(0);
    expect(m.family("process_resident_memory_bytes")?.type).toBe("GAUGE");
    expect(m.family("plugin_server_build_info")?.metrics[0]?.labels).toMatchObject({ version: expect.stringMatching(/^\d+\.\d+\.\d+/) });
  });

  test("a second scrape counts exactly the requests in between", async () => {
    const server = await start();
    const before = await scrape(`${server.url}/metrics`);
    for (let i = 0; i < 7; i++) await request(`${server.url}/plugins/reference/1.0.0/plugin.wasm`);
    await sleep(50);
    const after = await scrape(`${server.url}/metrics`);
    const labels = { route: "plugin", status_class: "2xx" };
    expect(after.value("plugin_server_http_requests_total", labels) - before.value("plugin_server_http_requests_total", labels)).toBe(7);
    expect(after.value("plugin_server_http_requests_total", { route: "metrics" })).toBe(1);
  });

  test("METRICS_PORT serves them on a port of their own, open, and not on the main port; METRICS=false turns them off", async () => {
    const port = await freePort();
    const server = await start({ METRICS_PORT: String(port), AUTH_TOKENS: "tok_0123456789abcdef0123" });
    await sleep(200);
    expect(server.output()).toContain(`metrics on http://127.0.0.1:${port}/metrics`);
    const m = await scrape(`http://127.0.0.1:${port}/metrics`);
    expect(m.value("plugin_server_store_ready")).toBe(1);
    expect((await request(`http://127.0.0.1:${port}/plugins/big/2.0.0/plugin.wasm`)).status).toBe(404);
    expect((await request(`${server.url}/metrics`, { headers: { Authorization: "Bearer tok_0123456789abcdef0123" } })).status).toBe(404);
    const off = await start({ METRICS: "false" });
    expect((await request(`${off.url}/metrics`)).status).toBe(404);
  });
});

describe("request ids and the access log", () => {
  test("every answer has an X-Request-Id; an incoming one is ignored unless it comes from a trusted proxy", async () => {
    const server = await start({ LOG_FORMAT: "json" });
    const res = await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { "X-Request-Id": "forged" } });
    expect(res.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
    const missing = await request(`${server.url}/nope`);
    expect(missing.body.toString()).toContain(`request id: ${missing.headers["x-request-id"]}`);
    await sleep(100);
    const lines = server.output().split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
    const entry = lines.find((l) => l.path === "/plugins/big/2.0.0/plugin.wasm");
    expect(entry).toMatchObject({ requestId: res.headers["x-request-id"], status: 200, cache: "miss", remote: "127.0.0.1" });
    expect(entry.storeMs).toBeGreaterThan(0);

    const proxied = await start({ TRUSTED_PROXIES: "127.0.0.1, ::1" });
    const kept = await request(`${proxied.url}/healthz`, { headers: { "X-Request-Id": "lb-7f3a" } });
    expect(kept.headers["x-request-id"]).toBe("lb-7f3a");
    // Ids that could split a log line or a header are replaced.
    const bad = await request(`${proxied.url}/healthz`, { headers: { "X-Request-Id": "a b\tc" } });
    expect(bad.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  test("a second download is a memory hit with no store time", async () => {
    const server = await start({ LOG_FORMAT: "json" });
    await request(`${server.url}/plugins/reference/1.0.0/plugin.wasm`);
    await request(`${server.url}/plugins/reference/1.0.0/plugin.wasm`);
    await sleep(100);
    const entries = server.output().split("\n").filter((l) => l.includes("reference/1.0.0/plugin.wasm")).map((l) => JSON.parse(l));
    expect(entries.map((e) => e.cache)).toEqual(["miss", "hit"]);
    expect(entries[1].storeMs).toBe(0);
  });

  test("credentials never reach the log: no Authorization, no userinfo of an absolute-form request target", async () => {
    const server = await start({ AUTH_TOKENS: "tok_secret_0123456789abcdef" });
    await request(`${server.url}/plugins/big/2.0.0/plugin.wasm`, { headers: { Authorization: "Bearer tok_secret_0123456789abcdef" } });
    const port = new URL(server.url).port;
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () =>
        socket.write(`GET http://gateway:hunter2-password@127.0.0.1:${port}/plugins/big/2.0.0/plugin.wasm HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`),
      );
      let text = "";
      socket.on("data", (d) => (text += d.toString("latin1")));
      socket.on("end", () => resolve(text));
      socket.on("error", reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 401/);
    await sleep(100);
    const log = server.output();
    expect(log).toContain('"GET http://127.0.0.1:');
    expect(log).not.toContain("hunter2");
    expect(log).not.toContain("tok_secret");
  });
});
