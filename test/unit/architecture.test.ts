import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { execFileSync } from "node:child_process";
import { ROOT } from "../support/targets.ts";

/**
 * The layers of src/ (docs/architecture.md), read from the import statements themselves:
 * core <- storage <- plugins, access <- config, http <- app <- the entries (node, worker).
 * An import may point down or sideways, never up; core does no I/O and needs no runtime.
 */

const LAYERS: Record<string, number> = { core: 0, storage: 1, plugins: 2, access: 2, config: 3, http: 3 };
const ENTRY = 5;

function layerOf(file: string): number {
  const [top, dir] = path.relative(ROOT, file).split(path.sep);
  if (top !== "src") return ENTRY + 1; // uploader, scripts: above every layer
  if (dir === "app.ts") return 4;
  return LAYERS[dir!] ?? ENTRY; // node.ts, node/, worker.ts, worker/
}

const sources = execFileSync("git", ["ls-files", "--cached", "--others", "--exclude-standard", "src", "uploader"], { cwd: ROOT, encoding: "utf8" })
  .split("\n")
  .filter((f) => f.endsWith(".ts") && !f.endsWith(".d.ts"))
  .map((f) => path.join(ROOT, f))
  .filter((f) => existsSync(f)); // not deleted in the work tree

/** Every module a file imports: static imports and exports, and dynamic import(). */
function imports(file: string): string[] {
  const text = readFileSync(file, "utf8");
  const found = [...text.matchAll(/^\s*(?:import|export)\s[^;]*?\sfrom\s+"([^"]+)"|import\("([^"]+)"\)/gms)].map((m) => m[1] ?? m[2]!);
  return found;
}

const resolve = (file: string, specifier: string) => (specifier.startsWith(".") ? path.resolve(path.dirname(file), specifier) : specifier);
const name = (file: string) => path.relative(ROOT, file);

describe("architecture", () => {
  test("the reader sees the imports it checks (a file with known imports)", () => {
    expect(imports(path.join(ROOT, "src/plugins/read.ts")).map((s) => resolve(path.join(ROOT, "src/plugins/read.ts"), s)).map(name)).toEqual(
      expect.arrayContaining(["src/core/aliases.ts", "src/storage/store.ts"]),
    );
    expect(layerOf(path.join(ROOT, "src/core/layout.ts"))).toBeLessThan(layerOf(path.join(ROOT, "src/storage/fs.ts")));
    expect(layerOf(path.join(ROOT, "src/worker.ts"))).toBe(ENTRY);
  });

  test("no import points up a layer: core <- storage <- plugins, access <- config, http <- app <- entries <- uploader", () => {
    const upward: string[] = [];
    for (const file of sources) {
      for (const specifier of imports(file)) {
        if (!specifier.startsWith(".")) continue;
        const target = resolve(file, specifier);
        if (layerOf(target) > layerOf(file)) upward.push(`${name(file)} -> ${name(target)}`);
        // The uploader runs beside the server, never inside an entry's wiring.
        if (name(file).startsWith("uploader/") && /^src\/(node|worker)(\/|\.ts)/.test(name(target))) upward.push(`${name(file)} -> ${name(target)}`);
      }
    }
    expect(upward).toEqual([]);
  });

  test("core does no I/O: no node: module, no store, only pure libraries", () => {
    const found: string[] = [];
    for (const file of sources.filter((f) => name(f).startsWith("src/core/"))) {
      for (const specifier of imports(file)) {
        const pure = specifier.startsWith("./") || specifier.startsWith("semver/");
        if (!pure) found.push(`${name(file)} imports ${specifier}`);
      }
    }
    expect(found).toEqual([]);
  });

  test("the AWS SDK is imported in exactly one file, which the worker never reaches", () => {
    const users = sources.filter((f) => imports(f).some((s) => s.startsWith("@aws-sdk/"))).map(name);
    expect(users).toEqual(["src/storage/s3.ts"]);
  });

  test("docs/architecture.md names only files that exist", () => {
    const doc = readFileSync(path.join(ROOT, "docs/architecture.md"), "utf8");
    const named = [...new Set([...doc.matchAll(/[\w.-]+(?:\/[\w.-]+)*\.ts\b/g)].map((m) => m[0]))];
    expect(named.length).toBeGreaterThan(40);
    const all = [...sources, ...execFileSync("git", ["ls-files", "test"], { cwd: ROOT, encoding: "utf8" }).split("\n").map((f) => path.join(ROOT, f))].map(name);
    const missing = named.filter((n) => !all.some((f) => f === n || f.endsWith(`/${n}`)));
    expect(missing).toEqual([]);
  });
});
