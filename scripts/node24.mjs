// Runs a command on Node 22 or newer: wrangler, Miniflare and so the test suite and the benchmark need
// it. On an older Node (a fresh Debian machine has Node 20), Node 24 is fetched from the npm
// registry into .tools/ (scripts/get-node.sh) and put first on PATH; SYSTEM_NODE keeps the machine's
// own Node for the quick-start test. The server and the uploader themselves run on Node 20 too.
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";

const [command, ...args] = process.argv.slice(2);
if (!command) {
  console.error("usage: node scripts/node24.mjs <command> [args...]");
  process.exitCode = 2;
} else {
  let env = process.env;
  if (Number(process.versions.node.split(".")[0]) < 22) {
    const root = path.resolve(import.meta.dirname, "..");
    const node = execFileSync("bash", [path.join(root, "scripts/get-node.sh")], { cwd: root, encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
    env = { ...env, PATH: `${path.dirname(path.resolve(root, node))}${path.delimiter}${env.PATH ?? ""}`, SYSTEM_NODE: env.SYSTEM_NODE ?? process.execPath };
    console.error(`Node ${process.versions.node} is older than wrangler and Miniflare need: running ${command} on ${node}`);
  }
  const result = spawnSync(command, args, { stdio: "inherit", env });
  if (result.error) console.error(`${command}: ${result.error.message}`);
  process.exitCode = result.status ?? 1;
}
