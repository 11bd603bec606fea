import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { connect, createServer, type AddressInfo } from "node:net";

/** Loopback plumbing shared by the test services. */

/** A port nothing listens on right now (for daemons that take a port number, not a socket). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** An HTTP server on 127.0.0.1 and a free port; returns `host:port`. */
export async function listenLoopback(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; host: string }> {
  const server = createHttpServer(handler);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return { server, host: `127.0.0.1:${(server.address() as AddressInfo).port}` };
}

/**
 * Passes a request on to `host` as it came, optionally with another Authorization header. The
 * Host header becomes `host` unless `keepHost` (S3 signatures cover the Host the client used).
 */
export function forward(host: string, req: IncomingMessage, res: ServerResponse, authorization?: string, keepHost = false): void {
  const upstream = httpRequest(
    `http://${host}${req.url}`,
    { method: req.method, headers: { ...req.headers, ...(keepHost ? {} : { host }), ...(authorization ? { authorization } : {}) } },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  upstream.on("error", () => res.writeHead(502).end());
  req.pipe(upstream);
}

/**
 * A TCP proxy in front of a real service, to play its failures from the network's point of view:
 * "frozen" accepts connections and forwards nothing (a process under SIGSTOP looks like this),
 * "down" refuses connections (stopped), "up" forwards again. Counts the HTTP requests that pass.
 */
export interface FaultProxy {
  readonly endpoint: string;
  /** Request lines seen, as "GET /bucket/key". */
  readonly requests: string[];
  freeze(): void;
  /** From now on, `bytes` more bytes of answers pass, then nothing: a store stalled mid-body. */
  stallAfter(bytes: number): void;
  down(): Promise<void>;
  up(): Promise<void>;
  close(): Promise<void>;
}

export async function faultProxy(target: string): Promise<FaultProxy> {
  const { hostname, port: targetPort } = new URL(target);
  const requests: string[] = [];
  let frozen = false;
  let passing = Infinity; // answer bytes still let through
  const sockets = new Set<import("node:net").Socket>();
  const held: (() => void)[] = [];
  const listener = (client: import("node:net").Socket) => {
    sockets.add(client);
    client.on("close", () => sockets.delete(client));
    client.on("error", () => {});
    const start = () => {
      const upstream = connect(Number(targetPort), hostname);
      sockets.add(upstream);
      upstream.on("close", () => sockets.delete(upstream));
      upstream.on("error", () => client.destroy());
      client.on("error", () => upstream.destroy());
      client.on("data", (chunk: Buffer) => {
        for (const m of chunk.toString("latin1").matchAll(/(?:^|\r\n)(GET|HEAD|PUT|DELETE|POST) (\S+) HTTP\/1\.1\r\n/g)) requests.push(`${m[1]} ${m[2]}`);
        if (frozen) return; // swallowed: the service never sees it, and never answers
        upstream.write(chunk);
      });
      upstream.on("data", (chunk: Buffer) => {
        if (frozen) return;
        const part = passing >= chunk.length ? chunk : chunk.subarray(0, passing);
        passing -= part.length;
        if (part.length > 0) client.write(part);
      });
      client.on("end", () => upstream.end());
      upstream.on("end", () => client.end());
    };
    if (frozen) held.push(start);
    else start();
  };
  let server = createServer(listener);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as AddressInfo).port;
  const closeAll = async () => {
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    freeze() {
      frozen = true;
    },
    stallAfter(bytes) {
      passing = bytes;
    },
    async down() {
      frozen = false;
      await closeAll();
    },
    async up() {
      frozen = false;
      passing = Infinity;
      for (const start of held.splice(0)) start();
      if (!server.listening) {
        server = createServer(listener);
        await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
      }
    },
    close: closeAll,
  };
}
