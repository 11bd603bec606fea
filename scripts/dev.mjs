// `npm run dev`: the worker on workerd (wrangler dev), with the example plugins in its local R2
// bucket first, as `npm start` serves them from examples/store. Arguments go to wrangler dev.
import { spawnSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");
const bucket = /^bucket_name = "([^"]+)"$/m.exec(readFileSync(path.join(root, "wrangler.toml"), "utf8"))?.[1];
const store = path.join(root, "examples/store");
const wrangler = path.join(root, "node_modules/.bin/wrangler");
const env = { ...process.env, WRANGLER_SEND_METRICS: process.env.WRANGLER_SEND_METRICS ?? "false" };

const files = readdirSync(store, { recursive: true, withFileTypes: true }).filter((e) => e.isFile());
for (const file of files) {
  const key = path.relative(store, path.join(file.parentPath, file.name)).split(path.sep).join("/");
  const put = spawnSync(wrangler, ["r2", "object", "put", `${bucket}/${key}`, "--file", path.join(file.parentPath, file.name), "--local"], { cwd: root, env, encoding: "utf8" });
  if (put.status !== 0) {
    console.error(`cannot put ${key} into the local R2 bucket ${bucket}:\n${put.stderr || put.stdout}`);
    process.exit(1);
  }
}
console.error(`local R2 bucket ${bucket}: ${files.length} example files (examples/store)`);
const dev = spawnSync(wrangler, ["dev", ...process.argv.slice(2)], { cwd: root, env, stdio: "inherit" });
process.exitCode = dev.status ?? 1;
