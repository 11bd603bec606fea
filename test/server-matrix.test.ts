import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { BIG, BIG_GZIP, fixture, md5, PLAIN, REFERENCE, REFERENCE_METADATA, sha256, type Fixture } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { fileTarget, s3Target, workerdTarget, type Target } from "./support/targets.ts";

/**
 * The request matrix of the plugin server: every status and header the contract asks for,
 * run unchanged against the Node entry over a directory, over S3 (radosgw), and the worker
 * entry in workerd over R2.
 */

const s3 = inject("s3");
const data = await fixture();
/** Cloudflare's edge (and workerd under Miniflare) compresses an identity response for a gzip client itself. */
type Start = ((f: Fixture) => Promise<Target>) | null;
// The backends without the in-memory cache (so every request reaches them), then S3 behind it.
const NO_CACHE = { CACHE_TTL_SECONDS: "0" };
const targets: [string, Start, { edgeCompresses: boolean }][] = [
  ["node + file", (f) => fileTarget(f.objects, NO_CACHE), { edgeCompresses: false }],
  ["node + s3", s3 ? (f) => s3Target(s3, f.objects, NO_CACHE) : null, { edgeCompresses: false }],
  ["node + s3, cached", s3 ? (f) => s3Target(s3, f.objects) : null, { edgeCompresses: false }],
  ["workerd + r2", (f) => workerdTarget(f.objects), { edgeCompresses: true }],
];

const WASM_MAGIC = Buffer.from([0, 0x61, 0x73, 0x6d]);
const HELLO = "/plugins/hello-world/1.0.0/plugin.wasm";
const BIG_URL = "/plugins/big/2.0.0/plugin.wasm";
const IDENTITY = { "Accept-Encoding": "identity" };

