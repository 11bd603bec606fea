import { execFile } from "node:child_process";
import { mkdtemp, readFile, writeFile, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { writeTar } from "./support/tar.ts";
import { CONSOLE_VERSIONS } from "./support/compat.ts";
import { sha256, tarGzEntries } from "./support/fixtures.ts";
import { cli } from "./support/cli.ts";
import { controllerDeployment, startKubeApi, wasmPlugin } from "./support/kube-api.ts";
import { request } from "./support/http.ts";
import { freePort } from "./support/net.ts";
import { orasPlugin, writeOciLayout } from "./support/oci-layout.ts";
import { push, startFlakyProxy, startRegistry, type Registry } from "./support/registry.ts";
import { DEFAULT_CONFIG, OFFICIAL, mirrorArgs as officialMirror, pushOfficialSet, servedImage } from "./support/official.ts";
import { ROOT, s3Env, seedBucket, startNode, type NodeServer } from "./support/targets.ts";
import { wasmModule } from "./support/wasm.ts";

/** The plugin-uploader command as users run it, end to end: registry -> uploader -> store -> server -> Go client. */

const run = promisify(execFile);
const tools = inject("registryTools");
const s3 = inject("s3");
const goClient = inject("goClient");

const tempDir = (prefix: string) => mkdtemp(path.join(tmpdir(), prefix));

describe("usage and configuration errors exit 2 with a message", () => {
  test.each([
    [["bogus"], 'unknown command "bogus"'],
    [["sync", "--nope"], "unknown option --nope; plugin-uploader sync --help lists the options"],
    [["sync", "--config", "/no/such/file.properties", "--to", "/tmp/x"], "cannot read config /no/such/file.properties"],
    [["sync", "--concurrency", "0", "--to", "/tmp/x"], "--concurrency takes a whole number from 1 to 64"],
    [["sync"], "no target store: pass --to <store> or set STORE"],
    [["sync", "--to", "ftp://x/y"], 'scheme "ftp:" is not supported'],
    [["sync", "--to", "/tmp/x", "--mirror", "nohost"], "--mirror takes <left>=<right>"],
    [["import-dir", "/no/such/dir", "--to", "/tmp/x"], "/no/such/dir does not exist"],
    [["export"], "export needs --out"],
  ])("%j", async (args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(message);
  });

  test("a bad plugins.properties line names the file and line", async () => {
    const dir = await tempDir("props-");
    await writeFile(path.join(dir, "plugins.properties"), "# ok\nkey-auth=oci://host/plugins/key-auth:2.0.0\nbad line\n");
    const result = await cli(["sync", "--config", path.join(dir, "plugins.properties"), "--to", dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain("plugins.properties:3: expected <name>=oci://");
  });

  test("the default configuration answers every version any Console release asks for", () => {
    for (const [name, versions] of Object.entries(CONSOLE_VERSIONS)) {
      const entry = DEFAULT_CONFIG.plugins[name];
      expect(entry, name).toBeDefined();
      for (const v of versions) {
        const target = entry!.versions[v] ? v : entry!.aliases?.[v];
        expect(target && entry!.versions[target], `${name} ${v}`).toBeTruthy();
      }
    }
  });
});

describe.skipIf(!tools)("plugin-uploader against a registry", () => {
  let registry: Registry;
  const servers: NodeServer[] = [];
  /** repository:tag -> wasm pushed there */
  let pushed: Map<string, Uint8Array>;

  beforeAll(async () => {
    registry = await startRegistry();
    pushed = await pushOfficialSet(registry);
  }, 180_000);

  afterAll(async () => {
    await Promise.all(servers.map((s) => s.stop()));
    await registry?.stop();
  });

  const mirrorArgs = () => officialMirror(registry);

  test("sync with no --config mirrors every official plugin; every Console URL then serves wasm", async () => {
    const dir = await tempDir("official-");
    const result = await cli(["sync", "--to", `file:${dir}`, "--concurrency", "8", "--json", ...mirrorArgs()]);
    expect(result.stderr).not.toContain("failed ");
    expect(result.code).toBe(0);
    const report = JSON.parse(result.stdout);
    expect(report.failed).toBe(0);
    expect(report.versions.length).toBe(pushed.size);
    expect(result.stderr.split("\n").filter((l) => l.startsWith("published")).length).toBe(pushed.size);

    const server = await startNode("official", { STORE: `file:${dir}` });
    servers.push(server);
    for (const [name, versions] of Object.entries(CONSOLE_VERSIONS)) {
      for (const version of versions) {
        const res = await request(`${server.url}/plugins/${name}/${version}/plugin.wasm`, { headers: { "Accept-Encoding": "identity" } });
        expect(res.status, `${name} ${version}`).toBe(200);
        expect(sha256(res.body), `${name} ${version}`).toBe(sha256(pushed.get(servedImage(name, version))!));
      }
    }
    // A second run changes nothing, and decides it from one manifest request per version: no blob is downloaded.
    const front = await startFlakyProxy(registry, 0);
    const started = Date.now();
    const again = await cli(["sync", "--to", dir, "--json", "--mirror", `${OFFICIAL}=${front.host}`, "--plain-http", front.host]);
    const seconds = (Date.now() - started) / 1000;
    await front.stop();
    const versions = JSON.parse(again.stdout).versions as { status: string }[];
    expect(versions.every((v) => v.status === "unchanged")).toBe(true);
    expect(front.requests()).toBe(versions.length);
    console.log(`[uploader] no-op re-sync of ${versions.length} versions: ${seconds.toFixed(2)} s, ${front.requests()} registry requests`);
  });

  test("registry credentials come from a Docker config.json: auths and credential helpers", async () => {
    const basic = await startRegistry({ kind: "basic", username: "robot", password: "pw-from-docker-config" });
    try {
      const dir = await tempDir("docker-config-");
      const wasm = wasmModule(1500, 4242);
      const layout = await tempDir("layout-");
      const { manifest, blobs } = orasPlugin(wasm);
      await writeOciLayout(layout, "3.0.0", manifest, blobs);
      await push(`oci:${layout}:3.0.0`, basic, "team/private:3.0.0", { username: "robot", password: "pw-from-docker-config" });
      await writeFile(path.join(dir, "plugins.properties"), `private=oci://${basic.host}/team/private:3.0.0\n`);
      const args = ["sync", "--config", path.join(dir, "plugins.properties"), "--to", path.join(dir, "store"), "--plain-http", basic.host];
      const without = await cli(args, { DOCKER_CONFIG: dir });
      expect(without.code).toBe(1);
      expect(without.stdout).toContain("needs a username and password");
      const auth = Buffer.from("robot:pw-from-docker-config").toString("base64");
      await writeFile(path.join(dir, "config.json"), JSON.stringify({ auths: { [basic.host]: { auth } } }));
      const withConfig = await cli(args, { DOCKER_CONFIG: dir });
      expect(withConfig.code, withConfig.stdout).toBe(0);
      expect(sha256(await readFile(path.join(dir, "store/plugins/private/3.0.0/plugin.wasm")))).toBe(sha256(wasm));

      // A credential helper, asked the way docker asks it: `docker-credential-<name> get`, the host on stdin.
      const bin = await tempDir("helper-");
      await writeFile(
        path.join(bin, "docker-credential-team"),
        `#!/bin/sh\nread host\n[ "$1" = get ] && [ "$host" = "${basic.host}" ] && echo '{"ServerURL":"'$host'","Username":"robot","Secret":"pw-from-docker-config"}'\n`,
        { mode: 0o755 },
      );
      await writeFile(path.join(dir, "config.json"), JSON.stringify({ credHelpers: { [basic.host]: "team" } }));
      const withHelper = await cli([...args, "--force"], { DOCKER_CONFIG: dir, PATH: `${bin}:${process.env.PATH}` });
      expect(withHelper.code, withHelper.stdout).toBe(0);
      expect(withHelper.stderr).toContain("published     private 3.0.0");

      // The password on standard input, never on the command line; never printed either.
      await writeFile(path.join(dir, "config.json"), "{}");
      const piped = await cli([...args, "--force", "--json", "--verbose", "--credentials", `${basic.host}=robot`, "--password-stdin"], { DOCKER_CONFIG: dir }, "pw-from-docker-config\n");
      expect(piped.code, piped.stderr).toBe(0);
      // --verbose: every exchange with method, URL, status and time, and no secret.
      expect(piped.stderr).toMatch(new RegExp(`registry GET http://${basic.host}/v2/team/private/manifests/3\\.0\\.0 401 \\d+ ms`));
      expect(piped.stderr).toMatch(new RegExp(`registry GET http://${basic.host}/v2/team/private/manifests/3\\.0\\.0 200 \\d+ ms`));
      expect(piped.stderr).toMatch(/store write plugins\/private\/3\.0\.0\/plugin\.wasm: ok \d+ ms/);
      const wrong = await cli([...args, "--force", "--credentials", `${basic.host}=robot`, "--password-stdin"], { DOCKER_CONFIG: dir }, "not-the-password\n");
      expect(wrong.code).toBe(1);
      expect(`${wrong.stdout}${wrong.stderr}`).toContain("refused the credentials of robot");
      expect(`${wrong.stdout}${wrong.stderr}${piped.stdout}${piped.stderr}`).not.toMatch(/not-the-password|pw-from-docker-config/);

      // REGISTRY_USERNAME/PASSWORD go to the hosts REGISTRY_HOSTS names, and to no registry without it (review N8).
      const secret = { DOCKER_CONFIG: dir, REGISTRY_USERNAME: "robot", REGISTRY_PASSWORD: "pw-from-docker-config" };
      const unnamed = await cli([...args, "--force"], secret);
      expect(unnamed.code).toBe(1);
      expect(unnamed.stdout).toContain(`needs a username and password (Basic auth); REGISTRY_USERNAME and REGISTRY_PASSWORD are set, but go only to the hosts in REGISTRY_HOSTS, which does not name ${basic.host}: add it (REGISTRY_HOSTS=${basic.host})`);
      const named = await cli([...args, "--force"], { ...secret, REGISTRY_HOSTS: `other.example, ${basic.host}` });
      expect(named.code, named.stdout).toBe(0);
      const lone = await cli(args, { REGISTRY_USERNAME: "robot" });
      expect([lone.code, lone.stderr.trim().split("\n")[0]]).toEqual([2, "plugin-uploader: REGISTRY_USERNAME is set but REGISTRY_PASSWORD is not"]);
    } finally {
      await basic.stop();
    }
  });

  test("per-command help, and options a command does not take are refused by name", async () => {
    const help = await cli(["import-dir", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("Usage: plugin-uploader import-dir <dir|file.wasm>");
    expect(help.stdout).toContain("--plugin-name");
    expect(help.stdout).not.toContain("--mirror");
    const stray = await cli(["list", "--force", "--to", await tempDir("s-")]);
    expect(stray.code).toBe(2);
    expect(stray.stderr).toContain("list does not take --force");
    expect((await cli(["--version"])).stdout).toMatch(/^plugin-uploader \d+\.\d+\.\d+\n$/);
  });

  test("one failing plugin: exit 1, the failure named, the others published", async () => {
    const dir = await tempDir("props-");
    const config = path.join(dir, "plugins.properties");
    await writeFile(config, `key-auth=oci://${OFFICIAL}/plugins/key-auth:2.0.0\nmissing=oci://${OFFICIAL}/plugins/does-not-exist:1.0.0\n`);
    const result = await cli(["sync", "--config", config, "--to", path.join(dir, "store"), ...mirrorArgs()]);
    expect(result.code).toBe(1);
    expect(result.stdout).toContain("FAILED missing 1.0.0:");
    expect(result.stdout).toMatch(/2 versions: 1 published/);
    expect(await readdir(path.join(dir, "store/plugins"))).toEqual(["key-auth"]);
  });

  test.skipIf(!s3 || !goClient)("sync plugins.properties to S3; the server and a Go client get the registry's bytes", async () => {
    const dir = await tempDir("props-");
    const config = path.join(dir, "plugins.properties");
    await writeFile(config, `key-auth=oci://${OFFICIAL}/plugins/key-auth:2.0.0\njson-converter=oci://${OFFICIAL}/plugins/jsonrpc-converter:2.0.0\n`);
    const { store } = await seedBucket(s3!, new Map());
    const result = await cli(["sync", "--config", config, "--to", store, ...mirrorArgs()], s3Env(s3!));
    expect(result.code, result.stderr).toBe(0);
    const server = await startNode("s3", { STORE: store, ...s3Env(s3!) });
    servers.push(server);
    for (const [url, image] of [
      ["/plugins/key-auth/1.0.0/plugin.wasm", "plugins/key-auth:2.0.0"],
      ["/plugins/key-auth/2.0.0/plugin.wasm", "plugins/key-auth:2.0.0"],
      ["/plugins/json-converter/1.0.0/plugin.wasm", "plugins/jsonrpc-converter:2.0.0"],
    ] as const) {
      const { stdout } = await run(goClient!, [`${server.url}${url}`]);
      expect(JSON.parse(stdout), url).toMatchObject({ status: 200, uncompressed: true, wasmMagic: true, sha256: sha256(pushed.get(image)!) });
    }
    const text = (await request(`${server.url}/plugins/key-auth/2.0.0/metadata.txt`)).body.toString();
    expect(text).toContain(`Source: oci://${registry.host}/plugins/key-auth:2.0.0`);
    expect(text).toContain(`SHA256: ${sha256(pushed.get("plugins/key-auth:2.0.0")!)}`);
  });

  test("sync --from-cluster publishes exactly what the cluster's WasmPlugins ask for and the store lacks; a rerun does nothing", async () => {
    const kube = await startKubeApi();
    try {
      const SERVICE = "http://higress-plugin-server.higress-system.svc";
      const wasmUrl = (name: string, version: string) => `${SERVICE}/plugins/${name}/${version}/plugin.wasm`;
      kube.groups.get("extensions.higress.io")!.push(
        wasmPlugin("higress-system", "key-auth-1.0.0", { url: wasmUrl("key-auth", "1.0.0") }, { "higress.io/wasm-plugin-name": "key-auth" }),
        wasmPlugin("higress-system", "ai-proxy-2.0.1", { url: wasmUrl("ai-proxy", "2.0.1") }),
        wasmPlugin("team", "cors-from-registry", { url: `oci://${OFFICIAL}/plugins/cors:2.0.2` }),
        wasmPlugin("team", "from-the-future", { url: wasmUrl("key-auth", "9.9.9") }),
      );
      kube.deployments.push(controllerDeployment({ MCP_SERVER_WASM_IMAGE_URL: wasmUrl("mcp-server", "2.0.1") }));
      const kubeconfig = await kube.kubeconfig();
      const dir = await tempDir("from-cluster-");
      const args = ["sync", "--from-cluster", "--kubeconfig", kubeconfig, "--to", dir, "--json", ...mirrorArgs()];
      const first = await cli([...args, "--record"]);
      expect(first.code).toBe(1); // key-auth 9.9.9 has no source anywhere
      const report = JSON.parse(first.stdout);
      expect(report.versions.map((v: { name: string; version: string; status: string }) => `${v.name} ${v.version} ${v.status}`).sort()).toEqual([
        "ai-proxy 2.0.1 published",
        "cors 2.0.2 published",
        "key-auth 2.0.0 published",
        "mcp-server 2.0.1 published",
      ]);
      expect(report.aliases).toEqual([{ name: "key-auth", aliases: { "1.0.0": "2.0.0" }, status: "published" }]);
      expect(report.unresolved).toEqual([{ plugin: "key-auth", version: "9.9.9", from: ["WasmPlugin team/from-the-future"], why: `no source for key-auth 9.9.9 in ${"the default official configuration (uploader/plugins.default.json)"}` }]);
      expect(first.stderr).toContain("unresolved    key-auth 9.9.9  no source for key-auth 9.9.9");
      expect((await readdir(path.join(dir, "plugins"))).sort()).toEqual(["ai-proxy", "cors", "key-auth", "mcp-server"]);
      expect(sha256(await readFile(path.join(dir, "plugins/cors/2.0.2/plugin.wasm")))).toBe(sha256(pushed.get("plugins/cors:2.0.2")!));
      // --record checked again after publishing: only the unresolvable one is left, and the oci:// resource can switch.
      const recorded = JSON.parse(await readFile(path.join(dir, "cluster-check.json"), "utf8"));
      expect(recorded.findings.filter((f: { status: string }) => f.status !== "ok").map((f: { from: string; status: string }) => `${f.from} ${f.status}`)).toEqual([
        "WasmPlugin team/cors-from-registry oci",
        "WasmPlugin team/from-the-future missing",
      ]);
      const again = JSON.parse((await cli(args)).stdout);
      expect(again.versions).toEqual([]);
      expect((await cli([...args, "--prune"])).stderr).toContain("--prune with --from-cluster would remove every version the cluster does not use now");
      expect((await cli(["sync", "--to", dir, "--server-url", SERVICE])).stderr).toContain("--server-url goes with --from-cluster");
    } finally {
      await kube.stop();
    }
  });

  test("release snapshots: pulled by digest (a moved tag changes nothing), recorded, covered; a lock holds later runs to it", async () => {
    // The 2.2.5 snapshot's shape (test/fixtures, from the Higress repository), its digests made those of images pushed here.
    const sample = JSON.parse(await readFile(path.join(ROOT, "test/fixtures/higress-release-snapshot-2.2.5.json"), "utf8"));
    const images = new Map<string, { wasm: Uint8Array; digest: string }>();
    const pushImage = async (repository: string, tag: string, seed: number) => {
      const wasm = wasmModule(2000 + seed, 7000 + seed);
      const { manifest, blobs } = orasPlugin(wasm);
      const layout = await tempDir("release-layout-");
      await writeOciLayout(layout, tag, manifest, blobs);
      await push(`oci:${layout}:${tag}`, registry, `${repository}:${tag}`);
      const image = { wasm, digest: `sha256:${sha256(manifest.data)}` };
      images.set(`${repository}:${tag}`, image);
      return image;
    };
    const snapshot = async (gatewayVersion: string, versions: Record<string, string>, seed: number) => {
      const plugins = [];
      for (const p of sample.plugins) {
        const version = versions[p.logicalId] ?? p.version;
        const image: { wasm: Uint8Array; digest: string } = images.get(`${p.image}:${version}`) ?? (await pushImage(p.image, version, seed + plugins.length));
        plugins.push({ ...p, version, ociRef: `${OFFICIAL}/${p.image}:${version}`, digest: image.digest });
      }
      const file = path.join(await tempDir("snapshot-"), `${gatewayVersion}.json`);
      await writeFile(file, JSON.stringify({ ...sample, gatewayVersion, previousRelease: undefined, plugins }));
      return file;
    };
    const s225 = await snapshot("2.2.5", {}, 10);
    const dir = await tempDir("release-store-");
    const lock = path.join(dir, "..", `plugins-${Date.now()}.lock.json`);
    const sync = (args: string[]) => cli(["sync", "--to", dir, "--json", ...mirrorArgs(), ...args]);

    const first = await sync(["--release-snapshot", s225, "--lock", lock]);
    expect(first.code, first.stderr).toBe(0);
    expect(JSON.parse(first.stdout).versions.map((v: { name: string; version: string; status: string; source: string }) => `${v.name} ${v.version} ${v.status} ${v.source}`).sort()).toEqual(
      sample.plugins.map((p: { logicalId: string; version: string; image: string }) => `${p.logicalId} ${p.version} published oci://${registry.host}/${p.image}:${p.version}@${images.get(`${p.image}:${p.version}`)!.digest}`).sort(),
    );
    expect(first.stderr).toContain("release       2.2.5  recorded: 3 plugins, by digest");
    const recorded = JSON.parse(await readFile(path.join(dir, "releases/2.2.5.json"), "utf8"));
    expect(recorded.plugins.find((p: { name: string }) => p.name === "ai-agent")).toEqual({ name: "ai-agent", version: "2.0.2", digest: images.get("plugins/ai-agent:2.0.2")!.digest, sha256: sha256(images.get("plugins/ai-agent:2.0.2")!.wasm) });
    expect(JSON.parse(await readFile(lock, "utf8")).versions).toHaveLength(3);

    // Upstream moves the 2.0.2 tag to other bytes: the snapshot's digest still names the old image.
    await pushImage("plugins/ai-agent", "2.0.2", 99);
    const moved = await sync(["--release-snapshot", s225]);
    expect(moved.code, moved.stderr).toBe(0);
    expect(JSON.parse(moved.stdout).versions.every((v: { status: string }) => v.status === "unchanged")).toBe(true);

    // A second release (2.2.4 shipped ai-agent 2.0.1): both kept, both covered.
    images.set("plugins/ai-agent:2.0.1", await pushImage("plugins/ai-agent", "2.0.1", 40));
    const s224 = await snapshot("2.2.4", { "ai-agent": "2.0.1" }, 40);
    expect((await sync(["--release-snapshot", s224, "--release-snapshot", s225])).code).toBe(0);
    const covered = await cli(["check", "--to", dir]);
    expect([covered.code, covered.stdout.split("\n").at(-3)]).toEqual([0, "the store covers Higress 2.2.4 and 2.2.5"]);

    // Held to the lock: a plan that adds a version, and a snapshot whose digest moved, fail by name and write nothing.
    const locked = JSON.parse((await sync(["--release-snapshot", s224, "--release-snapshot", s225, "--lock", lock, "--locked"])).stdout);
    expect(locked.versions.filter((v: { status: string }) => v.status === "failed").map((v: { error: string }) => v.error)).toEqual([`ai-agent 2.0.1 is not in the lock ${lock} (--locked publishes only what it holds)`]);
    const rebuilt = JSON.parse(await readFile(s225, "utf8"));
    rebuilt.plugins[0].digest = images.get("plugins/ai-agent:2.0.2")!.digest; // the image the tag moved to
    expect(rebuilt.plugins[0].digest).not.toBe(recorded.plugins.find((p: { name: string }) => p.name === "ai-agent").digest);
    const drifted = path.join(await tempDir("snapshot-"), "2.2.5.json");
    await writeFile(drifted, JSON.stringify(rebuilt));
    const drift = await sync(["--release-snapshot", drifted, "--lock", lock, "--locked"]);
    expect(drift.code).toBe(1);
    expect(drift.stderr).toMatch(/ai-agent 2\.0\.2 drifted from the lock .*: its manifest digest is sha256:[0-9a-f]{64}, the lock holds sha256:[0-9a-f]{64}/);
    expect(drift.stderr).toContain("release 2.2.5  not recorded: ai-agent 2.0.2 not published");
    expect(sha256(await readFile(path.join(dir, "plugins/ai-agent/2.0.2/plugin.wasm")))).toBe(recorded.plugins.find((p: { name: string }) => p.name === "ai-agent").sha256);

    // A version of a recorded release removed by hand: check says the release is no longer covered.
    await rm(path.join(dir, "plugins/ai-data-masking/2.0.2"), { recursive: true });
    expect((await cli(["index", "--to", dir])).code).toBe(0); // as after any hand edit: the check reads index.json
    const uncovered = await cli(["check", "--to", dir]);
    expect(uncovered.code).toBe(1);
    expect(uncovered.stdout).toContain("ERROR   release         Higress 2.2.4 is no longer covered: ai-data-masking 2.0.2 is not in the store");
    expect(uncovered.stdout).toContain("ERROR   release         Higress 2.2.5 is no longer covered");
    expect(uncovered.stdout).not.toContain("the store covers");
    expect((await cli(["sync", "--to", dir, "--release-snapshot", path.join(ROOT, "package.json")])).stderr).toMatch(/release snapshot .*package\.json is not one this uploader can mirror: schemaVersion: is missing; gatewayVersion: is missing; plugins: is missing/);
  });

  test("registry failures say why: HTTP on an HTTPS request, connection refused, an unknown name; an unreachable registry is not tried once per plugin", async () => {
    const dir = await tempDir("failures-");
    const config = path.join(dir, "plugins.properties");
    await writeFile(config, `key-auth=oci://${registry.host}/plugins/key-auth:2.0.0\n`);
    const https = await cli(["sync", "--config", config, "--to", path.join(dir, "a")]);
    expect(https.code).toBe(1);
    expect(https.stdout).toContain(`the server answered HTTP to an HTTPS request: use --plain-http ${registry.host}`);

    const closed = `127.0.0.1:${await freePort()}`;
    await writeFile(config, Array.from({ length: 6 }, (_, i) => `p${i}=oci://${closed}/plugins/p${i}:1.0.0`).join("\n"));
    const started = Date.now();
    const refused = await cli(["sync", "--config", config, "--to", path.join(dir, "b"), "--plain-http", closed, "--concurrency", "1"]);
    expect(refused.code).toBe(1);
    expect(refused.stdout).toContain(`FAILED p0 1.0.0: http://${closed}/v2/plugins/p0/manifests/1.0.0: connection refused by ${closed} (nothing listens there)\n`);
    expect(refused.stdout).toContain(`FAILED p5 1.0.0: http://${closed}/v2/plugins/p5/manifests/1.0.0: connection refused by ${closed} (nothing listens there) (not tried again: an earlier request to ${closed} failed the same way)`);
    expect(Date.now() - started).toBeLessThan(20_000); // one request's retries, not six

    await writeFile(config, "x=oci://no-such-registry.invalid/plugins/x:1.0.0\n");
    const unknown = await cli(["sync", "--config", config, "--to", path.join(dir, "c")]);
    expect(unknown.stdout).toMatch(/the DNS name no-such-registry\.invalid was not found \((ENOTFOUND|EAI_AGAIN)\)/);
  });

  test("an offline bundle round-trips: export from the registry, import into an empty store", async () => {
    const dir = await tempDir("bundle-");
    const config = path.join(dir, "plugins.json");
    await writeFile(
      config,
      JSON.stringify({ plugins: { cors: DEFAULT_CONFIG.plugins.cors, "key-auth": DEFAULT_CONFIG.plugins["key-auth"] } }),
    );
    const bundle = path.join(dir, "plugins.tar.gz");
    const exported = await cli(["export", "--config", config, "--out", bundle, ...mirrorArgs()]);
    expect(exported.code, exported.stderr).toBe(0);
    const names = (await tarGzEntries(bundle)).map(([name]) => name);
    expect(names).toContain("bundle.json");
    expect(names).toContain("plugins/cors/2.0.2/plugin.wasm");
    expect(names).toContain("plugins/cors/2.0.2/spec.yaml");

    const store = path.join(dir, "store");
    const imported = await cli(["import", bundle, "--to", store, "--json"]);
    expect(imported.code, imported.stderr).toBe(0);
    expect(JSON.parse(imported.stdout).versions.map((v: { status: string }) => v.status)).toEqual(["published", "published", "published"]);
    const server = await startNode("bundle", { STORE: store });
    servers.push(server);
    const res = await request(`${server.url}/plugins/cors/1.0.0/plugin.wasm`, { headers: { "Accept-Encoding": "identity" } });
    expect(sha256(res.body)).toBe(sha256(pushed.get("plugins/cors:2.0.0")!));
    const metadata = JSON.parse((await request(`${server.url}/plugins/cors/2.0.2/metadata.json`)).body.toString());
    expect(metadata.source).toBe(`oci://${registry.host}/plugins/cors:2.0.2`);
  });

  test("a damaged bundle is refused before anything is published", async () => {
    const dir = await tempDir("bundle-");
    const bundle = path.join(dir, "plugins.tar.gz");
    const config = path.join(dir, "plugins.json");
    await writeFile(config, JSON.stringify({ plugins: { cors: DEFAULT_CONFIG.plugins.cors } }));
    expect((await cli(["export", "--config", config, "--out", bundle, ...mirrorArgs()])).code).toBe(0);
    const entries = await tarGzEntries(bundle);
    const wasm = entries.find(([n]) => n.endsWith("2.0.2/plugin.wasm"))!;
    wasm[1][wasm[1].length - 1]! ^= 0xff;
    await writeFile(bundle, gzipSync(writeTar(entries)));
    const store = path.join(dir, "store");
    const result = await cli(["import", bundle, "--to", store]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain("plugins/cors/2.0.2/plugin.wasm does not match its sha256");
    expect(await readdir(store).catch(() => [])).toEqual([]);
  });
});

describe("import-dir", () => {
  test("a single wasm file with --plugin-name and --plugin-version; a non-wasm file is refused with exit 1", async () => {
    const dir = await tempDir("single-");
    const wasm = wasmModule(2048, 77);
    await writeFile(path.join(dir, "custom.wasm"), wasm);
    await writeFile(path.join(dir, "bad.wasm"), "not wasm at all");
    const store = path.join(dir, "store");
    const ok = await cli(["import-dir", path.join(dir, "custom.wasm"), "--plugin-name", "custom", "--plugin-version", "0.1.0", "--to", store]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(sha256(await readFile(path.join(store, "plugins/custom/0.1.0/plugin.wasm")))).toBe(sha256(wasm));
    const bad = await cli(["import-dir", path.join(dir, "bad.wasm"), "--plugin-name", "bad", "--plugin-version", "0.1.0", "--to", store]);
    expect(bad.code).toBe(1);
    expect(bad.stdout).toContain("FAILED bad 0.1.0: bad 0.1.0 does not start with the WebAssembly magic");
    expect(await readdir(path.join(store, "plugins"))).toEqual(["custom"]);
  });
});

describe.skipIf(!s3)("create-bucket", () => {
  test("creates a missing bucket (idempotent), then the store takes plugins; an unreachable endpoint fails after --wait", async () => {
    const bucket = `created-${Date.now().toString(36)}`;
    // Connection settings as flags this time (the environment form is used everywhere else).
    const flags = ["--s3-endpoint", s3!.endpoint, "--s3-access-key-id", s3!.accessKeyId, "--s3-secret-access-key", s3!.secretAccessKey];
    const wrongKey = await cli(["create-bucket", "--to", `s3://${bucket}`, ...flags, "--s3-secret-access-key", "wrong"]);
    expect(wrongKey.code).toBe(1);
    expect(wrongKey.stderr).toMatch(/SignatureDoesNotMatch|AccessDenied/);
    // Before it exists: one clear line that says how to create it, at once (a missing bucket is not retried).
    const dir0 = await tempDir("missing-bucket-");
    await writeFile(path.join(dir0, "p.wasm"), wasmModule(600, 6));
    const started = Date.now();
    const missing = await cli(["import-dir", path.join(dir0, "p.wasm"), "--plugin-name", "p", "--plugin-version", "1.0.0", "--to", `s3://${bucket}`], s3Env(s3!));
    expect(missing.code).toBe(1);
    expect(missing.stderr).toContain(`the bucket ${bucket} does not exist: create it (plugin-uploader create-bucket --to s3://${bucket}, or --create-bucket) or check the bucket name and S3_ENDPOINT`);
    expect(Date.now() - started).toBeLessThan(10_000);
    for (let i = 0; i < 2; i++) {
      const created = await cli(["create-bucket", "--to", `s3://${bucket}`, ...flags]);
      expect(created.code, created.stderr).toBe(0);
      expect(created.stderr).toContain(`bucket ready: s3://${bucket}/`);
    }
    const dir = await tempDir("single-");
    await writeFile(path.join(dir, "p.wasm"), wasmModule(600, 5));
    const imported = await cli(["import-dir", path.join(dir, "p.wasm"), "--plugin-name", "p", "--plugin-version", "1.0.0", "--to", `s3://${bucket}`], s3Env(s3!));
    expect(imported.code, imported.stdout).toBe(0);
    const unreachable = await cli(["create-bucket", "--to", "s3://nowhere", "--wait", "1"], { ...s3Env(s3!), S3_ENDPOINT: "http://127.0.0.1:9" });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain("waiting for the store");
    expect((await cli(["create-bucket", "--to", dir])).stderr).toContain("create-bucket needs an s3:// store");
  });
});
