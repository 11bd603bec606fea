import { execFile } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { chmod, cp, mkdir, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { gunzipSync } from "node:zlib";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { CONSOLE_VERSIONS } from "./support/compat.ts";
import { sha256 } from "./support/fixtures.ts";
import { expectServesExamples, request } from "./support/http.ts";
import { mirrorArgs, pushOfficialSet, servedImage } from "./support/official.ts";
import { startRegistry, type Registry } from "./support/registry.ts";
import { ROOT, startNode } from "./support/targets.ts";

/**
 * No Docker engine runs here, so this plays the Dockerfile's steps directly: each stage a target
 * needs in a clean directory standing for its WORKDIR (/app), its ARG, ENV, COPY and RUN lines as
 * written (system packages aside), then the image's CMD started and probed. A Dockerfile that
 * stops building or starting fails here.
 */

const run = promisify(execFile);
/** Every stage directory played: each holds a full npm install (about 600 MB). */
const playedDirs: string[] = [];
afterAll(() => Promise.all(playedDirs.map((dir) => rm(dir, { recursive: true, force: true }))));
const dockerfile = await readFile(path.join(ROOT, "Dockerfile"), "utf8");
const tools = inject("registryTools");

/** Joins continuation lines and drops comments. */
function instructions(text: string): [string, string][] {
  return text
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const space = l.indexOf(" ");
      return [l.slice(0, space).toUpperCase(), l.slice(space + 1).trim()];
    });
}

interface StageText {
  name: string | undefined;
  from: string;
  steps: [string, string][];
}

function stagesOf(steps: [string, string][]): StageText[] {
  const stages: StageText[] = [];
  for (const [instruction, args] of steps) {
    if (instruction === "FROM") {
      const [from, , name] = args.split(/\s+/);
      stages.push({ name, from: from!, steps: [] });
    } else stages.at(-1)!.steps.push([instruction, args]);
  }
  return stages;
}

const copyFrom = (args: string) => /--from=(\S+)/.exec(args)?.[1];

/** The stages `target` needs, as BuildKit builds them: its base and every COPY --from, transitively. */
function needed(stages: StageText[], target: StageText): Set<StageText> {
  const out = new Set<StageText>();
  const visit = (stage: StageText) => {
    if (out.has(stage)) return;
    out.add(stage);
    const bases = [stage.from, ...stage.steps.filter(([i]) => i === "COPY").map(([, a]) => copyFrom(a))];
    for (const base of bases) {
      const found = base === undefined ? undefined : stages.find((s) => s.name === base);
      if (found) visit(found);
    }
  };
  visit(target);
  return out;
}

interface Built {
  dir: string;
  env: Record<string, string>;
  /** Every stage played, by name. */
  played: Map<string, string>;
}

/** `/app/...` inside the image is `dir/...` here. */
const inside = (dir: string, value: string) => value.replace(/^\/app(?=\/|$)/, dir);

/** Plays the stages `target` (default: the last) needs, with `buildArgs` as --build-arg gives them. */
async function build(target?: string, buildArgs: Record<string, string> = {}): Promise<Built> {
  const stages = stagesOf(instructions(dockerfile));
  const last = target === undefined ? stages.at(-1)! : stages.find((s) => s.name === target)!;
  const wanted = needed(stages, last);
  const dirs = new Map<StageText, Built>();
  for (const stage of stages.filter((s) => wanted.has(s))) {
    const base = stages.find((s) => s.name === stage.from);
    const dir = await mkdtemp(path.join(tmpdir(), `image-${stage.name ?? "default"}-`));
    playedDirs.push(dir);
    await chmod(dir, 0o755); // the image's /app: any UID may read it
    const env: Record<string, string> = {};
    if (base) {
      await cp(dirs.get(base)!.dir, dir, { recursive: true });
      Object.assign(env, dirs.get(base)!.env);
    }
    const args: Record<string, string> = {};
    for (const [instruction, text] of stage.steps) {
      if (instruction === "ARG") {
        const [name, value = ""] = text.split("=");
        args[name!] = buildArgs[name!] ?? value.replace(/^"(.*)"$/, "$1");
      } else if (instruction === "ENV") {
        for (const m of text.matchAll(/(\w+)=(\S+)/g)) env[m[1]!] = inside(dir, m[2]!);
      } else if (instruction === "COPY") {
        const parts = text.split(/\s+/).filter((p) => !p.startsWith("--") || p.startsWith("--from="));
        const from = copyFrom(text);
        if (from) parts.shift();
        const dest = parts.pop()!;
        const source = from ? [...dirs.entries()].find(([s]) => s.name === from)![1].dir : ROOT;
        const to = path.join(dir, path.relative("/app", path.resolve("/app", dest)));
        for (const item of parts) {
          const relative = from ? path.relative("/app", item) : item;
          const target = dest.endsWith("/") ? path.join(to, path.basename(item)) : to;
          await mkdir(path.dirname(target), { recursive: true });
          await cp(path.join(source, relative), target, { recursive: true });
        }
      } else if (instruction === "RUN") {
        if (text.includes("apt-get")) continue; // system packages: checked below, not installed here
        const command = text
          .replace(/^(--\S+\s+)+/, "") // mounts: no secret is given here
          .replace(/\/app\//g, `${dir}/`)
          .replace(/&& npm cache clean --force/, ""); // shrinks the layer only; keep this machine's cache
        await run("sh", ["-c", command], { cwd: dir, env: { ...process.env, ...env, ...args }, maxBuffer: 64 << 20 });
      }
    }
    dirs.set(stage, { dir, env, played: new Map() });
  }
  const built = dirs.get(last)!;
  return { ...built, played: new Map([...dirs].map(([s, b]) => [s.name ?? "default", b.dir])) };
}

/** Files under `dir`, relative. */
async function files(dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => path.relative(dir, path.join(e.parentPath, e.name)));
}

