import { createHash } from "node:crypto";
import { execFileSync } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { afterAll, describe, expect, test } from "vitest";
import { renderMetadataText } from "../src/core/metadata.ts";
import { catalogPage } from "../src/http/catalog-page.ts";
import { serveObject, objectRequest } from "../src/http/serve-object.ts";
import { FileStore } from "../src/storage/fs.ts";
import type { Store } from "../src/storage/store.ts";
import { readBundle } from "../uploader/bundle.ts";
import { writeTar } from "./support/tar.ts";
import { cli } from "./support/cli.ts";
import { sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { listenLoopback } from "./support/net.ts";
import { fileTarget, type NodeServer } from "./support/targets.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * One regression test per finding of the security review (plugin sources are as untrusted as
 * requests). Each reproduces the attack against the built CLI or server.
 */

const servers: NodeServer[] = [];
afterAll(async () => {
  for (const s of servers) await s.stop();
});
const tempDir = (prefix: string) => mkdtemp(path.join(tmpdir(), prefix));
const text = (s: string) => new TextEncoder().encode(s);
const SECRET = "AWS_SECRET_ACCESS_KEY=do-not-publish-me";

describe("import-dir reads regular files inside the tree only", () => {
  test("links leaving the tree, FIFOs and dangling links fail their version with one line; the rest is published", async () => {
    const outside = await tempDir("outside-");
    await writeFile(path.join(outside, "secret.txt"), SECRET);
    const dir = await tempDir("tree-");
    const version = async (name: string) => {
      const d = path.join(dir, name, "1.0.0");
      await mkdir(d, { recursive: true });
      await writeFile(path.join(d, "plugin.wasm"), wasmModule(100, name.length));
      return d;
    };
    await symlink(path.join(outside, "secret.txt"), path.join(await version("linked-readme"), "README.md"));
    await symlink("/proc/self/environ", path.join(await version("environ"), "spec.yaml"));
    execFileSync("mkfifo", [path.join(await version("fifo"), "README.md")]);
    await symlink(path.join(dir, "nowhere"), path.join(await version("dangling"), "README.md"));
    const good = await version("good");
    await writeFile(path.join(good, "README.md"), "# good\n");
    await symlink("README.md", path.join(good, "README_EN.md")); // inside the tree: followed
    const store = await tempDir("store-");

    const started = Date.now();
    const result = await cli(["import-dir", dir, "--to", store], { REGISTRY_PASSWORD: "do-not-publish-me" });
    expect(Date.now() - started).toBeLessThan(20_000); // the FIFO did not hang the run
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/linked-readme 1\.0\.0.*README\.md is a link that leaves/);
    expect(result.stderr).toMatch(/environ 1\.0\.0.*spec\.yaml is a link that leaves/);
    expect(result.stderr).toMatch(/fifo 1\.0\.0.*README\.md is not a regular file/);
    expect(result.stderr).toMatch(/dangling 1\.0\.0.*README\.md.*(dangling|leaves)/);
    expect(result.stderr).not.toMatch(/\n\s+at /); // no stack trace
    const published = await readdir(path.join(store, "plugins"));
    expect(published).toEqual(["good"]);
    expect(await readFile(path.join(store, "plugins/good/1.0.0/README_EN.md"), "utf8")).toBe("# good\n");
    // grep exits 1 when nothing in the store holds the secret.
    expect(() => execFileSync("grep", ["-r", "-l", "do-not-publish-me", store])).toThrow();
    // Sources name the file inside the imported directory, not an absolute path of the machine.
    const metadata = JSON.parse(await readFile(path.join(store, "plugins/good/1.0.0/metadata.json"), "utf8")) as { source: string };
    expect(metadata.source).toBe("file:good/1.0.0/plugin.wasm");
  });
});

