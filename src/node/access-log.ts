import type { IncomingMessage, ServerResponse } from "node:http";

export type LogFormat = "text" | "json";

/**
 * One line per request on stdout, written when the connection is done with the response, so
 * the duration covers the whole transfer and `bytes` says how much of the body really left.
 */
export function accessLog(format: LogFormat, write: (line: string) => void = batchedStdout()) {
  return (req: IncomingMessage, res: ServerResponse) => {
    const started = process.hrtime.bigint();
    const remote = req.socket.remoteAddress ?? "-";
    // Count body bytes as they are written: the adapter sets Content-Length through writeHead,
    // where getHeader cannot see it, and an aborted transfer sends fewer bytes than declared.
    let bytes = 0;
    const { write: resWrite, end: resEnd } = res;
    const count = (chunk: unknown) => {
      if (typeof chunk === "string") bytes += Buffer.byteLength(chunk);
      else if (chunk instanceof Uint8Array) bytes += chunk.byteLength;
    };
    res.write = function (this: ServerResponse, chunk: unknown, ...rest: unknown[]) {
      count(chunk);
      return (resWrite as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
    } as ServerResponse["write"];
    res.end = function (this: ServerResponse, chunk?: unknown, ...rest: unknown[]) {
      if (typeof chunk !== "function") count(chunk);
      return (resEnd as (...args: unknown[]) => ServerResponse).call(this, chunk, ...rest);
    } as ServerResponse["end"];
    res.once("close", () => {
      const entry = {
        time: new Date().toISOString(),
        remote,
        method: req.method ?? "-",
        path: req.url ?? "-",
        status: res.statusCode,
        bytes,
        durationMs: Number((process.hrtime.bigint() - started) / 1000n) / 1000,
        userAgent: req.headers["user-agent"] ?? "-",
      };
      write(
        format === "json"
          ? `${JSON.stringify(entry)}\n`
          : `${entry.time} ${entry.remote} "${entry.method} ${entry.path}" ${entry.status} ${entry.bytes} ${entry.durationMs}ms "${entry.userAgent}"\n`,
      );
    });
  };
}

/** Joins the lines of one event-loop turn into a single write: one syscall instead of one per request. */
function batchedStdout(): (line: string) => void {
  let pending = "";
  return (line) => {
    if (pending === "") setImmediate(() => {
      process.stdout.write(pending);
      pending = "";
    });
    pending += line;
  };
}
