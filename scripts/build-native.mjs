// Builds dist/sendfile.node (src/node/native/sendfile.c) with the machine's C compiler against
// Node-API's headers, which is all it needs: no node-gyp, no Python. Node-API is ABI-stable, so
// headers of any Node from 18 on build an addon every later Node loads. Without a compiler or the
// headers the server still runs, copying file bytes (its start line says so); SENDFILE=on makes
// that an error at start instead.
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, rmSync } from "node:fs";
import path from "node:path";

const root = path.resolve(import.meta.dirname, "..");

/** The directory holding node_api.h and uv.h: the running Node's own first (a Node tarball, the node image). */
function headers() {
  const candidates = [path.resolve(path.dirname(process.execPath), "../include/node"), "/usr/include/node", "/usr/local/include/node"];
  return candidates.find((dir) => existsSync(path.join(dir, "node_api.h")) && existsSync(path.join(dir, "uv.h")));
}

/** Builds the addon; the reason when it cannot. */
export function buildNative(out = path.join(root, "dist/sendfile.node")) {
  const include = headers();
  rmSync(out, { force: true }); // never load an addon of an earlier build
  if (!include) return { skipped: "no Node-API headers (node_api.h, uv.h) beside this Node or in /usr/include/node" };
  const cc = process.env.CC || "cc";
  mkdirSync(path.dirname(out), { recursive: true });
  try {
    execFileSync(cc, ["-O2", "-Wall", "-Wextra", "-Werror", "-shared", "-fPIC", "-DNODE_GYP_MODULE_NAME=sendfile", "-DNAPI_VERSION=8", `-I${include}`, path.join(root, "src/node/native/sendfile.c"), "-o", out], { stdio: ["ignore", "ignore", "pipe"] });
  } catch (error) {
    return { skipped: `${cc} failed: ${error.code === "ENOENT" ? "no C compiler" : String(error.stderr ?? error.message).trim()}` };
  }
  return { built: out };
}
