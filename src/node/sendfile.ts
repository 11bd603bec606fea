import type { ServerResponse } from "node:http";
import { createRequire } from "node:module";
import type { Socket } from "node:net";
import { fileURLToPath } from "node:url";
import type { FileRange } from "../storage/store.ts";

/**
 * sendfile(2) on the response's socket (the addon: src/node/native/sendfile.c, built into
 * dist/sendfile.node): the kernel sends plugin files from the page cache, as nginx does, instead
 * of the server reading them into buffers and copying those into the socket: on a burst of 20
 * identity clients x 43 plugins, a third of the CPU of writing them from memory and a ninth of piping
 * read streams (the identity ceiling, `BENCH_ONLY=ceiling`; figures in the README).
 */
export type SendfileMode = "auto" | "on" | "off";

interface Addon {
  open(socketFd: number): object;
  send(sender: object, fileFd: number, offset: number, count: number): number;
  watch(sender: object, callback: (status: number) => void): void;
  pause(sender: object): void;
  cork(sender: object, on: boolean): void;
  close(sender: object): void;
}

/**
 * Sends a range of a file after the headers `res` has been given; false when this socket cannot
 * (TLS, no descriptor), and the caller sends the bytes itself. `done` is called once: without an
 * error when every byte left, with one when the connection must be cut.
 */
export type KernelSend = (res: ServerResponse, file: FileRange, sent: (bytes: number) => void, done: (error?: Error) => void) => boolean;

export interface Sendfile {
  readonly send?: KernelSend;
  /** For the start line. */
  readonly summary: string;
}

const EAGAIN = -11; // Linux's
/** At most this much per connection per event-loop turn (nginx's sendfile_max_chunk): one fast client cannot hold the loop. */
const PER_TURN = 2 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** The addon as the mode asks: `on` fails without it, `auto` says why it runs without. */
export function loadSendfile(mode: SendfileMode, candidates = addonPaths()): Sendfile {
  if (mode === "off") return { summary: "sendfile: off (SENDFILE=off)" };
  let reason = `not on ${process.platform}`;
  if (process.platform === "linux") {
    reason = "dist/sendfile.node was not built (no C compiler at build time)";
    const require = createRequire(import.meta.url);
    for (const file of candidates) {
      try {
        const addon = require(file) as Partial<Addon>;
        if ([addon.open, addon.send, addon.watch, addon.pause, addon.cork, addon.close].some((f) => typeof f !== "function")) throw new Error("not the sendfile addon");
        return { send: kernelSend(addon as Addon), summary: "sendfile: on" };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "MODULE_NOT_FOUND") reason = `${file} did not load: ${(error as Error).message}`;
      }
    }
  }
  if (mode === "on") throw new Error(`SENDFILE=on, but sendfile(2) is unavailable: ${reason}`);
  return { summary: `sendfile: off (${reason}; file bytes are copied)` };
}

/** dist/sendfile.node beside the bundle (dist/node.js or a chunk of it), or the build's from the sources (tests). */
function addonPaths(): string[] {
  return ["./sendfile.node", "../sendfile.node", "../../dist/sendfile.node"].map((p) => fileURLToPath(new URL(p, import.meta.url)));
}

function kernelSend(addon: Addon): KernelSend {
  return (res, file, sent, done) => {
    const socket = res.socket as (Socket & { _handle?: { fd?: number }; encrypted?: boolean }) | null;
    const fd = socket?._handle?.fd;
    if (!socket || socket.encrypted || typeof fd !== "number" || fd < 0) return false;
    let sender: object;
    try {
      sender = addon.open(fd);
    } catch {
      return false; // no descriptor to spare: the bytes are copied
    }
    // Corked (nginx's tcp_nopush) from the headers to the last byte: full segments only, the
    // headers in the first; uncorked before the sender closes, so the tail leaves at once.
    addon.cork(sender, true);
    res.flushHeaders();
    // Node's own queue (the headers) goes first: both write to the one descriptor, in order.
    socket.write(EMPTY, (error) => {
      if (error || res.destroyed) {
        addon.close(sender);
        return done(error ?? new Error("connection closed"));
      }
      let offset = file.start;
      const end = file.start + file.length;
      // A file still being written is sent as far as it is verified to be (`arriving`), then waited for.
      let available = file.arriving ? offset : end;
      let finished = false;
      const finish = (failure?: Error) => {
        if (finished) return;
        finished = true;
        res.off("close", onClose);
        addon.cork(sender, false);
        addon.close(sender); // before anything else: the duplicate descriptor keeps the connection open
        done(failure);
      };
      const onClose = () => finish(new Error("connection closed"));
      res.once("close", onClose);
      let watching = false;
      const onWritable = (status: number) => (status < 0 ? finish(new Error(`socket failed (${status})`)) : pump());
      // Called back while the socket can take more, from its first socket-full (or turn) to the end.
      const watch = () => {
        if (watching) return;
        watching = true;
        addon.watch(sender, onWritable);
      };
      const waitForFile = () => {
        if (watching) addon.pause(sender); // a writable socket would call back on every turn meanwhile
        watching = false;
        file.arriving!(offset).then(
          (now) => {
            available = now;
            pump();
          },
          (failure: Error) => finish(failure),
        );
      };
      const pump = () => {
        if (finished) return;
        for (let turn = 0; turn < PER_TURN; ) {
          if (offset === end) return finish();
          if (offset === available) return waitForFile();
          const n = addon.send(sender, file.fd, offset, Math.min(available - offset, PER_TURN - turn));
          if (n > 0) {
            offset += n;
            turn += n;
            sent(n);
          } else if (n === EAGAIN) {
            return watch();
          } else {
            return finish(new Error(n === 0 ? "file shrank while being sent" : `sendfile failed (errno ${-n})`));
          }
        }
        watch(); // its turn is over: the watcher calls back on the loop's next turn, the socket being writable
      };
      pump();
    });
    return true;
  };
}