describe("Dockerfile", () => {
  const steps = instructions(dockerfile);
  const stages = stagesOf(steps);
  const value = (name: string) => steps.filter(([i]) => i === name).map(([, v]) => v);

  test("pins its base images by digest and runs as a non-root user with curl and tini", () => {
    for (const stage of stages) {
      // Either the pinned base, or a stage defined above it.
      if (!stages.slice(0, stages.indexOf(stage)).some((s) => s.name === stage.from)) expect(stage.from).toMatch(/^node:24-bookworm-slim@sha256:[0-9a-f]{64}$/);
    }
    expect(stages.at(-1)!.from).toBe("runtime"); // `docker build .` without --target: the plain runtime image
    expect(value("USER").at(-1)).toBe("node");
    expect(value("EXPOSE")).toEqual(["8080"]);
    expect(value("HEALTHCHECK")[0]).toContain("curl -sf http://127.0.0.1:8080/");
    expect(value("RUN").some((r) => /apt-get install .*curl .*tini/.test(r))).toBe(true);
    // The build stage compiles the sendfile(2) addon: a compiler and the C library's headers.
    expect(value("RUN").some((r) => /apt-get install .*gcc .*libc6-dev/.test(r))).toBe(true);
    expect(value("ENTRYPOINT")).toEqual(['["/usr/bin/tini", "--"]']);
    expect(value("CMD")).toEqual(['["node", "dist/node.js"]']);
    expect(value("ENV").join(" ")).toContain("NODE_ENV=production");
    // The server runs as `npm start` runs it, and owns its memory settings: neither repeats them.
    const start = (JSON.parse(readFileSync(path.join(ROOT, "package.json"), "utf8")) as { scripts: { start: string } }).scripts.start;
    expect(start).toBe("node dist/node.js");
    expect(value("ENV").join(" ")).not.toMatch(/NODE_OPTIONS|MALLOC_/);
    const labels = value("LABEL").join(" ");
    for (const key of ["source", "version", "revision", "licenses", "description"]) expect(labels).toContain(`org.opencontainers.image.${key}=`);
    expect(labels).toContain('org.opencontainers.image.licenses="Apache-2.0"');
  });

  test("the default target's stages, played in clean directories, give a server that starts and serves", async () => {
    const image = await build();
    expect([...image.played.keys()]).toEqual(["build", "runtime", "default"]); // no plugin pull for the plain image
    // Only production dependencies: no esbuild, no vitest.
    const { stdout: installed } = await run("npm", ["ls", "--omit=dev", "--depth=0", "--parseable"], { cwd: image.dir });
    expect(installed).toContain("node_modules/hono");
    expect(installed).not.toContain("esbuild");

    const server = await startNode("image", { ...image.env, PORT: "0", HOST: "127.0.0.1" }, image.dir);
    try {
      expect(server.output()).toMatch(/; sendfile: on\)/);
      expect((await request(`${server.url}/`)).status).toBe(200);
      await expectServesExamples(server.url);
    } finally {
      await server.stop();
    }
    const help = await run("node", ["dist/uploader.js", "--help"], { cwd: image.dir });
    expect(help.stdout).toMatch(/^Usage: plugin-uploader <command>[^]*^ {2}sync /m); // commander, a production dependency, is in the image
  }, 240_000);
});

