import { readdir, readFile, writeFile, mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { FileStore } from "../src/storage/fs.ts";
import { parseJsonConfig, parseProperties, type SyncPlan } from "../uploader/config.ts";
import { sync } from "../uploader/sync.ts";
import type { Report as SyncReport } from "../uploader/pipeline.ts";
import { beforePuts, sha256 } from "./support/fixtures.ts";
import { dockerImage, imageManifest, indexWithAttestation, ORAS_CONFIG, orasPlugin, wasmArtifact, writeDirLayout, writeOciLayout } from "./support/oci-layout.ts";
import { push, startFlakyProxy, startRedirectingProxy, startRegistry, type Registry } from "./support/registry.ts";
import { publishVersion } from "../uploader/publish.ts";
import { RegistryClient } from "../uploader/oci/client.ts";
import { pullPlugin } from "../uploader/oci/pull.ts";
import { parseReference } from "../uploader/oci/reference.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * The uploader against a real CNCF distribution registry, with fixtures pushed by skopeo
 * (not by our code): every packaging format, an index with an attestation, a corrupted blob,
 * Basic and token auth, and blobs redirected to another origin.
 */

const tools = inject("registryTools");
const WASM = {
  oras: wasmModule(3000, 101),
  nested: wasmModule(3100, 102),
  artifact: wasmModule(3200, 103),
  docker: wasmModule(3300, 104),
  indexed: wasmModule(3400, 105),
  corrupt: wasmModule(3500, 106),
  private: wasmModule(3600, 107),
  a: wasmModule(3700, 108),
  b: wasmModule(3800, 109),
  c: wasmModule(3900, 110),
};

async function pushLayout(registry: Registry, repo: string, artifact: { manifest: import("./support/oci-layout.ts").Blob; blobs: import("./support/oci-layout.ts").Blob[] }, creds?: { username: string; password: string }) {
  const dir = await mkdtemp(path.join(tmpdir(), "layout-"));
  await writeOciLayout(dir, "1.0.0", artifact.manifest, artifact.blobs);
  await push(`oci:${dir}:1.0.0`, registry, `${repo}:1.0.0`, creds);
}

const newStore = async () => new FileStore(await mkdtemp(path.join(tmpdir(), "published-")));
const plan = (registry: string, names: string[], extra: Record<string, unknown> = {}): SyncPlan =>
  parseJsonConfig(
    JSON.stringify({
      plugins: Object.fromEntries(names.map((n) => [n, { versions: { "2.0.0": `oci://${registry}/plugins/${n}:1.0.0` }, aliases: { "1.0.0": "2.0.0" } }])),
      ...extra,
    }),
    "test.json",
  );
const byName = (report: SyncReport) => Object.fromEntries(report.versions.map((v) => [v.name, v]));

describe.skipIf(!tools)("uploader against a distribution registry", () => {
  let open: Registry;
  let basic: Registry;
  let token: Registry;
  const user = { username: "puller", password: "s3cret-pass" };
  const pullable = ["plugins/a", "plugins/b", "plugins/c"];

  beforeAll(async () => {
    [open, basic, token] = await Promise.all([
      startRegistry(),
      startRegistry({ kind: "basic", ...user }),
      startRegistry({ kind: "token", ...user, allowed: pullable }),
    ]);
    await pushLayout(open, "plugins/oras", orasPlugin(WASM.oras));
    await pushLayout(open, "plugins/nested", orasPlugin(WASM.nested, "out/release/plugin.wasm"));
    await pushLayout(open, "plugins/artifact", wasmArtifact(WASM.artifact));
    const docker = dockerImage(WASM.docker);
    const dockerDir = await mkdtemp(path.join(tmpdir(), "dir-layout-"));
    await writeDirLayout(dockerDir, docker.manifest, docker.blobs);
    await push(`dir:${dockerDir}`, open, "plugins/docker:1.0.0");
    const indexed = indexWithAttestation(orasPlugin(WASM.indexed));
    const indexDir = await mkdtemp(path.join(tmpdir(), "index-layout-"));
    await writeOciLayout(indexDir, "1.0.0", indexed.index, indexed.blobs);
    await push(`oci:${indexDir}:1.0.0`, open, "plugins/indexed:1.0.0", undefined, true);
    await pushLayout(open, "plugins/notwasm", orasPlugin(new TextEncoder().encode("<html>not a plugin</html>")));
    // Review N3: an artifact that lists README after README (each within the per-file cap).
    const wordy = orasPlugin(WASM.oras);
    const readmes = Array.from({ length: 12 }, (_, i): import("./support/oci-layout.ts").Blob => ({
      mediaType: "application/vnd.module.wasm.doc.v1+markdown",
      data: new TextEncoder().encode(`# readme ${i}\n`),
      annotations: { "org.opencontainers.image.title": `README_L${String.fromCharCode(65 + i)}.md` },
    }));
    const wordyLayers = [...readmes, ...wordy.blobs.slice(1)];
    await pushLayout(open, "plugins/wordy", { manifest: imageManifest(ORAS_CONFIG, wordyLayers), blobs: [ORAS_CONFIG, ...wordyLayers] });
    // Corrupt the plugin layer inside the registry's storage, after skopeo pushed it intact.
    const corrupt = orasPlugin(WASM.corrupt);
    await pushLayout(open, "plugins/corrupt", corrupt);
    const layer = corrupt.blobs.at(-1)!;
    const hex = (await import("node:crypto")).createHash("sha256").update(layer.data).digest("hex");
    const file = path.join(open.root, "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    const damaged = Buffer.from(await readFile(file));
    damaged[damaged.length - 20]! ^= 0xff;
    await writeFile(file, damaged);

    await pushLayout(basic, "plugins/private", orasPlugin(WASM.private), user);
    for (const n of ["a", "b", "c"] as const) await pushLayout(token, `plugins/${n}`, orasPlugin(WASM[n]), user);
    pullable.pop(); // from now on the user may not pull plugins/c
  }, 120_000);

  afterAll(async () => {
    await Promise.all([open, basic, token].map((r) => r?.stop()));
  });

  test("every packaging format is found, verified and published with its aliases", async () => {
    const store = await newStore();
    const names = ["oras", "nested", "artifact", "docker", "indexed"] as const;
    const report = await sync({ store, plan: plan(open.host, [...names]), plainHttp: new Set([open.host]) });
    expect(report.failed).toBe(0);
    for (const name of names) {
      const result = byName(report)[name]!;
      expect(result, name).toMatchObject({ status: "published", sha256: sha256(WASM[name]), size: WASM[name].length });
      const stored = await readFile(path.join(storeRoot(store), `plugins/${name}/2.0.0/plugin.wasm`));
      expect(sha256(stored), name).toBe(sha256(WASM[name]));
      const metadata = JSON.parse(await readFile(path.join(storeRoot(store), `plugins/${name}/2.0.0/metadata.json`), "utf8"));
      expect(metadata).toMatchObject({ name, version: "2.0.0", sha256: sha256(WASM[name]), source: `oci://${open.host}/plugins/${name}:1.0.0` });
      expect(metadata.manifestDigest).toMatch(/^sha256:[0-9a-f]{64}$/);
      const aliases = JSON.parse(await readFile(path.join(storeRoot(store), `plugins/${name}/aliases.json`), "utf8"));
      expect(aliases).toEqual({ aliases: { "1.0.0": "2.0.0" } });
    }
    // The doc and spec layers are kept beside the module (the reference server drops them).
    const files = await readdir(path.join(storeRoot(store), "plugins/oras/2.0.0"));
    expect(files.sort()).toEqual(["README.md", "README_EN.md", "metadata.json", "metadata.txt", "plugin.wasm", "plugin.wasm.gz", "spec.yaml"]);
  });

  test("a corrupted blob or a non-wasm artifact is refused, publishes nothing, and stops no other plugin", async () => {
    const store = await newStore();
    const report = await sync({ store, plan: plan(open.host, ["corrupt", "notwasm", "oras"]), plainHttp: new Set([open.host]) });
    expect(byName(report).corrupt).toMatchObject({ status: "failed" });
    expect(byName(report).corrupt!.error).toMatch(/does not verify/);
    expect(byName(report).notwasm!.error).toMatch(/WebAssembly magic/);
    expect(byName(report).oras!.status).toBe("published");
    expect(report.failed).toBe(4); // two versions and their two aliases
    const wordy = await sync({ store, plan: plan(open.host, ["wordy"]), plainHttp: new Set([open.host]) });
    expect(byName(wordy).wordy!.error).toMatch(/plugins\/wordy:1\.0\.0 carries 15 extra files \(README\*\.md, spec\.yaml, icon\.png or icon\.svg\); at most 12 are accepted/);
    const plugins = await readdir(path.join(storeRoot(store), "plugins"));
    expect(plugins).toEqual(["oras"]);
  });

  test("an upstream tag moved to new bytes: the published version is not touched (conflict) unless --replace", async () => {
    const store = await newStore();
    const p = plan(open.host, ["moving"]);
    await pushLayout(open, "plugins/moving", orasPlugin(WASM.a));
    expect(byName(await sync({ store, plan: p, plainHttp: new Set([open.host]) })).moving!.status).toBe("published");
    await pushLayout(open, "plugins/moving", orasPlugin(WASM.b)); // same tag, other bytes
    const moved = await sync({ store, plan: p, plainHttp: new Set([open.host]) });
    expect(byName(moved).moving).toMatchObject({ status: "conflict", previousSha256: sha256(WASM.a), sha256: sha256(WASM.b) });
    expect(byName(moved).moving!.error).toMatch(/moving 2\.0\.0 is published with sha256 [0-9a-f]{64}, and the source now has other bytes .*--replace to overwrite on purpose/);
    expect(moved.failed).toBeGreaterThan(0);
    const kept = path.join(storeRoot(store), "plugins/moving/2.0.0");
    expect(sha256(await readFile(path.join(kept, "plugin.wasm")))).toBe(sha256(WASM.a));
    expect(JSON.parse(await readFile(path.join(kept, "metadata.json"), "utf8")).sha256).toBe(sha256(WASM.a));
    expect(byName(await sync({ store, plan: p, plainHttp: new Set([open.host]), dryRun: true })).moving!.status).toBe("conflict");
    const replaced = await sync({ store, plan: p, plainHttp: new Set([open.host]), replace: true });
    expect(byName(replaced).moving).toMatchObject({ status: "replaced", previousSha256: sha256(WASM.a), sha256: sha256(WASM.b) });
    expect(replaced.failed).toBe(0);
    expect(sha256(await readFile(path.join(kept, "plugin.wasm")))).toBe(sha256(WASM.b));
  });

  test("a rerun skips what is already published; --force publishes again; --dry-run writes nothing", async () => {
    const store = await newStore();
    const p = plan(open.host, ["oras", "artifact"]);
    const first = await sync({ store, plan: p, plainHttp: new Set([open.host]) });
    expect(first.versions.map((v) => v.status)).toEqual(["published", "published"]);
    const second = await sync({ store, plan: p, plainHttp: new Set([open.host]) });
    expect(second.versions.map((v) => v.status)).toEqual(["unchanged", "unchanged"]);
    const forced = await sync({ store, plan: p, plainHttp: new Set([open.host]), force: true });
    expect(forced.versions.map((v) => v.status)).toEqual(["published", "published"]);

    const empty = await newStore();
    const dry = await sync({ store: empty, plan: p, plainHttp: new Set([open.host]), dryRun: true });
    expect(dry.versions.map((v) => v.status)).toEqual(["would-publish", "would-publish"]);
    expect(await readdir(storeRoot(empty))).toEqual([]);
  });

  test("Basic auth: refused without credentials, pulled with them", async () => {
    const store = await newStore();
    const without = await sync({ store, plan: plan(basic.host, ["private"]), plainHttp: new Set([basic.host]), backoffMs: 1 });
    expect(byName(without).private!.error).toMatch(/needs a username and password/);
    const wrong = await sync({
      store,
      plan: plan(basic.host, ["private"]),
      plainHttp: new Set([basic.host]),
      credentials: new Map([[basic.host, { username: "puller", password: "nope" }]]),
    });
    expect(byName(wrong).private!.error).toMatch(/refused the credentials of puller/);
    const withCreds = await sync({ store, plan: plan(basic.host, ["private"]), plainHttp: new Set([basic.host]), credentials: new Map([[basic.host, user]]) });
    expect(byName(withCreds).private).toMatchObject({ status: "published", sha256: sha256(WASM.private) });
  });

  test("token auth: one token per repository scope, and a repository the user may not pull is refused", async () => {
    const store = await newStore();
    process.env.TOKEN_USER = user.username;
    process.env.TOKEN_PASS = user.password;
    token.tokenRequests.length = 0;
    const report = await sync({
      store,
      plan: plan(token.host, ["a", "b", "c"], { credentials: { [token.host]: { usernameEnv: "TOKEN_USER", passwordEnv: "TOKEN_PASS" } } }),
      plainHttp: new Set([token.host]),
    });
    expect(byName(report).a).toMatchObject({ status: "published", sha256: sha256(WASM.a) });
    expect(byName(report).b).toMatchObject({ status: "published", sha256: sha256(WASM.b) });
    expect(byName(report).c!.status).toBe("failed");
    expect(byName(report).c!.error).toMatch(/HTTP 401|refused/);
    const scopes = token.tokenRequests.map((r) => r.scope).sort();
    expect(scopes).toEqual(["repository:plugins/a:pull", "repository:plugins/b:pull", "repository:plugins/c:pull"]);
    expect(token.tokenRequests.every((r) => r.user === "puller")).toBe(true);
  });

  // Starts a registry of its own (a key pair, the process, a push): beyond the default 30 s on a CI machine under the burst tests' load.
  test("a token is reused until it expires, then renewed", { timeout: 90_000 }, async () => {
    const shortLived = await startRegistry({ kind: "token", ...user, allowed: ["plugins/a"], expiresIn: 2 });
    try {
      await pushLayout(shortLived, "plugins/a", orasPlugin(WASM.a), user);
      shortLived.tokenRequests.length = 0;
      const client = new RegistryClient({ plainHttp: new Set([shortLived.host]), credentials: () => user });
      const ref = parseReference(`oci://${shortLived.host}/plugins/a:1.0.0`);
      await pullPlugin(client, ref);
      await pullPlugin(client, ref);
      expect(shortLived.tokenRequests).toHaveLength(1); // manifest and blobs of two pulls on one token
      await new Promise((r) => setTimeout(r, 1_100)); // a 2 s token is renewed after 1 s
      expect(sha256((await pullPlugin(client, ref)).wasm)).toBe(sha256(WASM.a));
      expect(shortLived.tokenRequests).toHaveLength(2);
    } finally {
      await shortLived.stop();
    }
  });

  test("per-plugin credentials apply to that plugin only", async () => {
    const store = await newStore();
    const config = {
      plugins: {
        private: { versions: { "1.0.0": `oci://${basic.host}/plugins/private:1.0.0` }, credentials: user },
      },
    };
    const report = await sync({ store, plan: parseJsonConfig(JSON.stringify(config), "t.json"), plainHttp: new Set([basic.host]) });
    expect(byName(report).private!.status).toBe("published");
  });

  test("blobs redirected to another origin are fetched without our Authorization header", async () => {
    const proxy = await startRedirectingProxy(basic, `Basic ${Buffer.from(`${user.username}:${user.password}`).toString("base64")}`);
    try {
      const store = await newStore();
      const report = await sync({
        store,
        plan: plan(proxy.host, ["private"]),
        plainHttp: new Set([proxy.host]),
        credentials: new Map([[proxy.host, user]]),
      });
      expect(byName(report).private).toMatchObject({ status: "published", sha256: sha256(WASM.private) });
      expect(proxy.received.length).toBeGreaterThan(0);
      expect(proxy.received.every((h) => h === undefined)).toBe(true);
    } finally {
      await proxy.stop();
    }
  });

  test("a registry mirror rewrites where the official references are pulled from", async () => {
    const store = await newStore();
    const official = parseJsonConfig(
      JSON.stringify({ plugins: { oras: { versions: { "2.0.0": "oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/oras:1.0.0" } } } }),
      "t.json",
    );
    const report = await sync({
      store,
      plan: official,
      mirrors: new Map([["higress-registry.cn-hangzhou.cr.aliyuncs.com", open.host]]),
      plainHttp: new Set([open.host]),
    });
    expect(byName(report).oras).toMatchObject({ status: "published", source: `oci://${open.host}/plugins/oras:1.0.0` });
  });

  test("plugins.properties: served under the tag, answering 1.0.0 like the reference server", async () => {
    const store = await newStore();
    const properties = `# reference format\nmy-oras = oci://${open.host}/plugins/oras:1.0.0\n\nartifact=oci://${open.host}/plugins/artifact:1.0.0\n`;
    const report = await sync({ store, plan: parseProperties(properties), plainHttp: new Set([open.host]) });
    expect(report.failed).toBe(0);
    expect(byName(report)["my-oras"]).toMatchObject({ version: "1.0.0", status: "published", sha256: sha256(WASM.oras) });
  });

  test("5xx answers are retried with backoff; a registry that keeps failing is reported", async () => {
    const flaky = await startFlakyProxy(open, 2);
    try {
      const store = await newStore();
      const report = await sync({ store, plan: plan(flaky.host, ["oras"]), plainHttp: new Set([flaky.host]), backoffMs: 10 });
      expect(byName(report).oras).toMatchObject({ status: "published", sha256: sha256(WASM.oras) });
    } finally {
      await flaky.stop();
    }
    const broken = await startFlakyProxy(open, 1_000);
    try {
      const report = await sync({ store: await newStore(), plan: plan(broken.host, ["oras"]), plainHttp: new Set([broken.host]), backoffMs: 10 });
      expect(byName(report).oras!.error).toMatch(/HTTP 503/);
      expect(broken.requests()).toBe(4); // bounded: four attempts, then give up
    } finally {
      await broken.stop();
    }
  });

  test("the store-wide index.json lists every plugin, version with its metadata, and alias", async () => {
    const store = await newStore();
    await sync({ store, plan: plan(open.host, ["oras", "docker"]), plainHttp: new Set([open.host]) });
    const index = JSON.parse(await readFile(path.join(storeRoot(store), "index.json"), "utf8"));
    expect(Object.keys(index.plugins)).toEqual(["docker", "oras"]);
    expect(index.plugins.oras.versions["2.0.0"]).toMatchObject({ sha256: sha256(WASM.oras), source: `oci://${open.host}/plugins/oras:1.0.0` });
    expect(index.plugins.oras.aliases).toEqual({ "1.0.0": "2.0.0" });
  });

  test("--prune removes what the config no longer lists, and only then", async () => {
    const store = await newStore();
    await sync({ store, plan: plan(open.host, ["oras", "artifact"]), plainHttp: new Set([open.host]) });
    await sync({ store, plan: plan(open.host, ["oras"]), plainHttp: new Set([open.host]) });
    expect((await readdir(path.join(storeRoot(store), "plugins"))).sort()).toEqual(["artifact", "oras"]);
    const pruned = await sync({ store, plan: plan(open.host, ["oras"]), plainHttp: new Set([open.host]), prune: true });
    expect(pruned.pruned).toContain("artifact/2.0.0");
    expect((await store.list("plugins/")).prefixes).toEqual(["oras"]);
  });
});

function storeRoot(store: FileStore): string {
  return store.description.slice("file:".length);
}

describe("publishing is all or nothing for a new version", () => {
  test("a store failing half-way leaves nothing of the new version behind", async () => {
    const real = await newStore();
    let puts = 0;
    // The file store, failing on its third write.
    const failing = beforePuts(real, () => {
      if (++puts === 3) throw new Error("disk full");
    });
    const plugin = { name: "half", version: "1.0.0", wasm: WASM.oras, extras: new Map([["README.md", new TextEncoder().encode("# x")]]), source: "test" };
    await expect(publishVersion(failing, plugin)).rejects.toThrow("disk full");
    expect((await real.list("plugins/")).prefixes).toEqual([]);
    await publishVersion(real, plugin);
    expect((await real.list("plugins/half/1.0.0/")).objects.map((o) => o.key.split("/").pop())).toEqual([
      "README.md", "metadata.json", "metadata.txt", "plugin.wasm", "plugin.wasm.gz",
    ]);
  });
});
