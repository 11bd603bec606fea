import { createServer as createHttpServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { createServer, type AddressInfo } from "node:net";

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

/** Passes a request on to `host` as it came, optionally with another Authorization header. */
export function forward(host: string, req: IncomingMessage, res: ServerResponse, authorization?: string): void {
  const upstream = httpRequest(
    `http://${host}${req.url}`,
    { method: req.method, headers: { ...req.headers, host, ...(authorization ? { authorization } : {}) } },
    (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    },
  );
  upstream.on("error", () => res.writeHead(502).end());
  req.pipe(upstream);
}
