// A bare Node HTTP server for the identity ceiling (bench/identity-ceiling.ts): serves the files
// under ROOT with Content-Length and nothing else, in one of three ways (MODE):
// - memory: every file read into one buffer at start, each response one write (the cheapest
//   Node can send with a copy: what our memory cache does);
// - stream: fs.createReadStream piped into the response (what most Node servers do);
// - sendfile: the server's sendfile(2) addon (ADDON, dist/sendfile.node) with the same loop as
//   src/node/sendfile.ts: no copy into user space, none into the socket.
import { createReadStream, openSync, closeSync, fstatSync, readdirSync, readFileSync, statSync } from "node:fs";
import { createServer } from "node:http";
import { createRequire } from "node:module";
import path from "node:path";

const { ROOT, PORT, MODE } = process.env;
const addon = MODE === "sendfile" ? createRequire(import.meta.url)(process.env.ADDON) : undefined;

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

const EAGAIN = -11;

/** Sends `size` bytes of `fd` after the headers, with sendfile(2), waiting when the socket is full. */
function sendFile(res, fd, size, done) {
  const socket = res.socket;
  // Node's own queue (the headers) must be empty first: both write to the one descriptor.
  socket.write(Buffer.alloc(0), () => {
    const sender = addon.open(socket._handle.fd);
    let offset = 0;
    let finished = false;
    const finish = (error) => {
      if (finished) return;
      finished = true;
      addon.close(sender);
      done(error);
    };
    let watching = false;
    const watch = () => {
      if (watching) return;
      watching = true;
      addon.watch(sender, (status) => (status < 0 ? finish(new Error(`poll ${status}`)) : pump()));
    };
    const pump = () => {
      for (let turn = 0; turn < 2 * 1024 * 1024; ) {
        if (offset === size) return finish();
        const n = addon.send(sender, fd, offset, Math.min(size - offset, 2 * 1024 * 1024 - turn));
        if (n > 0) {
          offset += n;
          turn += n;
        } else if (n === EAGAIN) return watch();
        else return finish(new Error(n === 0 ? "file shrank" : `sendfile errno ${-n}`));
      }
      watch();
    };
    pump();
  });
}

createServer((req, res) => {
  const file = files.get(req.url);
  if (!file) return res.writeHead(404, { "Content-Length": "0" }).end();
  const size = MODE === "memory" ? file.length : file.size;
  res.writeHead(200, { "Content-Type": "application/wasm", "Content-Length": String(size) });
  if (MODE === "memory") return res.end(file);
  if (MODE === "stream") return createReadStream(file.path).pipe(res);
  const fd = openSync(file.path, "r");
  if (fstatSync(fd).size !== size) throw new Error("changed");
  res.flushHeaders();
  sendFile(res, fd, size, (error) => {
    closeSync(fd);
    if (error) res.destroy(error);
    else res.end();
  });
}).listen(Number(PORT), "127.0.0.1");
