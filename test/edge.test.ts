import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { BIG, BIG_GZIP, fixture } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { workerdTarget } from "./support/targets.ts";

/** The worker in workerd: the Cache API keeps plugin downloads in the colo, off R2. */

const data = await fixture();

describe("edge cache (workerd + R2)", () => {
  let target: Awaited<ReturnType<typeof workerdTarget>>;
  beforeAll(async () => {
    target = await workerdTarget(data.objects);
  });
  afterAll(() => target?.stop());

  const remove = async (key: string) => {
    const bucket = (await target.mf.getR2Bucket("PLUGINS")) as unknown as { delete(key: string): Promise<void> };
    await bucket.delete(`edge/${key}`);
  };

  test("the second GET of a plugin is served from the cache, even once R2 no longer has it", async () => {
    const url = `${target.url}/plugins/big/2.0.0/plugin.wasm`;
    const first = await request(url, { headers: { "Accept-Encoding": "identity" } });
    expect(first.status).toBe(200);
    expect(first.headers["x-edge-cache"]).toBe("miss");
    const firstGzip = await request(url, { headers: { "Accept-Encoding": "gzip" } });
    expect(firstGzip.headers["x-edge-cache"]).toBe("miss");

    await remove("plugins/big/2.0.0/plugin.wasm");
    await remove("plugins/big/2.0.0/plugin.wasm.gz");

    const second = await request(url, { headers: { "Accept-Encoding": "identity" } });
    expect(second.status).toBe(200);
    expect(second.headers["x-edge-cache"]).toBe("hit");
    // Stored with its Cache-Tag: what `plugin-uploader --purge-cloudflare` purges it by (both encodings' entries).
    expect(second.headers["cache-tag"]).toBe("plugin:big,plugin:big@2.0.0");
    expect(second.headers["content-length"]).toBe(String(BIG.byteLength));
    expect(Buffer.compare(second.body, Buffer.from(BIG))).toBe(0);

    // gzip clients have their own entry, with the stored gzip bytes untouched.
    const secondGzip = await request(url, { headers: { "Accept-Encoding": "gzip" } });
    expect(secondGzip.headers["x-edge-cache"]).toBe("hit");
    expect(secondGzip.headers["cache-tag"]).toBe("plugin:big,plugin:big@2.0.0");
    expect(secondGzip.headers["content-encoding"]).toBe("gzip");
    expect(secondGzip.headers["content-length"]).toBe(String(BIG_GZIP.byteLength)); // as on the miss: not re-encoded on the way
    expect(secondGzip.headers["x-edge-stored-encoding"]).toBeUndefined();
    expect(Buffer.compare(secondGzip.body, Buffer.from(BIG_GZIP))).toBe(0);
    expect(Buffer.compare(gunzipSync(secondGzip.body), Buffer.from(BIG))).toBe(0);

    // Ranges and conditionals go to R2 (and so now find nothing); errors are never cached.
    expect((await request(url, { headers: { Range: "bytes=0-9" } })).status).toBe(404);
    expect((await request(`${target.url}/plugins/big/9.9.9/plugin.wasm`)).headers["x-edge-cache"]).toBeUndefined();
  });

  test("listings are not cached", async () => {
    const res = await request(`${target.url}/plugins/`, { headers: { Accept: "application/json" } });
    expect(res.status).toBe(200);
    expect(res.headers["x-edge-cache"]).toBeUndefined();
  });
});

describe("edge cache and re-pointed aliases", () => {
  test("with ALIAS_CACHE_CONTROL max-age=1 the edge serves the new target within seconds", async () => {
    const other = new Uint8Array(data.objects.get("plugins/plain/1.0.0/plugin.wasm")!);
    const objects = new Map(data.objects);
    objects.set("plugins/big/3.0.0/plugin.wasm", other);
    const target = await workerdTarget(objects, { ALIAS_CACHE_CONTROL: "public, max-age=1" });
    try {
      const url = `${target.url}/plugins/big/1.0.0/plugin.wasm`;
      const identity = { "Accept-Encoding": "identity" };
      const first = await request(url, { headers: identity });
      expect(first.headers["x-edge-cache"]).toBe("miss");
      expect(first.headers["cache-control"]).toBe("public, max-age=1"); // never immutable: an alias moves
      expect((await request(url, { headers: identity })).headers["x-edge-cache"]).toBe("hit");
      const bucket = (await target.mf.getR2Bucket("PLUGINS")) as unknown as { put(key: string, value: string): Promise<unknown> };
      await bucket.put("edge/plugins/big/aliases.json", JSON.stringify({ aliases: { "1.0.0": "3.0.0" } }));
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const moved = await request(url, { headers: identity });
      expect(moved.headers["x-alias-of"]).toBe("3.0.0");
      expect(Buffer.compare(moved.body, Buffer.from(other))).toBe(0);
    } finally {
      await target.stop();
    }
  });
});