/**
 * Higress's core chart (helm/core/templates/plugin-server-deployment.yaml, values `pluginServer.*`)
 * runs `<hub>/higress/<image>:<tag>` with `containerPort: 8080`, no env, no volumes, no
 * securityContext, and requests 128Mi / limits 256Mi by default. The kubelet adds the service links
 * of the namespace's Services to the environment; OpenShift adds an arbitrary UID in group 0.
 */
const HIGRESS_SLOT = {
  port: 8080,
  user: { uid: 1_000_770_000, gid: 0 },
  serviceLinks: Object.fromEntries(
    ["higress-gateway", "higress-controller", "higress-console", "higress-plugin-server", "kubernetes"].flatMap((service, i) => {
      const prefix = service.toUpperCase().replace(/-/g, "_");
      const ip = `10.96.0.${10 + i}`;
      return [
        [`${prefix}_SERVICE_HOST`, ip],
        [`${prefix}_SERVICE_PORT`, "80"],
        [`${prefix}_PORT`, `tcp://${ip}:80`],
        [`${prefix}_PORT_80_TCP`, `tcp://${ip}:80`],
      ];
    }),
  ),
};

describe.skipIf(!tools)("the self-contained image (Higress's pluginServer slot)", () => {
  let registry: Registry;
  let pushed: Map<string, Uint8Array>;

  beforeAll(async () => {
    registry = await startRegistry();
    pushed = await pushOfficialSet(registry);
  }, 180_000);
  afterAll(() => registry?.stop());

  test("built with the default set published at build time, it serves every URL any Console release generates, as any UID, with no env", async () => {
    const image = await build("self-contained", { SYNC_ARGS: mirrorArgs(registry).join(" ") });
    expect([...image.played.keys()]).toEqual(["build", "runtime", "plugins", "self-contained"]);
    const store = path.join(image.dir, "store");
    const published = await files(store);
    expect(published).not.toContain("uploader.lease.json"); // the build's lease is gone
    expect(published.filter((f) => f.endsWith("/plugin.wasm")).length).toBe(pushed.size);
    for (const file of published) expect(statSync(path.join(store, file)).mode & 0o444, file).toBe(0o444); // readable by any UID
    expect(statSync(store).mode & 0o777).toBe(0o755);

    // Started as Higress's template starts it: the image's own env, the kubelet's service links, PORT from the image.
    expect(image.env.PORT).toBe(String(HIGRESS_SLOT.port));
    const env = { PATH: process.env.PATH ?? "", HOSTNAME: "higress-plugin-server-5d9c7b-x2x9q", ...HIGRESS_SLOT.serviceLinks, ...image.env };
    const server = await startNode("self-contained", env, image.dir, process.execPath, { user: HIGRESS_SLOT.user, exactEnv: true });
    try {
      const base = `http://127.0.0.1:${HIGRESS_SLOT.port}`;
      expect(server.url).toBe(`http://0.0.0.0:${HIGRESS_SLOT.port}`);
      expect((await request(`${base}/`)).status).toBe(200); // Higress's compose health check: curl -sf http://127.0.0.1:8080/
      for (const [name, versions] of Object.entries(CONSOLE_VERSIONS)) {
        for (const version of versions) {
          const url = `${base}/plugins/${name}/${version}/plugin.wasm`;
          const gzip = await request(url, { headers: { "Accept-Encoding": "gzip" } }); // as the gateway asks
          expect(gzip.status, url).toBe(200);
          const bytes = gzip.headers["content-encoding"] === "gzip" ? gunzipSync(gzip.body) : gzip.body;
          expect(sha256(bytes), url).toBe(sha256(pushed.get(servedImage(name, version))!));
          const metadata = await request(`${base}/plugins/${name}/${version}/metadata.txt`);
          expect(metadata.body.toString(), url).toContain(`Plugin Name: ${name}\n`);
        }
      }
      const listing = await request(`${base}/plugins/`);
      expect(listing.status).toBe(200);
      expect(server.output()).not.toMatch(/EACCES|EROFS|warn/i); // nothing to write, nothing refused
    } finally {
      await server.stop();
    }
    expect(await files(store)).toEqual(published); // serving wrote nothing into the image
  }, 300_000);
});
