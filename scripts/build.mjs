// Bundles the entries with esbuild: dist/node.js (with dist/chunks/) and dist/uploader.js (dependencies stay external
// and come from node_modules) and dist/worker.js (self-contained, as wrangler would bundle it). Fails if the
// worker bundle would contain the AWS SDK or any Node built-in.
import { readFileSync, rmSync } from "node:fs";
import { build } from "esbuild";
import { buildNative } from "./build-native.mjs";

// One version for the package, the image and the chart: printed by `plugin-uploader --version` and the server's start line.
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8"));
const common = {
  bundle: true,
  format: "esm",
  sourcemap: true,
  target: "es2022",
  logLevel: "warning",
  metafile: true,
  define: { __VERSION__: JSON.stringify(version) },
};

rmSync(new URL("../dist/chunks", import.meta.url), { recursive: true, force: true }); // chunks of earlier builds

await build({
  ...common,
  entryPoints: ["src/node.ts"],
  // The S3 backend (and the AWS SDK it imports) in a chunk of its own, loaded only for an S3 store.
  outdir: "dist",
  splitting: true,
  chunkNames: "chunks/[name]-[hash]",
  platform: "node",
  target: "node20",
  packages: "external",
});

await build({
  ...common,
  entryPoints: ["uploader/cli.ts"],
  outfile: "dist/uploader.js",
  platform: "node",
  target: "node20",
  packages: "external",
});

const worker = await build({
  ...common,
  entryPoints: ["src/worker.ts"],
  outfile: "dist/worker.js",
  platform: "neutral",
  mainFields: ["module", "main"],
  conditions: ["workerd", "worker", "browser"],
  // bcryptjs imports Node's crypto only as a fallback for Web Crypto, which workerd has; its
  // package.json asks browser bundles to leave it out, as this does.
  plugins: [
    {
      name: "no-node-crypto",
      setup(b) {
        b.onResolve({ filter: /^crypto$/ }, () => ({ path: "crypto", namespace: "empty" }));
        b.onLoad({ filter: /.*/, namespace: "empty" }, () => ({ contents: "export default null;" }));
      },
    },
  ],
});
const inputs = Object.keys(worker.metafile.inputs);
const forbidden = inputs.filter((file) => /@aws-sdk|@smithy|^node:|node_modules\/@hono\/node-server/.test(file));
if (forbidden.length > 0) {
  console.error(`the worker bundle must not contain these:\n  ${forbidden.join("\n  ")}`);
  process.exitCode = 1;
}

// The sendfile(2) addon: optional (the server copies bytes without it), so a machine without a C compiler still builds.
const native = buildNative();
if (native.skipped) console.warn(`dist/sendfile.node not built (${native.skipped}): the server will copy file bytes instead of sendfile(2)`);