describe.each(targets)("%s", (_name, start, { edgeCompresses }) => {
  let target: Target;
  const get = (path: string, headers: Record<string, string> = {}, method = "GET") =>
    request(`${target.url}${path}`, { method, headers });

  beforeAll(async () => {
    if (start) target = await start(data);
  });
  afterAll(async () => {
    await target?.stop();
  });

  describe.skipIf(!start)("plugin.wasm", () => {
    test("GET sends the exact bytes with the headers a plugin needs", async () => {
      const res = await get(BIG_URL, IDENTITY);
      expect(res.status).toBe(200);
      expect(Buffer.compare(res.body, Buffer.from(BIG))).toBe(0);
      expect(res.headers["content-type"]).toBe("application/wasm");
      expect(res.headers["content-length"]).toBe(String(BIG.byteLength));
      expect(res.headers["content-encoding"]).toBeUndefined();
      expect(res.headers.etag).toMatch(/^(W\/)?"[^"]+"$/);
      expect(new Date(res.headers["last-modified"]!).getTime()).not.toBeNaN();
      expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      expect(res.headers["x-content-type-options"]).toBe("nosniff");
      expect(res.headers.vary).toMatch(/Accept-Encoding/i);
      expect(res.headers["accept-ranges"]).toBe("bytes");
    });

    test("a client that accepts gzip gets the stored gzip variant, byte for byte", async () => {
      const res = await get(BIG_URL, { "Accept-Encoding": "gzip" });
      expect(res.status).toBe(200);
      expect(res.headers["content-encoding"]).toBe("gzip");
      expect(res.headers["content-type"]).toBe("application/wasm");
      expect(res.headers["content-length"]).toBe(String(BIG_GZIP.byteLength));
      expect(res.headers.vary).toMatch(/Accept-Encoding/i);
      expect(Buffer.compare(res.body, Buffer.from(BIG_GZIP))).toBe(0);
      expect(Buffer.compare(gunzipSync(res.body), Buffer.from(BIG))).toBe(0);
    });

    test("gzip refused with q=0, or no gzip variant stored: identity", async () => {
      const refused = await get(BIG_URL, { "Accept-Encoding": "gzip;q=0, identity" });
      expect(refused.headers["content-encoding"]).toBeUndefined();
      expect(refused.body.length).toBe(BIG.byteLength);
      const plain = await get("/plugins/plain/1.0.0/plugin.wasm", { "Accept-Encoding": "gzip" });
      expect(plain.status).toBe(200);
      expect(plain.headers["content-encoding"]).toBe(edgeCompresses ? "gzip" : undefined);
      const body = plain.headers["content-encoding"] === "gzip" ? gunzipSync(plain.body) : plain.body;
      expect(Buffer.compare(body, Buffer.from(PLAIN))).toBe(0);
    });

    test("HEAD sends the same headers, an exact Content-Length and no body", async () => {
      const got = await get(BIG_URL, IDENTITY);
      const head = await get(BIG_URL, IDENTITY, "HEAD");
      expect(head.status).toBe(200);
      expect(head.body.length).toBe(0);
      expect(head.headers["content-length"]).toBe(String(BIG.byteLength));
      for (const h of ["etag", "last-modified", "content-type", "cache-control"]) expect(head.headers[h]).toBe(got.headers[h]);
      const gzipHead = await get(BIG_URL, { "Accept-Encoding": "gzip" }, "HEAD");
      expect(gzipHead.headers["content-encoding"]).toBe("gzip");
      expect(gzipHead.headers["content-length"]).toBe(String(BIG_GZIP.byteLength));
    });

    test("many HEADs and aborted downloads in a row do not exhaust the server", async () => {
      for (let i = 0; i < 60; i++) expect((await get(BIG_URL, IDENTITY, "HEAD")).status).toBe(200);
      for (let i = 0; i < 20; i++) await request(`${target.url}${BIG_URL}`, { headers: IDENTITY, abortAfterBytes: 1 });
      const res = await get(BIG_URL, IDENTITY);
      expect(res.body.length).toBe(BIG.byteLength);
    });
  });

  describe.skipIf(!start)("conditional requests (RFC 9110 section 13)", () => {
    test("If-None-Match with the current ETag: 304 with validators and no body", async () => {
      const { headers } = await get(BIG_URL, IDENTITY);
      for (const tag of [headers.etag!, `W/${headers.etag!.replace(/^W\//, "")}`, `"nope", ${headers.etag!}`, "*"]) {
        const res = await get(BIG_URL, { ...IDENTITY, "If-None-Match": tag });
        expect(res.status, tag).toBe(304);
        expect(res.body.length).toBe(0);
        expect(res.headers.etag).toBe(headers.etag);
        expect(res.headers["cache-control"]).toBe("public, max-age=31536000, immutable");
      }
      const head = await get(BIG_URL, { ...IDENTITY, "If-None-Match": headers.etag! }, "HEAD");
      expect(head.status).toBe(304);
    });

    test("If-None-Match with another ETag: 200", async () => {
      const res = await get(BIG_URL, { ...IDENTITY, "If-None-Match": '"something-else"' });
      expect(res.status).toBe(200);
      expect(res.body.length).toBe(BIG.byteLength);
    });

    test("If-Modified-Since: 304 when not newer, 200 when older; ignored next to If-None-Match", async () => {
      const { headers } = await get(BIG_URL, IDENTITY);
      const lastModified = headers["last-modified"]!;
      expect((await get(BIG_URL, { ...IDENTITY, "If-Modified-Since": lastModified })).status).toBe(304);
      const later = new Date(Date.parse(lastModified) + 3600_000).toUTCString();
      expect((await get(BIG_URL, { ...IDENTITY, "If-Modified-Since": later })).status).toBe(304);
      const earlier = new Date(Date.parse(lastModified) - 3600_000).toUTCString();
      expect((await get(BIG_URL, { ...IDENTITY, "If-Modified-Since": earlier })).status).toBe(200);
      // Section 13.1.3: If-Modified-Since is ignored when If-None-Match is present.
      const both = await get(BIG_URL, { ...IDENTITY, "If-Modified-Since": later, "If-None-Match": '"other"' });
      expect(both.status).toBe(200);
      // An invalid date is ignored.
      expect((await get(BIG_URL, { ...IDENTITY, "If-Modified-Since": "yesterday" })).status).toBe(200);
    });

    test("If-Match and If-Unmodified-Since: 412 when false, 200 when true", async () => {
      const { headers } = await get(BIG_URL, IDENTITY);
      const failed = await get(BIG_URL, { ...IDENTITY, "If-Match": '"other"' });
      expect(failed.status).toBe(412);
      expect(failed.body.subarray(0, 4).equals(WASM_MAGIC)).toBe(false);
      expect((await get(BIG_URL, { ...IDENTITY, "If-Match": headers.etag! })).status).toBe(200);
      expect((await get(BIG_URL, { ...IDENTITY, "If-Match": "*" })).status).toBe(200);
      const earlier = new Date(Date.parse(headers["last-modified"]!) - 3600_000).toUTCString();
      expect((await get(BIG_URL, { ...IDENTITY, "If-Unmodified-Since": earlier })).status).toBe(412);
      expect((await get(BIG_URL, { ...IDENTITY, "If-Unmodified-Since": headers["last-modified"]! })).status).toBe(200);
    });
  });

  describe.skipIf(!start)("ranges (RFC 9110 section 14)", () => {
    const size = BIG.byteLength;
    const cases: [string, number, number][] = [
      ["bytes=0-99", 0, 99],
      ["bytes=1000-", 1000, size - 1],
      ["bytes=-500", size - 500, size - 1],
      [`bytes=100-${size + 10_000}`, 100, size - 1],
      [`bytes=-${size + 5}`, 0, size - 1],
      ["BYTES = 5-5", 5, 5],
    ];
    test.each(cases)("%s -> 206 with Content-Range", async (range, start, end) => {
      const res = await get(BIG_URL, { "Accept-Encoding": "gzip", Range: range });
      expect(res.status).toBe(206);
      expect(res.headers["content-range"]).toBe(`bytes ${start}-${end}/${size}`);
      // Ranges apply to the identity encoding, even for a client that accepts gzip; only an
      // edge that compresses on the fly may wrap the part in gzip on its way out.
      if (edgeCompresses && res.headers["content-encoding"] === "gzip") {
        expect(Buffer.compare(gunzipSync(res.body), Buffer.from(BIG.subarray(start, end + 1)))).toBe(0);
      } else {
        expect(res.headers["content-encoding"]).toBeUndefined();
        expect(res.headers["content-length"]).toBe(String(end - start + 1));
        expect(Buffer.compare(res.body, Buffer.from(BIG.subarray(start, end + 1)))).toBe(0);
      }
      const identity = await get(BIG_URL, { ...IDENTITY, Range: range });
      expect(identity.status).toBe(206);
      expect(identity.headers["content-length"]).toBe(String(end - start + 1));
      expect(Buffer.compare(identity.body, Buffer.from(BIG.subarray(start, end + 1)))).toBe(0);
    });

    test.each([`bytes=${size}-`, `bytes=${size + 1}-${size + 10}`, "bytes=-0"])(
      "%s -> 416 with Content-Range: bytes */size",
      async (range) => {
        const res = await get(BIG_URL, { Range: range });
        expect(res.status).toBe(416);
        expect(res.headers["content-range"]).toBe(`bytes */${size}`);
        expect(res.body.subarray(0, 4).equals(WASM_MAGIC)).toBe(false);
      },
    );

    test.each(["bytes=0-1,5-6", "bytes=5-1", "items=0-1", "bytes=abc", "bytes="])(
      "%s is ignored: 200 with the whole plugin",
      async (range) => {
        const res = await get(BIG_URL, { ...IDENTITY, Range: range });
        expect(res.status).toBe(200);
        expect(res.body.length).toBe(size);
      },
    );

    test("If-Range: the range applies while the ETag matches, else the whole plugin", async () => {
      const { headers } = await get(BIG_URL, IDENTITY);
      const current = await get(BIG_URL, { Range: "bytes=0-9", "If-Range": headers.etag! });
      expect(current.status).toBe(206);
      const stale = await get(BIG_URL, { ...IDENTITY, Range: "bytes=0-9", "If-Range": '"old"' });
      expect(stale.status).toBe(200);
      expect(stale.body.length).toBe(size);
      const byDate = await get(BIG_URL, { Range: "bytes=0-9", "If-Range": headers["last-modified"]! });
      expect(byDate.status).toBe(206);
      // A validator that cannot be read matches nothing (RFC 9110 §13.1.5): the whole plugin, never a piece of it.
      for (const unreadable of ["yesterday", headers.etag!.slice(1), "Tue, 31 Feb 2026 00:00:00 GMT"]) {
        const res = await get(BIG_URL, { ...IDENTITY, Range: "bytes=0-9", "If-Range": unreadable });
        expect([res.status, res.body.length], unreadable).toEqual([200, size]);
      }
    });

    test("HEAD ignores Range", async () => {
      const res = await get(BIG_URL, { ...IDENTITY, Range: "bytes=0-9" }, "HEAD");
      expect(res.status).toBe(200);
      expect(res.headers["content-length"]).toBe(String(size));
    });
  });

  describe.skipIf(!start)("versions and aliases", () => {
    test("an alias serves its target's bytes at its own URL, without a redirect", async () => {
      const res = await get("/plugins/big/1.0.0/plugin.wasm", IDENTITY);
      expect(res.status).toBe(200);
      expect(Buffer.compare(res.body, Buffer.from(BIG))).toBe(0);
      expect(res.headers["x-alias-of"]).toBe("2.0.0");
      expect(res.headers.location).toBeUndefined();
      const gz = await get("/plugins/big/1.0.0/plugin.wasm", { "Accept-Encoding": "gzip" });
      expect(gz.headers["content-encoding"]).toBe("gzip");
      const ranged = await get("/plugins/big/1.0.0/plugin.wasm", { Range: "bytes=-4" });
      expect(ranged.status).toBe(206);
    });

    test("a missing version: 404 naming the versions that exist, never wasm", async () => {
      const res = await get("/plugins/big/9.9.9/plugin.wasm");
      expect(res.status).toBe(404);
      expect(res.headers["content-type"]).toMatch(/^text\/plain/);
      expect(res.body.toString()).toContain('plugin "big" has no version "9.9.9"; versions: 1.0.0 (alias of 2.0.0), 2.0.0');
      expect(res.headers["cache-control"]).toBe("no-store");
      const json = await get("/plugins/big/9.9.9/plugin.wasm", { Accept: "application/json" });
      expect(json.status).toBe(404);
      expect(JSON.parse(json.body.toString())).toMatchObject({
        error: { status: 404, plugin: "big", version: "9.9.9", versions: ["2.0.0"], aliases: { "1.0.0": "2.0.0" } },
      });
    });

    test("a missing plugin or file: 404 that says so", async () => {
      const plugin = await get("/plugins/no-such-plugin/1.0.0/plugin.wasm");
      expect(plugin.status).toBe(404);
      expect(plugin.body.toString()).toContain('no plugin named "no-such-plugin"');
      const file = await get("/plugins/big/2.0.0/README.md");
      expect(file.status).toBe(404);
      expect(file.body.toString()).toContain('has no file "README.md"; files: plugin.wasm, plugin.wasm.gz');
    });

    test("an invalid aliases.json is reported as the store's fault (502), not hidden as a 404", async () => {
      const res = await get("/plugins/broken/2.0.0/plugin.wasm");
      expect(res.status).toBe(502);
      expect(res.body.toString()).toContain("plugins/broken/aliases.json is invalid");
      expect((await get("/plugins/broken/1.0.0/plugin.wasm")).status).toBe(200);
    });
  });

  describe.skipIf(!start)("metadata", () => {
    test("a stored metadata.txt is sent as stored", async () => {
      const res = await get("/plugins/reference/1.0.0/metadata.txt");
      expect(res.status).toBe(200);
      expect(res.headers["content-type"]).toBe("text/plain; charset=utf-8");
      expect(res.body.toString()).toBe(REFERENCE_METADATA);
    });

    test("without stored metadata, metadata.txt is derived in the reference format plus our lines", async () => {
      const res = await get("/plugins/plain/1.0.0/metadata.txt");
      expect(res.status).toBe(200);
      const lines = res.body.toString().split("\n");
      expect(lines[0]).toBe("Plugin Name: plain");
      expect(lines[1]).toBe(`Size: ${PLAIN.byteLength} bytes`);
      expect(lines[2]).toMatch(/^Last Modified: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      expect(lines[3]).toMatch(/^Created: \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$/);
      expect(lines[4]).toBe(`MD5: ${md5(PLAIN)}`);
      expect(lines[5]).toBe(`SHA256: ${sha256(PLAIN)}`);
      expect(lines[6]).toBe("Version: 1.0.0");
      expect(res.headers["content-length"]).toBe(String(res.body.length));
    });

    test("metadata.json has the same facts, typed; derived when not stored", async () => {
      const derived = JSON.parse((await get("/plugins/reference/1.0.0/metadata.json")).body.toString());
      expect(derived).toMatchObject({ name: "reference", version: "1.0.0", size: REFERENCE.byteLength, md5: md5(REFERENCE), sha256: sha256(REFERENCE) });
      const stored = await get("/plugins/hello-world/1.0.0/metadata.json");
      expect(stored.headers["content-type"]).toBe("application/json");
      expect(JSON.parse(stored.body.toString())).toMatchObject({ name: "hello-world", sha256: sha256(data.hello) });
    });

    test("an alias answers its target's metadata", async () => {
      const res = await get("/plugins/big/1.0.0/metadata.json");
      expect(res.status).toBe(200);
      expect(JSON.parse(res.body.toString())).toMatchObject({ version: "2.0.0", sha256: sha256(BIG) });
    });
  });

  describe.skipIf(!start)("bad input", () => {
    test.each([
      "/plugins/..%2F..%2Fetc/1.0.0/plugin.wasm",
      "/plugins/a%2Fb/1.0.0/plugin.wasm",
      "/plugins/key-auth/1.0.0%00/plugin.wasm",
      "/plugins/key-auth/1.0.0/plugin.wasm%00.txt",
      "/plugins/key%20auth/1.0.0/plugin.wasm",
      `/plugins/${"a".repeat(200)}/1.0.0/plugin.wasm`,
      "/plugins/key-auth/1.0.0/plugin.wasm/extra",
      "/plugins/key-auth//plugin.wasm",
      "/plugins/%E0%A4%A/1.0.0/plugin.wasm",
      "/plugins/.hidden/1.0.0/plugin.wasm",
    ])("%s -> 400 with a reason", async (path) => {
      const res = await get(path);
      expect(res.status).toBe(400);
      expect(res.body.toString()).toMatch(/not valid|slash|deeper|empty segment|longer than/);
      expect(res.body.subarray(0, 4).equals(WASM_MAGIC)).toBe(false);
    });

    test("dot segments are resolved before routing and never leave /plugins", async () => {
      const res = await get("/plugins/key-auth/../../plugin.wasm/x/y");
      expect(res.status).toBe(404);
      expect(res.body.subarray(0, 4).equals(WASM_MAGIC)).toBe(false);
      const within = await get("/plugins/big/9.9.9/../2.0.0/plugin.wasm", IDENTITY);
      expect(within.status).toBe(200);
      expect(within.body.length).toBe(BIG.byteLength);
    });

    test("an overlong path: 414", async () => {
      expect((await get(`/plugins/${"a/".repeat(600)}`)).status).toBe(414);
    });

    test.each(["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])("%s -> 405 with Allow", async (method) => {
      const res = await get(HELLO, {}, method);
      expect(res.status).toBe(405);
      expect(res.headers.allow).toBe("GET, HEAD");
    });

    test("unknown paths: 404 text, not an HTML page with 200", async () => {
      const res = await get("/index.php");
      expect(res.status).toBe(404);
      expect(res.headers["content-type"]).toMatch(/^text\/plain/);
    });
  });

  describe.skipIf(!start)("service endpoints and listings", () => {
    test("GET / is 200 (the docker-compose health check), /healthz and /readyz too", async () => {
      expect((await get("/")).status).toBe(200);
      expect((await get("/healthz")).status).toBe(200);
      const ready = await get("/readyz");
      expect(ready.status).toBe(200);
      expect(ready.body.toString()).toBe("ready\n");
    });

    test("/ and /plugins/ are the catalog: HTML for browsers, JSON on request and under /api/v1", async () => {
      for (const path of ["/", "/plugins/", "/plugins"]) {
        const page = await get(path, { Accept: "text/html,*/*;q=0.8" });
        expect(page.status).toBe(200);
        expect(page.headers["content-type"]).toMatch(/^text\/html/);
        expect(page.headers["content-security-policy"]).toMatch(/script-src 'nonce-[^']+'/);
        expect(page.body.toString()).toContain('<a href="/plugins/hello-world/">hello-world</a>');
      }
      for (const [path, headers] of [["/plugins/", { Accept: "application/json" }], ["/api/v1/plugins", {}]] as const) {
        const json = JSON.parse((await get(path, headers)).body.toString());
        expect(json.plugins.map((p: { name: string }) => p.name)).toEqual(["big", "broken", "hello-world", "plain", "reference"]);
        const hello = json.plugins.find((p: { name: string }) => p.name === "hello-world");
        expect(hello.versions[0]).toMatchObject({ version: "1.0.0", url: "/plugins/hello-world/1.0.0/plugin.wasm", sha256: sha256(data.hello) });
        // A plugin with a broken aliases.json is shown with its problem; it does not take the catalog down.
        expect(json.plugins.find((p: { name: string }) => p.name === "broken").problem).toContain("aliases.json is invalid");
      }
    });

    test("/plugins/<name>/ and /api/v1/plugins/<name>: versions, aliases and facts; /plugins/<name>/<version>/ lists files", async () => {
      for (const [path, headers] of [["/plugins/big/", { Accept: "application/json" }], ["/api/v1/plugins/big", {}]] as const) {
        const plugin = JSON.parse((await get(path, headers)).body.toString());
        expect(plugin).toMatchObject({
          name: "big",
          aliases: { "1.0.0": "2.0.0" },
          versions: [
            { version: "2.0.0", url: "/plugins/big/2.0.0/plugin.wasm" },
            { version: "1.0.0", aliasOf: "2.0.0", url: "/plugins/big/1.0.0/plugin.wasm" },
          ],
        });
      }
      const files = JSON.parse((await get("/plugins/big/1.0.0/", { Accept: "application/json" })).body.toString());
      expect(files.aliasOf).toBe("2.0.0");
      expect(files.files.map((f: { name: string }) => f.name)).toEqual(["plugin.wasm", "plugin.wasm.gz"]);
      expect(files.files[0].size).toBe(BIG.byteLength);
      expect((await get("/plugins/nothing-here/")).status).toBe(404);
      expect((await get("/api/v1/plugins/nothing-here")).status).toBe(404);
      expect((await get("/api/v1/plugins/bad..name")).status).toBe(400);
      expect((await get("/plugins/big/7.0.0/")).status).toBe(404);
    });

    test("a hostile README is rendered as text: no markup of its own, no script, no javascript: links", async () => {
      const page = (await get("/plugins/plain/")).body.toString();
      expect(page).toContain("&lt;script&gt;window.pwned = 1&lt;/script&gt;");
      expect(page).toContain("&lt;img src=x onerror=");
      expect(page).toContain('<a href="https://higress.io/docs" rel="nofollow noopener noreferrer">docs</a>');
      const readme = page.slice(page.indexOf('<section class="readme"'));
      expect(readme).not.toMatch(/href="(javascript|data):/i);
      expect(readme).not.toMatch(/<(img|iframe)/i);
      expect(page.match(/<script/g)).toHaveLength(1); // the page's own, with its nonce
      expect(page).toMatch(/<script nonce="[^"]+">/);
    });

  });

  describe.skipIf(!start)("the example plugin", () => {
    test("hello-world is served with its gzip variant and stored metadata", async () => {
      const res = await get(HELLO, IDENTITY);
      expect(res.status).toBe(200);
      expect(res.body.subarray(0, 4).equals(WASM_MAGIC)).toBe(true);
      expect(Buffer.compare(res.body, Buffer.from(data.hello))).toBe(0);
      const text = (await get("/plugins/hello-world/1.0.0/metadata.txt")).body.toString();
      expect(text).toContain(`SHA256: ${sha256(data.hello)}`);
    });
  });
});

test("the reference metadata fixture and REFERENCE bytes agree", () => {
  expect(REFERENCE_METADATA).toContain(`MD5: ${md5(REFERENCE)}`);
});
