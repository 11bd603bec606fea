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
    expect(second.headers["content-length"]).toBe(String(BIG.byteLength));
    expect(Buffer.compare(second.body, Buffer.from(BIG))).toBe(0);

    // gzip clients have their own entry, with the stored gzip bytes untouched.
    const secondGzip = await request(url, { headers: { "Accept-Encoding": "gzip" } });
    expect(secondGzip.headers["x-edge-cache"]).toBe("hit");
    expect(secondGzip.headers["content-encoding"]).toBe("gzip");
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
