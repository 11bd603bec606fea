// A bare Node HTTP server for the identity ceiling (bench/identity-ceiling.ts): serves the files
// under ROOT with Content-Length and nothing else, in one of three ways (MODE):
// - memory: every file read into one buffer at start, each response one write (the cheapest
//   Node can send with a copy: what our memory cache does);
// - stream: fs.createReadStream piped into the response (what most Node servers do);
// - sendfile: the server's own sender (src/node/sendfile.ts) over its addon (ADDON, dist/sendfile.node):
//   no copy into user space, none into the socket.
import { createReadStream, openSync, closeSync, fstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import path from "node:path";
import { loadSendfile } from "../../src/node/sendfile.ts";

const { ROOT, PORT, MODE } = process.env;
// The server's own sender (Node 24 strips the types), over the built addon.
const kernel = MODE === "sendfile" ? loadSendfile("on", [process.env.ADDON]).send : undefined;

const files = new Map();
const walk = (dir) => {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) walk(full);
    else if (entry.name === "plugin.wasm") {
      const url = "/" + path.relative(ROOT, full).split(path.sep).join("/");
      files.set(url, MODE === "memory" ? readFileSync(full) : { path: full, size: statSync(full).size });
    }
  }
};
walk(ROOT);

createServer((req, res) => {
  const file = files.get(req.url);
  if (!file) return res.writeHead(404, { "Content-Length": "0" }).end();
  const size = MODE === "memory" ? file.length : file.size;
  res.writeHead(200, { "Content-Type": "application/wasm", "Content-Length": String(size) });
  if (MODE === "memory") return res.end(file);
  if (MODE === "stream") return createReadStream(file.path).pipe(res);
  const fd = openSync(file.path, "r");
  if (fstatSync(fd).size !== size) throw new Error("changed");
  kernel(res, { fd, start: 0, length: size }, () => {}, (error) => {
    closeSync(fd);
    if (error) res.destroy(error);
    else res.end();
  });
}).listen(Number(PORT), "127.0.0.1");
