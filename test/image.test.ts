import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { describe, expect, test } from "vitest";
import { expectServesExamples, request } from "./support/http.ts";
import { ROOT, startNode } from "./support/targets.ts";

/**
 * No Docker engine runs here, so this plays the Dockerfile's steps directly: each stage in a
 * clean directory standing for its WORKDIR, its COPY and RUN lines as written (system
 * packages aside), then the image's CMD started and probed. A Dockerfile that stops building
 * or starting fails here.
 */

const run = promisify(execFile);
const dockerfile = await readFile(path.join(ROOT, "Dockerfile"), "utf8");

interface Stage {
  name: string | undefined;
  from: string;
  dir: string;
  env: Record<string, string>;
}

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

describe("Dockerfile", () => {
  const steps = instructions(dockerfile);
  const value = (name: string) => steps.filter(([i]) => i === name).map(([, v]) => v);

  test("pins its base images by digest and runs as a non-root user with curl and tini", () => {
    for (const from of value("FROM")) expect(from).toMatch(/^node:24-bookworm-slim@sha256:[0-9a-f]{64}( AS \w+)?$/);
    expect(value("USER").at(-1)).toBe("node");
    expect(value("EXPOSE")).toEqual(["8080"]);
    expect(value("HEALTHCHECK")[0]).toContain("curl -sf http://127.0.0.1:8080/");
    expect(value("RUN").some((r) => /apt-get install .*curl .*tini/.test(r))).toBe(true);
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

  test("its build and runtime steps, played in clean directories, give a server that starts and serves", async () => {
    const stages: Stage[] = [];
    let stage: Stage | undefined;
    for (const [instruction, args] of steps) {
      if (instruction === "FROM") {
        const name = / AS (\w+)$/.exec(args)?.[1];
        stage = { name, from: args, dir: await mkdtemp(path.join(tmpdir(), `image-${name ?? "runtime"}-`)), env: {} };
        stages.push(stage);
      } else if (instruction === "ENV") {
        for (const m of args.matchAll(/(\w+)=(\S+)/g)) stage!.env[m[1]!] = m[2]!;
      } else if (instruction === "COPY") {
        const parts = args.split(/\s+/);
        const from = parts[0]!.startsWith("--from=") ? parts.shift()!.slice("--from=".length) : undefined;
        const dest = parts.pop()!;
        const base = from ? stages.find((s) => s.name === from)!.dir : ROOT;
        for (const source of parts) {
          const relative = from ? path.relative("/app", source) : source;
          const target = dest.endsWith("/") ? path.join(stage!.dir, dest, path.basename(source)) : path.join(stage!.dir, dest);
          await mkdir(path.dirname(target), { recursive: true });
          await cp(path.join(base, relative), target, { recursive: true });
        }
      } else if (instruction === "RUN") {
        if (args.includes("apt-get")) continue; // system packages: checked above, not installed here
        const command = args.replace(/&& npm cache clean --force/, ""); // shrinks the layer only; keep this machine's cache
        await run("sh", ["-c", command], { cwd: stage!.dir, env: { ...process.env, ...stage!.env }, maxBuffer: 16 << 20 });
      }
    }
    const runtime = stages.at(-1)!;
    // Only production dependencies: no esbuild, no vitest.
    const { stdout: installed } = await run("npm", ["ls", "--omit=dev", "--depth=0", "--parseable"], { cwd: runtime.dir });
    expect(installed).toContain("node_modules/hono");
    expect(installed).not.toContain("esbuild");

    const server = await startNode("image", { ...runtime.env, PORT: "0", HOST: "127.0.0.1" }, runtime.dir);
    try {
      expect((await request(`${server.url}/`)).status).toBe(200);
      await expectServesExamples(server.url);
    } finally {
      await server.stop();
    }
    const help = await run("node", ["dist/uploader.js", "--help"], { cwd: runtime.dir });
    expect(help.stdout).toContain("plugin-uploader sync");
  }, 240_000);
});