/** A bundle as `export` writes it, with whatever inventory and entries a test wants. */
async function bundle(entries: [string, Uint8Array][], inventory: object): Promise<string> {
  const file = path.join(await tempDir("bundle-"), "b.tar.gz");
  await writeFile(file, gzipSync(writeTar([["bundle.json", text(JSON.stringify(inventory))], ...entries])));
  return file;
}
const inventoryOf = (plugins: object[]) => ({ format: "higress-plugin-bundle", formatVersion: 1, created: new Date().toISOString(), plugins, aliases: {} });

describe("bundles", () => {
  const wasm = wasmModule(500, 3);

  test("a bundle cannot ship its own plugin.wasm.gz, metadata or aliases", async () => {
    for (const extra of ["plugin.wasm.gz", "metadata.json", "metadata.txt"]) {
      const evil = gzipSync(wasmModule(500, 4));
      const file = await bundle(
        [["plugins/p/1.0.0/plugin.wasm", wasm], [`plugins/p/1.0.0/${extra}`, evil]],
        inventoryOf([{ name: "p", version: "1.0.0", source: "x", files: { "plugin.wasm": sha256(wasm), [extra]: sha256(evil) } }]),
      );
      const store = await tempDir("store-");
      const result = await cli(["import", file, "--to", store]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(`${extra} is not a file a bundle may carry`);
      expect(await readdir(store)).toEqual([]);
    }
  });

  test("a rerun says unchanged only when the gzip variant is still the one made from the module", async () => {
    const dir = await tempDir("tree-");
    await mkdir(path.join(dir, "p", "1.0.0"), { recursive: true });
    await writeFile(path.join(dir, "p", "1.0.0", "plugin.wasm"), wasm);
    const store = await tempDir("store-");
    expect((await cli(["import-dir", dir, "--to", store])).code).toBe(0);
    // Someone (or an old bundle) put other bytes under plugin.wasm.gz.
    await writeFile(path.join(store, "plugins/p/1.0.0/plugin.wasm.gz"), gzipSync(wasmModule(900, 8)));
    const rerun = await cli(["import-dir", dir, "--to", store, "--json"]);
    expect(JSON.parse(rerun.stdout).versions[0].status).toBe("published");
    const { gunzipSync } = await import("node:zlib");
    expect(sha256(gunzipSync(await readFile(path.join(store, "plugins/p/1.0.0/plugin.wasm.gz"))))).toBe(sha256(wasm));
  });

  test("a decompression bomb is refused at its entry header, in bounded memory", async () => {
    // 300 MiB of zeros as plugin.wasm (over the 256 MiB cap): a bundle of a few hundred KB.
    const tarHeader = (name: string, size: number) => {
      const tar = writeTar([[name, new Uint8Array(0)]]);
      const header = Buffer.from(tar.subarray(0, 512));
      header.write(size.toString(8).padStart(11, "0"), 124, "ascii");
      header.fill(" ", 148, 156);
      let sum = 0;
      for (const b of header) sum += b;
      header.write(`${sum.toString(8).padStart(6, "0")}\0 `, 148, "ascii");
      return header;
    };
    const inventory = Buffer.from(writeTar([["bundle.json", text(JSON.stringify(inventoryOf([{ name: "p", version: "1.0.0", source: "x", files: { "plugin.wasm": "0".repeat(64) } }])))]]));
    const file = path.join(await tempDir("bomb-"), "bomb.tar.gz");
    const { createGzip } = await import("node:zlib");
    const { createWriteStream } = await import("node:fs");
    const { pipeline } = await import("node:stream/promises");
    const { Readable } = await import("node:stream");
    const chunk = Buffer.alloc(1 << 20);
    async function* parts() {
      yield inventory.subarray(0, inventory.length - 1024); // without the end-of-archive blocks
      yield tarHeader("plugins/p/1.0.0/plugin.wasm", 300 * 1024 * 1024);
      for (let i = 0; i < 300; i++) yield chunk;
    }
    await pipeline(Readable.from(parts()), createGzip({ level: 1 }), createWriteStream(file));
    const started = Date.now();
    const result = await cli(["import", file, "--to", await tempDir("store-")]);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/plugin\.wasm is 314572800 bytes; at most 268435456 are accepted/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });

  /** A bundle of `count` versions of p whose plugin.wasm is `head` then zeros up to `size`, written as a stream. */
  async function zeroBundle(count: number, size: number, head: Uint8Array): Promise<string> {
    const tarStream = (await import("tar-stream")).default;
    const { createGzip } = await import("node:zlib");
    const { createWriteStream } = await import("node:fs");
    const { pipeline } = await import("node:stream/promises");
    const zeros = Buffer.alloc(1 << 20);
    const hash = createHash("sha256").update(head);
    for (let left = size - head.length; left > 0; left -= zeros.length) hash.update(zeros.subarray(0, Math.min(left, zeros.length)));
    const digest = hash.digest("hex");
    const versions = Array.from({ length: count }, (_, i) => `${i + 1}.0.0`);
    const pack = tarStream.pack();
    const file = path.join(await tempDir("zeros-"), "zeros.tar.gz");
    const written = pipeline(pack, createGzip({ level: 1 }), createWriteStream(file));
    pack.entry({ name: "bundle.json" }, JSON.stringify(inventoryOf(versions.map((version) => ({ name: "p", version, source: "x", files: { "plugin.wasm": digest } })))));
    for (const version of versions) {
      const entry = pack.entry({ name: `plugins/p/${version}/plugin.wasm`, size });
      entry.write(head);
      for (let left = size - head.length; left > 0; left -= zeros.length) {
        if (!entry.write(zeros.subarray(0, Math.min(left, zeros.length)))) await new Promise<void>((r) => entry.once("drain", () => r()));
      }
      await new Promise<void>((resolve, reject) => entry.end((error?: Error | null) => (error ? reject(error) : resolve())));
    }
    pack.finalize();
    await written;
    return file;
  }
  const maxRss = (stderr: string) => Number(/max rss: (\d+) MiB/.exec(stderr)?.[1] ?? NaN);
  const measured = { NODE_OPTIONS: `--require ${path.join(import.meta.dirname, "support/max-rss.cjs")}` };

  test("review N3: five 200 MiB zero-filled modules (a 1 MB bundle) are refused at their first bytes, in bounded memory", async () => {
    const file = await zeroBundle(5, 200 << 20, new Uint8Array(8));
    const store = await tempDir("store-");
    const result = await cli(["import", file, "--to", store], measured);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/plugins\/p\/1\.0\.0\/plugin\.wasm does not start with the WebAssembly header/);
    expect(await readdir(store)).toEqual([]);
    console.log(`[security] zero-filled bundle: ${maxRss(result.stderr)} MiB peak`);
    expect(maxRss(result.stderr)).toBeLessThan(160);
  });

  test("review N3: modules with a wasm header are spooled to disk and loaded one at a time; --max-unpacked-mb bounds the run", async () => {
    const file = await zeroBundle(3, 130 << 20, new Uint8Array([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]));
    const result = await cli(["import", file, "--to", await tempDir("store-"), "--json"], measured);
    expect(result.code).toBe(1);
    const report = JSON.parse(result.stdout);
    expect(report.versions.map((v: { status: string; error: string }) => [v.status, v.error])).toEqual(
      Array(3).fill(["failed", expect.stringMatching(/is not a valid WebAssembly module/)]),
    );
    // 390 MiB of modules: the old reader held them all at once.
    console.log(`[security] spooled bundle of 3 x 130 MiB: ${maxRss(result.stderr)} MiB peak`);
    expect(maxRss(result.stderr)).toBeLessThan(330);
    const bounded = await cli(["import", file, "--to", await tempDir("store-"), "--max-unpacked-mb", "200"]);
    expect(bounded.code).toBe(1);
    expect(bounded.stderr).toMatch(/unpacks to more than 209715200 bytes at plugins\/p\/2\.0\.0\/plugin\.wasm \(--max-unpacked-mb 200\)/);
    expect((await cli(["import", file, "--max-unpacked-mb", "0"])).stderr).toMatch(/--max-unpacked-mb takes a whole number/);
  }, 60_000);

  test("export streams the bundle: 200 MiB of modules never sit in memory twice (tar, then gzip)", async () => {
    const tree = await tempDir("export-tree-");
    const module = Buffer.alloc(50 << 20);
    module.set([0, 0x61, 0x73, 0x6d, 1, 0, 0, 0]);
    for (let i = 0; i < 4; i++) {
      await mkdir(path.join(tree, `p${i}`, "1.0.0"), { recursive: true });
      module[8] = i; // four different modules
      await writeFile(path.join(tree, `p${i}`, "1.0.0", "plugin.wasm"), module);
    }
    const out = path.join(await tempDir("export-out-"), "bundle.tar.gz");
    // One version loaded at a time, then spooled: at most the modules themselves are in memory (their buffers can linger
    // until V8 collects them: 156-235 MiB measured) and the runtime; the old export held them all, then the tar of them
    // all again (490 MiB measured).
    const result = await cli(["export", "--dir", tree, "--out", out, "--concurrency", "1"], measured);
    expect(result.code, result.stderr).toBe(0);
    console.log(`[security] export of 4 x 50 MiB: ${maxRss(result.stderr)} MiB peak`);
    expect(maxRss(result.stderr)).toBeLessThan(320);
    const { jobs, close } = await readBundle(out);
    try {
      expect(jobs.map((j) => j.name)).toEqual(["p0", "p1", "p2", "p3"]);
      module[8] = 2;
      expect(sha256((await jobs[2]!.load()).wasm)).toBe(sha256(module));
    } finally {
      await close();
    }
  }, 60_000);

  test("review N3: at most 12 extras per version, from a bundle or a directory", async () => {
    const extras = Object.fromEntries(Array.from({ length: 13 }, (_, i) => [`README_L${String.fromCharCode(65 + i)}.md`, text(`# ${i}\n`)]));
    const file = await bundle(
      [["plugins/p/1.0.0/plugin.wasm", wasm], ...Object.entries(extras).map(([f, d]) => [`plugins/p/1.0.0/${f}`, d] as [string, Uint8Array])],
      inventoryOf([{ name: "p", version: "1.0.0", source: "x", files: { "plugin.wasm": sha256(wasm), ...Object.fromEntries(Object.entries(extras).map(([f, d]) => [f, sha256(d)])) } }]),
    );
    const fromBundle = await cli(["import", file, "--to", await tempDir("store-")]);
    expect(fromBundle.code).toBe(1);
    expect(fromBundle.stderr).toContain("p 1.0.0 lists 13 extra files; at most 12 are accepted");
    const dir = await tempDir("tree-");
    await mkdir(path.join(dir, "p", "1.0.0"), { recursive: true });
    await writeFile(path.join(dir, "p", "1.0.0", "plugin.wasm"), wasm);
    for (const [f, d] of Object.entries(extras)) await writeFile(path.join(dir, "p", "1.0.0", f), d);
    const fromDir = await cli(["import-dir", dir, "--to", await tempDir("store-")]);
    expect(fromDir.code).toBe(1);
    expect(fromDir.stderr).toMatch(/p\/1\.0\.0 carries 13 extra files .*; at most 12 are accepted/);
  });

  test("a bundle listing one version twice is refused before anything is written", async () => {
    const file = await bundle(
      [["plugins/p/1.0.0/plugin.wasm", wasm]],
      inventoryOf([
        { name: "p", version: "1.0.0", source: "a", files: { "plugin.wasm": sha256(wasm) } },
        { name: "p", version: "1.0.0", source: "b", files: { "plugin.wasm": sha256(wasm) } },
      ]),
    );
    const store = await tempDir("store-");
    const result = await cli(["import", file, "--to", store]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("lists p 1.0.0 twice");
    expect(await readdir(store)).toEqual([]);
  });

  test("inventory lines cannot forge metadata lines; names and digests are validated", async () => {
    for (const [plugin, message] of [
      [{ name: "p", version: "1.0.0", source: "x\nSHA256: forged", files: { "plugin.wasm": sha256(wasm) } }, "source must be one printable line"],
      [{ name: "p", version: "1.0.0", source: "x", manifestDigest: "sha256:../../x", files: { "plugin.wasm": sha256(wasm) } }, "manifestDigest must be sha256"],
      [{ name: "../p", version: "1.0.0", source: "x", files: { "plugin.wasm": sha256(wasm) } }, "is not valid"],
    ] as const) {
      const file = await bundle([["plugins/p/1.0.0/plugin.wasm", wasm]], inventoryOf([plugin]));
      const result = await cli(["import", file, "--to", await tempDir("store-")]);
      expect(result.code).toBe(1);
      expect(result.stderr).toContain(message);
    }
    const rendered = renderMetadataText({ name: "p", version: "1", size: 1, md5: "0".repeat(32), sha256: "0".repeat(64), created: "", lastModified: "", source: "a\nSHA256: forged" });
    expect(rendered.split("\n").filter((l) => l.startsWith("SHA256:"))).toHaveLength(1);
  });
});

describe("registry credentials stay with the registry", () => {
  test("a blob redirect target that asks for authentication gets no credentials", async () => {
    const seen: string[] = [];
    const wasm = wasmModule(300, 9);
    const digest = `sha256:${sha256(wasm)}`;
    const config = text("{}");
    const blobHost = await listenLoopback((req, res) => {
      seen.push(req.headers.authorization ?? "none");
      res.writeHead(401, { "WWW-Authenticate": 'Basic realm="blobs"' }).end();
    });
    const registry = await listenLoopback((req, res) => {
      if (req.headers.authorization !== `Basic ${Buffer.from("robot:s3cret").toString("base64")}`) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="registry"' }).end();
        return;
      }
      if (req.url?.includes("/manifests/")) {
        const manifest = JSON.stringify({
          schemaVersion: 2,
          mediaType: "application/vnd.oci.image.manifest.v1+json",
          config: { mediaType: "application/vnd.module.wasm.config.v1+json", digest: `sha256:${sha256(config)}`, size: config.length },
          layers: [{ mediaType: "application/vnd.module.wasm.content.layer.v1+wasm", digest, size: wasm.length }],
        });
        res.writeHead(200, { "Content-Type": "application/vnd.oci.image.manifest.v1+json" }).end(manifest);
      } else {
        res.writeHead(307, { Location: `http://${blobHost.host}/blob/${digest}` }).end();
      }
    });
    const dir = await tempDir("cfg-");
    await writeFile(path.join(dir, "plugins.properties"), `p=oci://${registry.host}/team/p:1.0.0\n`);
    const result = await cli([
      "sync", "--config", path.join(dir, "plugins.properties"), "--to", await tempDir("store-"),
      "--plain-http", registry.host, "--plain-http", blobHost.host, "--credentials", `${registry.host}=robot:s3cret`,
    ]);
    registry.server.close();
    blobHost.server.close();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("registry credentials are never sent to another origin");
    expect(seen.length).toBeGreaterThan(0);
    expect(seen.every((h) => h === "none")).toBe(true);
  });
});

