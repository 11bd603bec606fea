import { spawn } from "node:child_process";
import { mkdtemp, readdir, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { FileStore } from "../src/storage/fs.ts";
import { publishAliases, publishVersion } from "../uploader/publish.ts";
import { writeIndex } from "../uploader/store-index.ts";
import { cli } from "./support/cli.ts";
import { request } from "./support/http.ts";
import { ROOT, startNode } from "./support/targets.ts";
import { sha256 } from "./support/fixtures.ts";
import { controllerDeployment, startKubeApi, wasmPlugin, type KubeApi } from "./support/kube-api.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * `plugin-uploader check --from-cluster`: the real Kubernetes client library against a stand-in
 * that speaks the API server's protocol, and a real store. Every planted problem is reported,
 * and nothing else.
 */

const SERVICE = "http://higress-plugin-server.higress-system.svc";
const OFFICIAL = "higress-registry.cn-hangzhou.cr.aliyuncs.com";
const MODULES = { a: wasmModule(1200, 1), b: wasmModule(1300, 2), c: wasmModule(1400, 3), d: wasmModule(1500, 4), e: wasmModule(1600, 5) };
const url = (name: string, version: string, base = SERVICE) => `${base}/plugins/${name}/${version}/plugin.wasm`;
const consoleLabels = (name: string) => ({ "higress.io/wasm-plugin-name": name, "higress.io/wasm-plugin-built-in": "true", "higress.io/resource-definer": "higress" });

let storeDir: string;
let kube: KubeApi;
let kubeconfig: string;

async function seedStore(): Promise<string> {
  const dir = await mkdtemp(path.join(tmpdir(), "check-store-"));
  const store = new FileStore(dir);
  const publish = (name: string, version: string, wasm: Uint8Array) => publishVersion(store, { name, version, wasm, extras: new Map(), source: `test:${name}` });
  await publish("key-auth", "2.0.0", MODULES.a);
  await publish("key-auth", "2.0.1", MODULES.b);
  await publishAliases(store, "key-auth", { "1.0.0": "2.0.0" });
  await publish("ai-proxy", "2.0.1", MODULES.c);
  await publish("mcp-server", "2.0.1", MODULES.d);
  await publish("unused-plugin", "1.0.0", MODULES.e);
  await writeIndex(store);
  return dir;
}

beforeAll(async () => {
  storeDir = await seedStore();
  kube = await startKubeApi();
  kubeconfig = await kube.kubeconfig();
  const higress = kube.groups.get("extensions.higress.io")!;
  higress.push(
    // What the Console creates for an enabled plugin: its pattern, its version, pinned to the bytes.
    wasmPlugin("higress-system", "key-auth-1.0.0", { url: url("key-auth", "1.0.0"), sha256: sha256(MODULES.a), phase: "AUTHN", priority: 310, failStrategy: "FAIL_CLOSE", defaultConfig: { consumers: [] } }, consoleLabels("key-auth")),
    // Pinned to bytes the alias no longer serves (it was re-pointed from 2.0.1 to 2.0.0).
    wasmPlugin("team-a", "key-auth-pinned", { url: url("key-auth", "1.0.0"), sha256: sha256(MODULES.b) }),
    wasmPlugin("team-a", "key-auth-future", { url: url("key-auth", "9.9.9") }),
    wasmPlugin("team-a", "nope", { url: url("nope", "1.0.0") }),
    wasmPlugin("higress-system", "ai-proxy-1.0.0", { url: `oci://${OFFICIAL}/plugins/ai-proxy:2.0.1`, imagePullPolicy: "IfNotPresent" }, consoleLabels("ai-proxy")),
    wasmPlugin("team-b", "ai-proxy-edge", { url: url("ai-proxy", "2.0.1", "https://plugins.example.com") }),
    // Basic credentials in the URL (the gateway's only way to send them): matched, never printed.
    wasmPlugin("team-b", "ai-proxy-auth", { url: url("ai-proxy", "2.0.1", "http://gateway:s3cret-pw@higress-plugin-server.higress-system.svc.cluster.local") }),
    // A field the reader does not know, a status block, fields of unexpected types: nothing breaks.
    { ...wasmPlugin("team-b", "ai-proxy-new-fields", { url: url("ai-proxy", "2.0.1", `${SERVICE}:80`), somethingNew: { nested: [1, 2] }, priority: "high", sha256: 42 }), status: { conditions: [] } },
    wasmPlugin("team-b", "listing", { url: `${SERVICE}/plugins/key-auth/2.0.0/` }),
    wasmPlugin("team-b", "no-url", { pluginName: "x" }),
  );
  kube.groups.set("extensions.istio.io", [wasmPlugin("istio-system", "mesh-key-auth", { url: url("key-auth", "2.0.0") }, {}, "extensions.istio.io")]);
  kube.deployments.push(controllerDeployment({ MCP_SERVER_WASM_IMAGE_URL: url("mcp-server", "2.0.1"), OTHER: "x" }));
}, 60_000);

afterAll(() => kube?.stop());

const check = (args: string[] = [], config = kubeconfig) => cli(["check", "--from-cluster", "--kubeconfig", config, "--to", storeDir, ...args]);

describe("check --from-cluster", () => {
  test("every planted problem, and nothing else; the JSON report says why for each", async () => {
    const result = await check(["--json"]);
    expect(result.code, result.stderr).toBe(1); // errors: a gateway would fail
    const report = JSON.parse(result.stdout);
    const by = Object.fromEntries(report.findings.map((f: { from: string }) => [f.from, f]));
    expect(Object.keys(by).sort()).toEqual([
      "MCP_SERVER_WASM_IMAGE_URL of Deployment higress-system/higress-controller",
      "WasmPlugin higress-system/ai-proxy-1.0.0",
      "WasmPlugin higress-system/key-auth-1.0.0",
      "WasmPlugin istio-system/mesh-key-auth (extensions.istio.io)",
      "WasmPlugin team-a/key-auth-future",
      "WasmPlugin team-a/key-auth-pinned",
      "WasmPlugin team-a/nope",
      "WasmPlugin team-b/ai-proxy-auth",
      "WasmPlugin team-b/ai-proxy-edge",
      "WasmPlugin team-b/ai-proxy-new-fields",
      "WasmPlugin team-b/listing",
    ]);
    expect(by["WasmPlugin higress-system/key-auth-1.0.0"]).toMatchObject({ status: "ok", plugin: "key-auth", version: "1.0.0", aliasOf: "2.0.0", servedSha256: sha256(MODULES.a) });
    expect(by["WasmPlugin team-a/key-auth-pinned"]).toMatchObject({ status: "sha256-mismatch", severity: "error" });
    expect(by["WasmPlugin team-a/key-auth-pinned"].message).toBe(
      `spec.sha256 ${sha256(MODULES.b)} differs from the served module's ${sha256(MODULES.a)}: the gateway refuses it (1.0.0 is an alias of 2.0.0, whose bytes these are (was the alias re-pointed?))`,
    );
    expect(by["WasmPlugin team-a/key-auth-future"]).toMatchObject({ status: "missing", message: "key-auth 9.9.9 is not in the store (it has 1.0.0, 2.0.0, 2.0.1): the gateway gets a 404" });
    expect(by["WasmPlugin team-a/nope"]).toMatchObject({ status: "missing", message: "nope is not in the store at all" });
    expect(by["WasmPlugin higress-system/ai-proxy-1.0.0"]).toMatchObject({
      status: "oci",
      severity: "warning",
      switchTo: url("ai-proxy", "2.0.1"),
      patch: `kubectl -n higress-system patch wasmplugins.extensions.higress.io ai-proxy-1.0.0 --type merge -p '{"spec":{"url":"${url("ai-proxy", "2.0.1")}","sha256":"${sha256(MODULES.c)}"}}'`,
    });
    expect(by["WasmPlugin team-b/ai-proxy-edge"]).toMatchObject({ status: "other-host", severity: "warning" });
    expect(by["WasmPlugin team-b/ai-proxy-auth"]).toMatchObject({ status: "ok", url: url("ai-proxy", "2.0.1", "http://gateway:***@higress-plugin-server.higress-system.svc.cluster.local") });
    expect(by["WasmPlugin team-b/ai-proxy-new-fields"]).toMatchObject({ status: "ok" });
    expect(by["WasmPlugin team-b/listing"]).toMatchObject({ status: "bad-path", severity: "error" });
    expect(by["WasmPlugin istio-system/mesh-key-auth (extensions.istio.io)"]).toMatchObject({ status: "ok" });
    expect(by["MCP_SERVER_WASM_IMAGE_URL of Deployment higress-system/higress-controller"]).toMatchObject({ status: "ok", plugin: "mcp-server" });
    expect(report.summary).toEqual({ references: 11, ok: 5, errors: 4, warnings: 2, unreferenced: 2 });
    expect(report.unreferenced).toEqual([{ plugin: "key-auth", version: "2.0.1" }, { plugin: "unused-plugin", version: "1.0.0" }]);
    expect(report.cluster).toBe(kube.url);
    expect(result.stdout).not.toContain("s3cret-pw");
    // One list call per group, one read of the controller: nothing per resource.
    expect(kube.requests.filter((r) => r.startsWith("GET /apis/")).length).toBeLessThanOrEqual(3);
  });

  test("the human report lists what needs attention with the fix, and the summary; --server-url makes another host ours", async () => {
    const result = await check(["--fix"]);
    expect(result.code).toBe(1);
    expect(result.stdout).toMatch(/^ERROR   sha256-mismatch WasmPlugin team-a\/key-auth-pinned$/m);
    expect(result.stdout).toContain(`fix: kubectl -n higress-system patch wasmplugins.extensions.higress.io ai-proxy-1.0.0 --type merge`);
    expect(result.stdout).toContain("unreferenced (prune candidates, not removed): key-auth 2.0.1, unused-plugin 1.0.0");
    expect(result.stdout).toMatch(/\n11 references: 5 ok, 4 errors, 2 warnings; 2 stored versions unreferenced\n$/);
    expect(result.stdout).not.toContain("WasmPlugin higress-system/key-auth-1.0.0"); // fine: not listed without --all
    expect(result.stdout).not.toContain("s3cret-pw");
    const both = JSON.parse((await check(["--json", "--server-url", SERVICE, "--server-url", "https://plugins.example.com"])).stdout);
    expect(both.findings.find((f: { from: string }) => f.from === "WasmPlugin team-b/ai-proxy-edge").status).toBe("ok");
  });

  test("--namespace reads one namespace; --console-pattern checks every version any Console offers; --record keeps the report in the store", async () => {
    const before = kube.requests.length;
    const scoped = JSON.parse((await check(["--json", "--namespace", "team-a", "--controller", "none"])).stdout);
    expect(scoped.findings.map((f: { from: string }) => f.from).sort()).toEqual(["WasmPlugin team-a/key-auth-future", "WasmPlugin team-a/key-auth-pinned", "WasmPlugin team-a/nope"]);
    expect(kube.requests.slice(before).filter((r) => r.includes("/wasmplugins")).every((r) => r.includes("/namespaces/team-a/wasmplugins"))).toBe(true);

    const pattern = `${SERVICE}/plugins/\${name}/\${version}/plugin.wasm`;
    const withConsole = await check(["--json", "--console-pattern", pattern, "--record"]);
    const report = JSON.parse(withConsole.stdout);
    const consoleFindings = report.findings.filter((f: { source: { kind: string } }) => f.source.kind === "console");
    // key-auth 1.0.0 is what Consoles ask for (an alias here); key-auth 2.0.0 no Console asks for.
    expect(consoleFindings.find((f: { url: string }) => f.url === url("key-auth", "1.0.0")).status).toBe("ok");
    expect(consoleFindings.find((f: { url: string }) => f.url === url("ai-proxy", "1.0.0"))).toMatchObject({ status: "missing", message: "ai-proxy 1.0.0 is not in the store (it has 2.0.1): the gateway gets a 404" });
    expect(consoleFindings.length).toBeGreaterThan(80);
    const recorded = JSON.parse(await readFile(path.join(storeDir, "cluster-check.json"), "utf8"));
    expect(recorded).toEqual(report);
  });

  test("the API server's refusals and silences, each with a clear message", async () => {
    kube.forbidden.add("/apis/extensions.higress.io/v1alpha1/wasmplugins");
    const forbidden = await check();
    kube.forbidden.clear();
    expect(forbidden.code).toBe(1);
    expect(forbidden.stderr).toContain(
      'plugin-uploader: cannot list wasmplugins.extensions.higress.io in every namespace (HTTP 403: wasmplugins.extensions.higress.io is forbidden: User "system:serviceaccount:higress-system:uploader" cannot list resource "wasmplugins" in API group "extensions.higress.io" at the cluster scope): grant get, list and watch on it',
    );
    const wrongToken = await check([], await kube.kubeconfig("not-the-token-0000000000"));
    expect(wrongToken.stderr).toContain("refused the credentials of the kubeconfig (HTTP 401)");

    const higress = kube.groups.get("extensions.higress.io")!;
    kube.groups.delete("extensions.higress.io");
    const noCrd = await check();
    kube.groups.set("extensions.higress.io", higress);
    expect(noCrd.stderr).toContain("has no wasmplugins.extensions.higress.io (HTTP 404): the Higress WasmPlugin CRD is not installed in this cluster");

    kube.hanging.add("/apis/extensions.higress.io/v1alpha1/wasmplugins");
    const started = Date.now();
    const silent = await check(["--cluster-timeout", "1"]);
    kube.hanging.clear();
    expect(silent.stderr).toContain(`listing wasmplugins.extensions.higress.io: the API server ${kube.url} did not answer within 1 s`);
    expect(Date.now() - started).toBeLessThan(15_000);

    const unreachable = await check(["--context", "elsewhere"]);
    expect(unreachable.stderr).toMatch(/cannot reach the API server http:\/\/127\.0\.0\.1:9: ECONNREFUSED/);
    const unknown = await check(["--context", "nowhere"]);
    expect([unknown.code, unknown.stderr]).toEqual([2, "plugin-uploader: --context nowhere: the kubeconfig has no such context (it has: test, elsewhere)\n"]);
    expect((await check(["--controller", "just-a-name"])).stderr).toContain('--controller takes <namespace>/<deployment> or none, got "just-a-name"');
    expect((await check(["--server-url", "ftp://x"])).stderr).toContain("--server-url ftp://x must be http:// or https://");
  });
});

describe("the server shows the recorded check", () => {
  test("catalog, /api/v1/cluster and metrics say which versions the cluster uses and what would fail; without a record, a 404 that says how", async () => {
    const empty = await startNode("no record", { STORE: `file:${await mkdtemp(path.join(tmpdir(), "empty-store-"))}` });
    try {
      const none = await request(`${empty.url}/api/v1/cluster`, { headers: { Accept: "application/json" } });
      expect(none.status).toBe(404);
      expect(JSON.parse(none.body.toString()).error.message).toBe("no cluster check is recorded in this store; run plugin-uploader check --from-cluster --record");
      expect((await request(`${empty.url}/metrics`)).body.toString()).not.toContain("plugin_server_cluster_check_findings{");
    } finally {
      await empty.stop();
    }
    expect((await check(["--record"])).code).toBe(1);
    const server = await startNode("recorded", { STORE: `file:${storeDir}`, CACHE_TTL_SECONDS: "1" });
    try {
      const api = JSON.parse((await request(`${server.url}/api/v1/cluster`)).body.toString());
      expect(api.summary).toEqual({ references: 11, ok: 5, errors: 4, warnings: 2, unreferenced: 2 });
      expect(api.problems.map((p: { severity: string; status: string; from: string }) => `${p.severity} ${p.status} ${p.from}`)).toEqual([
        "error sha256-mismatch WasmPlugin team-a/key-auth-pinned",
        "error missing WasmPlugin team-a/key-auth-future",
        "error missing WasmPlugin team-a/nope",
        "error bad-path WasmPlugin team-b/listing",
        "warning oci WasmPlugin higress-system/ai-proxy-1.0.0",
        "warning other-host WasmPlugin team-b/ai-proxy-edge",
      ]);
      expect(api.usage["key-auth/1.0.0"]).toEqual({ count: 2, from: ["WasmPlugin higress-system/key-auth-1.0.0", "WasmPlugin team-a/key-auth-pinned"] });
      expect(api.usage["key-auth/2.0.0"].from).toContain("WasmPlugin higress-system/key-auth-1.0.0 (through 1.0.0)");
      expect(api.usage["key-auth/2.0.1"]).toBeUndefined();

      const page = (await request(`${server.url}/`)).body.toString();
      expect(page).toMatch(/<h2 id="cluster">Cluster<\/h2>\n<p role="alert">Checked [^<]+ against http:\/\/127\.0\.0\.1:\d+: 11 references, 5 fine, <strong>4 would fail<\/strong>, 2 warnings; 2 stored versions unused\.<\/p>/);
      expect(page).toContain("<td>WasmPlugin team-a/key-auth-pinned</td>");
      expect(page).toMatch(/<strong>1\.0\.0<\/strong> <span class="muted">alias of 2\.0\.0<\/span> <span class="muted">[^<]+<\/span> <span class="used" title="[^"]+">used by 2 resources<\/span>/);
      expect(page).toMatch(/<strong>2\.0\.1<\/strong> <span class="muted">[^<]+<\/span> <span class="muted">unused in the cluster<\/span>/);
      expect(page).not.toContain("s3cret-pw");

      const metrics = (await request(`${server.url}/metrics`)).body.toString();
      expect(metrics).toContain('plugin_server_cluster_check_findings{severity="error"} 4');
      expect(metrics).toContain('plugin_server_cluster_check_findings{severity="warning"} 2');
      expect(metrics).toContain('plugin_server_cluster_references{plugin="key-auth",version="1.0.0"} 2');
      expect(metrics).toMatch(/plugin_server_cluster_check_timestamp_seconds \d+/);
      expect(metrics).not.toContain('plugin="key-auth",version="2.0.1"');
    } finally {
      await server.stop();
    }
  });
});

describe("prune --keep-referenced", () => {
  test("removes only what no resource, no Console version and no recorded release reaches; a dry run unless --yes", async () => {
    const dir = await seedStore();
    const store = new FileStore(dir);
    await store.put("releases/2.2.5.json", new TextEncoder().encode(JSON.stringify({ gatewayVersion: "2.2.5", recorded: "2026-12-01T00:00:00Z", plugins: [{ name: "key-auth", version: "2.0.1", digest: `sha256:${"a".repeat(64)}`, sha256: sha256(MODULES.b) }] })));
    const api = await startKubeApi();
    try {
      api.groups.get("extensions.higress.io")!.push(wasmPlugin("higress-system", "key-auth-1.0.0", { url: url("key-auth", "1.0.0") }));
      const pattern = `${SERVICE}/plugins/\${name}/\${version}/plugin.wasm`;
      const config = await api.kubeconfig();
      const run = (more: string[]) => cli(["prune", "--keep-referenced", "--from-cluster", "--kubeconfig", config, "--to", dir, "--controller", "none", ...more]);
      expect((await run([])).stderr).toContain("needs --console-pattern: the versions the Console offers but nobody enabled yet must stay");
      const dry = await run(["--console-pattern", pattern]);
      expect(dry.code, dry.stderr).toBe(0);
      // key-auth 1.0.0 (an alias) reaches 2.0.0; ai-proxy 2.0.1 and mcp-server 2.0.1 are Console versions; key-auth 2.0.1 is released.
      expect(dry.stdout).toBe("would remove unused-plugin 1.0.0\nkept key-auth 2.0.1: part of the recorded Higress 2.2.5 release\n1 versions would remove (a dry run: --yes removes them); 1 unreferenced kept\n");
      expect((await readdir(path.join(dir, "plugins"))).sort()).toEqual(["ai-proxy", "key-auth", "mcp-server", "unused-plugin"]);
      const done = await run(["--console-pattern", pattern, "--yes"]);
      expect(done.stdout).toContain("removed unused-plugin 1.0.0\n");
      expect((await readdir(path.join(dir, "plugins"))).sort()).toEqual(["ai-proxy", "key-auth", "mcp-server"]);
      const index = JSON.parse(await readFile(path.join(dir, "index.json"), "utf8"));
      expect(Object.keys(index.plugins).sort()).toEqual(["ai-proxy", "key-auth", "mcp-server"]);
      expect((await cli(["verify", "--to", dir])).code).toBe(0);
    } finally {
      await api.stop();
    }
  });
});

describe("export --layout file", () => {
  test("the store as <dir>/<name>/<version>/plugin.wasm (aliases too, checked by sha256), and the patches to file:// URLs", async () => {
    const dir = await seedStore();
    const out = path.join(await mkdtemp(path.join(tmpdir(), "opt-")), "plugins");
    const api = await startKubeApi();
    try {
      api.groups.get("extensions.higress.io")!.push(
        wasmPlugin("higress-system", "key-auth-1.0.0", { url: url("key-auth", "1.0.0") }),
        wasmPlugin("team", "elsewhere", { url: "https://other.example/x.wasm" }),
      );
      const result = await cli(["export", "--layout", "file", "--to", dir, "--out", out, "--print-patch", "--from-cluster", "--kubeconfig", await api.kubeconfig(), "--controller", "none"]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toBe(
        `6 versions written to ${out} (mount it at /opt/plugins in the gateway)\n` +
          `kubectl -n higress-system patch wasmplugins.extensions.higress.io key-auth-1.0.0 --type merge -p '{"spec":{"url":"file:///opt/plugins/key-auth/1.0.0/plugin.wasm"}}'\n`,
      );
      expect(sha256(await readFile(path.join(out, "key-auth/1.0.0/plugin.wasm")))).toBe(sha256(MODULES.a)); // the alias, as its own file
      expect(sha256(await readFile(path.join(out, "key-auth/2.0.1/plugin.wasm")))).toBe(sha256(MODULES.b));
      expect((await readdir(out)).sort()).toEqual(["ai-proxy", "key-auth", "mcp-server", "unused-plugin"]);
      const again = await cli(["export", "--layout", "file", "--to", dir, "--out", out]);
      expect([again.code, again.stderr]).toEqual([2, `plugin-uploader: --out ${out} is not empty: export --layout file writes a whole tree into an empty or new directory\n`]);
      expect((await cli(["export", "--out", "x.tar.gz", "--to", dir])).stderr).toContain("--to goes with --layout file");
    } finally {
      await api.stop();
    }
  });
});

describe("check --watch", () => {
  test("checks again on a WasmPlugin change (a watch from the list's resourceVersion), lists again after 410 Gone, stops on SIGTERM", async () => {
    const api = await startKubeApi();
    const dir = await seedStore();
    const child = spawn(process.execPath, [path.join(ROOT, "dist/uploader.js"), "check", "--from-cluster", "--watch", "--record", "--controller", "none", "--kubeconfig", await api.kubeconfig(), "--to", dir], {
      env: { PATH: process.env.PATH ?? "" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    let err = "";
    child.stdout.on("data", (d) => (out += d));
    child.stderr.on("data", (d) => (err += d));
    const exited = new Promise<number | null>((resolve) => child.on("exit", resolve));
    const lines = () => out.split("\n").filter(Boolean);
    const until = async (what: string, condition: () => boolean) => {
      for (let i = 0; i < 200 && !condition(); i++) await new Promise((r) => setTimeout(r, 50));
      expect(condition(), `${what}\nstdout: ${out}\nstderr: ${err}\nrequests: ${api.requests.join("\n")}`).toBe(true);
    };
    const watches = () => api.requests.filter((r) => r.includes("watch=true"));
    try {
      await until("first check", () => lines().length === 1);
      expect(lines()[0]).toMatch(/ 0 references: 0 ok, 0 errors, 0 warnings \(recorded\)$/);
      await until("a watch from the list's resourceVersion", () => watches().length === 1);
      expect(watches()[0]).toContain("resourceVersion=1000");
      expect(watches()[0]).toContain("allowWatchBookmarks=true");

      const added = wasmPlugin("team", "late", { url: url("key-auth", "9.9.9") });
      api.groups.get("extensions.higress.io")!.push(added);
      api.emit("extensions.higress.io", "ADDED", added);
      await until("a check after the change", () => lines().length === 2);
      expect(lines()[1]).toMatch(/ 1 references: 0 ok, 1 errors, 0 warnings \(recorded\)$/);
      const recorded = JSON.parse(await readFile(path.join(dir, "cluster-check.json"), "utf8"));
      expect(recorded.findings.map((f: { from: string; status: string }) => `${f.from} ${f.status}`)).toEqual(["WasmPlugin team/late missing"]);

      // The history the watch follows is compacted: 410 Gone, then a new list and a watch from its resourceVersion.
      await until("the watch resumed after the check", () => watches().length === 2);
      const listsBefore = api.requests.filter((r) => r.includes("wasmplugins?limit=")).length;
      api.resourceVersion = 5000;
      api.expire();
      await until("a new list after 410", () => api.requests.filter((r) => r.includes("wasmplugins?limit=")).length > listsBefore);
      await until("a new watch from the new list", () => watches().some((w) => w.includes("resourceVersion=5000")));
      expect(err).toBe("");
    } finally {
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      await api.stop();
    }
  });
});

describe("check on a big cluster", () => {
  test("500 WasmPlugins over the official store (paged lists): the planted problems and nothing else", async () => {
    const big = await startKubeApi();
    try {
      const names = ["key-auth", "ai-proxy", "mcp-server"] as const;
      const versions: Record<(typeof names)[number], [string, Uint8Array][]> = {
        "key-auth": [["1.0.0", MODULES.a], ["2.0.0", MODULES.a], ["2.0.1", MODULES.b]],
        "ai-proxy": [["2.0.1", MODULES.c]],
        "mcp-server": [["2.0.1", MODULES.d]],
      };
      const items = big.groups.get("extensions.higress.io")!;
      const planted = new Map<string, string>();
      for (let i = 0; i < 500; i++) {
        const name = names[i % names.length]!;
        const [version, wasm] = versions[name][i % versions[name].length]!;
        let spec: Record<string, unknown> = { url: url(name, version), sha256: sha256(wasm) };
        if (i % 97 === 5) (spec = { url: url(name, "7.7.7") }), planted.set(`ns-${i % 7}/wp-${i}`, "missing");
        if (i % 89 === 11) (spec = { url: url(name, version), sha256: "0".repeat(64) }), planted.set(`ns-${i % 7}/wp-${i}`, "sha256-mismatch");
        if (i % 83 === 13) (spec = { url: `oci://${OFFICIAL}/plugins/${name}:${version}` }), planted.set(`ns-${i % 7}/wp-${i}`, "oci");
        items.push(wasmPlugin(`ns-${i % 7}`, `wp-${i}`, spec));
      }
      const started = performance.now();
      const result = await cli(["check", "--from-cluster", "--kubeconfig", await big.kubeconfig(), "--to", storeDir, "--json", "--controller", "none"]);
      const seconds = (performance.now() - started) / 1000;
      const report = JSON.parse(result.stdout);
      const problems = new Map(report.findings.filter((f: { status: string }) => f.status !== "ok").map((f: { source: { namespace: string; name: string }; status: string }) => [`${f.source.namespace}/${f.source.name}`, f.status]));
      expect(problems).toEqual(planted);
      expect(report.summary.references).toBe(500);
      expect(big.requests.filter((r) => r.includes("extensions.higress.io/v1alpha1/wasmplugins"))).toEqual([
        "GET /apis/extensions.higress.io/v1alpha1/wasmplugins?limit=500",
      ]);
      console.log(`[cluster] check of 500 WasmPlugins: ${seconds.toFixed(2)} s for the whole CLI run (${planted.size} planted problems found)`);
    } finally {
      await big.stop();
    }
  });
});
