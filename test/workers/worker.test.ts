import { env, SELF } from "cloudflare:test";
import { beforeAll, describe, expect, test } from "vitest";
import worker, { clientAddress } from "../../src/worker.ts";

/**
 * The worker entry inside the Workers runtime itself (@cloudflare/vitest-pool-workers), with
 * the R2 binding from wrangler.toml: the core of the request matrix, from within workerd.
 * (test/server-matrix.test.ts runs the whole matrix against the same bundle over real HTTP.)
 */

const WASM = new Uint8Array([0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, 0x05, 0x03, 0x01, 0x00, 0x01]);
const base = "https://plugins.example.com";

async function gzip(data: Uint8Array<ArrayBuffer>): Promise<Uint8Array> {
  const stream = new Blob([data]).stream().pipeThrough(new CompressionStream("gzip"));
  return new Uint8Array(await new Response(stream).arrayBuffer());
}

describe("worker entry in workerd with an R2 binding", () => {
  beforeAll(async () => {
    await env.PLUGINS.put("plugins/key-auth/2.0.0/plugin.wasm", WASM);
    await env.PLUGINS.put("plugins/key-auth/2.0.0/plugin.wasm.gz", await gzip(WASM));
    await env.PLUGINS.put("plugins/key-auth/aliases.json", JSON.stringify({ aliases: { "1.0.0": "2.0.0" } }));
  });

  test("GET answers the module with its exact length and the immutable cache policy", async () => {
    const res = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/wasm");
    expect(res.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(WASM);
  });

  test("an alias serves its target's bytes without a redirect", async () => {
    const res = await SELF.fetch(`${base}/plugins/key-auth/1.0.0/plugin.wasm`, { redirect: "manual" });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-alias-of")).toBe("2.0.0");
    // An alias can be re-pointed: a short max-age, never immutable (the edge cache honours it).
    expect(res.headers.get("cache-control")).toBe("public, max-age=300");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(WASM);
  });

  test("ranges: 206 with Content-Range, 416 with bytes */size", async () => {
    const part = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { headers: { Range: "bytes=0-3" } });
    expect(part.status).toBe(206);
    expect(part.headers.get("content-range")).toBe(`bytes 0-3/${WASM.length}`);
    expect(new Uint8Array(await part.arrayBuffer())).toEqual(WASM.subarray(0, 4));
    const none = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { headers: { Range: `bytes=${WASM.length}-` } });
    expect(none.status).toBe(416);
    expect(none.headers.get("content-range")).toBe(`bytes */${WASM.length}`);
    await none.arrayBuffer();
  });

  test("If-None-Match with the ETag: 304", async () => {
    const first = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { headers: { Range: "bytes=0-0" } });
    await first.arrayBuffer();
    const res = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { headers: { "If-None-Match": first.headers.get("etag")! } });
    expect(res.status).toBe(304);
  });

  test("errors: 404 naming the versions, 400 for a bad name, 405 with Allow", async () => {
    const missing = await SELF.fetch(`${base}/plugins/key-auth/9.9.9/plugin.wasm`);
    expect(missing.status).toBe(404);
    expect(await missing.text()).toContain("versions: 1.0.0 (alias of 2.0.0), 2.0.0");
    const bad = await SELF.fetch(`${base}/plugins/a%2Fb/1.0.0/plugin.wasm`);
    expect(bad.status).toBe(400);
    await bad.arrayBuffer();
    const post = await SELF.fetch(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { method: "POST" });
    expect(post.status).toBe(405);
    expect(post.headers.get("allow")).toBe("GET, HEAD");
    await post.arrayBuffer();
  });
});

describe("worker settings and the client's address", () => {
  const ctx = { waitUntil: () => {}, passThroughOnException: () => {}, props: {} } as unknown as Parameters<NonNullable<typeof worker.fetch>>[2];
  /** The test bindings with some vars of the test's own. */
  const vars = (more: Record<string, string>) => ({ ...env, ...more }) as unknown as Env;

  test("an immutable ALIAS_CACHE_CONTROL is refused, as the Node entry refuses it: an alias can be re-pointed", async () => {
    const res = await worker.fetch!(new Request(`${base}/plugins/key-auth/1.0.0/plugin.wasm`) as never, vars({ ALIAS_CACHE_CONTROL: "public, max-age=60, immutable" }), ctx);
    expect(res.status).toBe(503);
    expect(await res.text()).toMatch(/configuration is invalid/);
  });

  test("CF-Connecting-IP is believed only from Cloudflare's network (review N7), or when TRUST_CF_CONNECTING_IP=true", () => {
    const headers = { "CF-Connecting-IP": "192.0.2.9" };
    const selfHosted = new Request(`${base}/`, { headers }); // a workerd of one's own: no cf object
    const onCloudflare = new Request(`${base}/`, { headers, cf: { colo: "FRA" } } as RequestInit);
    expect(clientAddress(selfHosted, "auto")).toBeUndefined();
    expect(clientAddress(onCloudflare, "auto")).toBe("192.0.2.9");
    expect(clientAddress(selfHosted, "true")).toBe("192.0.2.9");
    expect(clientAddress(onCloudflare, "false")).toBeUndefined();
  });

  test("without a believable client address, ALLOW_CIDRS lets nobody in", async () => {
    const res = await worker.fetch!(new Request(`${base}/plugins/key-auth/2.0.0/plugin.wasm`, { headers: { "CF-Connecting-IP": "192.0.2.9" } }) as never, vars({ ALLOW_CIDRS: "192.0.2.0/24" }), ctx);
    expect(res.status).toBe(403);
    expect(await res.text()).toMatch(/^address unknown is not allowed/);
  });
});