describe("registry answers never become other requests (review N4)", () => {
  test("an index entry whose digest is a path is refused, and nothing but the manifest is asked for, with or without credentials", async () => {
    const seen: string[] = [];
    const registry = await listenLoopback((req, res) => {
      seen.push(`${req.url} ${req.headers.authorization ? "with credentials" : "anonymous"}`);
      if (!req.headers.authorization) {
        res.writeHead(401, { "WWW-Authenticate": 'Basic realm="registry"' }).end();
        return;
      }
      const index = JSON.stringify({
        schemaVersion: 2,
        mediaType: "application/vnd.oci.image.index.v1+json",
        manifests: [{ mediaType: "application/vnd.oci.image.manifest.v1+json", digest: "../../../internal/admin/delete-everything?x=", size: 10, platform: { os: "linux", architecture: "amd64" } }],
      });
      res.writeHead(200, { "Content-Type": "application/vnd.oci.image.index.v1+json" }).end(index);
    });
    const dir = await tempDir("cfg-");
    await writeFile(path.join(dir, "plugins.properties"), `p=oci://${registry.host}/team/p:1.0.0\n`);
    const result = await cli(["sync", "--config", path.join(dir, "plugins.properties"), "--to", await tempDir("store-"), "--plain-http", registry.host, "--credentials", `${registry.host}=robot:s3cret`]);
    registry.server.close();
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('is an index whose image digest "../../../internal/admin/delete-everything?x=" is not sha256:<64 hex digits>');
    expect(new Set(seen)).toEqual(new Set(["/v2/team/p/manifests/1.0.0 anonymous", "/v2/team/p/manifests/1.0.0 with credentials"]));
  });
});

describe("the server", () => {
  test("derived metadata of a 20 MB module is computed once and streamed, not buffered per request", async () => {
    const big = wasmModule(20 * 1024 * 1024, 5);
    const server = await fileTarget(new Map([["plugins/huge/1.0.0/plugin.wasm", big]]), { CACHE_TTL_SECONDS: "0" });
    servers.push(server);
    const rss = () => Number(/VmHWM:\s+(\d+)/.exec(execFileSync("cat", [`/proc/${server.process.pid}/status`], { encoding: "utf8" }))![1]) / 1024;
    const before = rss();
    const answers = await Promise.all(Array.from({ length: 24 }, () => request(`${server.url}/plugins/huge/1.0.0/metadata.txt`)));
    for (const a of answers) expect(a.body.toString()).toContain(`SHA256: ${sha256(big)}`);
    expect(rss() - before).toBeLessThan(80); // 24 buffered copies were 480 MB
  });

  test("content-based ETags: equal-size versions written in the same second differ; a re-pointed alias never answers 304 or 206 for the old bytes", async () => {
    const one = wasmModule(1000, 1);
    const two = wasmModule(1000, 2);
    const meta = (version: string, bytes: Uint8Array) =>
      text(JSON.stringify({ name: "p", version, size: bytes.length, md5: createHash("md5").update(bytes).digest("hex"), sha256: sha256(bytes), created: "2026-01-01T00:00:00Z", lastModified: "2026-01-01T00:00:00Z" }));
    const objects = new Map<string, Uint8Array>([
      ["plugins/p/1.0.0/plugin.wasm", one],
      ["plugins/p/1.0.0/metadata.json", meta("1.0.0", one)],
      ["plugins/p/2.0.0/plugin.wasm", two],
      ["plugins/p/2.0.0/metadata.json", meta("2.0.0", two)],
      ["plugins/p/aliases.json", text(JSON.stringify({ aliases: { stable: "1.0.0" } }))],
    ]);
    const server = await fileTarget(objects, { CACHE_TTL_SECONDS: "0" });
    servers.push(server);
    const identity = { "Accept-Encoding": "identity" };
    const a = await request(`${server.url}/plugins/p/1.0.0/plugin.wasm`, { headers: identity });
    const b = await request(`${server.url}/plugins/p/2.0.0/plugin.wasm`, { headers: identity });
    expect(a.headers.etag).toBe(`"${sha256(one)}"`);
    expect(b.headers.etag).not.toBe(a.headers.etag);
    const alias = await request(`${server.url}/plugins/p/stable/plugin.wasm`, { headers: identity });
    expect(alias.headers["cache-control"]).toBe("public, max-age=300");
    expect(alias.headers["x-alias-of"]).toBe("1.0.0");
    // Re-point the alias (the directory is the store).
    const root = server.output().match(/serving file:(\S+)/)![1]!;
    await new FileStore(root).put("plugins/p/aliases.json", text(JSON.stringify({ aliases: { stable: "2.0.0" } })));
    const revalidated = await request(`${server.url}/plugins/p/stable/plugin.wasm`, { headers: { ...identity, "If-None-Match": alias.headers.etag! } });
    expect(revalidated.status).toBe(200);
    expect(sha256(revalidated.body)).toBe(sha256(two));
    const resumed = await request(`${server.url}/plugins/p/stable/plugin.wasm`, { headers: { ...identity, Range: "bytes=500-", "If-Range": alias.headers.etag! } });
    expect(resumed.status).toBe(200);
    expect(sha256(resumed.body)).toBe(sha256(two));
  });

  test("prototype keys are not plugins, versions or aliases", async () => {
    const server = await fileTarget(new Map([["plugins/p/1.0.0/plugin.wasm", wasmModule(100, 1)], ["plugins/p/aliases.json", text('{"aliases":{"2.0.0":"1.0.0"}}')]]));
    servers.push(server);
    for (const url of ["/api/v1/plugins/constructor", "/plugins/p/constructor/plugin.wasm", "/plugins/p/__proto__/plugin.wasm", "/plugins/p/toString/plugin.wasm"]) {
      expect([400, 404]).toContain((await request(`${server.url}${url}`)).status);
    }
  });

  test("a huge Range header costs no time", async () => {
    const { parseRange } = await import("../src/core/range.ts");
    const started = performance.now();
    for (let i = 0; i < 20; i++) parseRange(`bytes=${" ".repeat(16_384)}0-1${" ".repeat(16_384)}x`);
    expect(performance.now() - started).toBeLessThan(200);
  });

  test("a backend that ignores Range after a refetch gets a 200 with the whole object, never more bytes than Content-Length", async () => {
    const bytes = wasmModule(5000, 2);
    const ignoring: Store = {
      description: "ignores ranges",
      head: async () => ({ key: "k", size: bytes.length, etag: '"e"', lastModified: new Date(0) }),
      get: async () => ({ info: { key: "k", size: bytes.length, etag: '"e"', lastModified: new Date(0) }, body: null, bytes }),
      list: async () => ({ prefixes: [], objects: [] }),
    };
    const req = objectRequest("GET", (h) => (h === "range" ? "bytes=10-19" : undefined), {});
    const reply = (await serveObject(ignoring, "k", req, { contentType: "application/wasm", cacheControl: "x" }))!;
    expect(reply.status).toBe(200);
    expect(reply.headers["Content-Length"]).toBe(String(bytes.length));
    expect((reply.body as Uint8Array).length).toBe(bytes.length);
  });

  test("copy fields of plugins whose labels normalise alike get distinct ids", () => {
    const version = (v: string) => ({ version: v, url: `/plugins/x/${v}/plugin.wasm` });
    const page = catalogPage({ origin: "http://h", nonce: "n" } as never, [
      { name: "key-auth", url: "/plugins/key-auth/", versions: [version("2.0.0")], aliases: {} },
      { name: "key", url: "/plugins/key/", versions: [version("auth-2.0.0")], aliases: {} },
    ]);
    const ids = [...page.matchAll(/ id="(copy-[^"]+)"/g)].map((m) => m[1]);
    expect(new Set(ids).size).toBe(ids.length);
  });

  test("extra keys in index.json cannot replace a version's URL in the catalog", async () => {
    const index = { plugins: { p: { versions: { "1.0.0": { name: "p", version: "1.0.0", size: 1, md5: "0".repeat(32), sha256: "0".repeat(64), created: "", lastModified: "", url: "javascript:alert(1)", aliasOf: "evil" } } } } };
    const server = await fileTarget(new Map([["plugins/p/1.0.0/plugin.wasm", wasmModule(100, 1)], ["index.json", text(JSON.stringify(index))]]));
    servers.push(server);
    const body = JSON.parse((await request(`${server.url}/api/v1/plugins/p`)).body.toString()) as { versions: { url: string; aliasOf?: string }[] };
    expect(body.versions[0]).toMatchObject({ url: "/plugins/p/1.0.0/plugin.wasm" });
    expect(body.versions[0]!.aliasOf).toBeUndefined();
  });
});
