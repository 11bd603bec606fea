import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressList } from "../access/addresses.ts";
import { forwardedClient } from "../access/addresses.ts";
import type { FileHandler, HealthHandler } from "../app.ts";
import { requestId } from "../core/request-id.ts";
import { isDownload, routeKind } from "../core/routes.ts";
import type { ErrorLog } from "./error-log.ts";
import { track, traces, type Exchange, type RequestTrace } from "./exchange.ts";
import type { NodeSender } from "./send.ts";

/** Segments that start with a letter, digit or `_` hold no dot segment and nothing a URL parser would change. */
const PLAIN_PLUGIN_PATH = /^\/plugins(?:\/[A-Za-z0-9_][A-Za-z0-9._+-]*)+$/;

export interface ListenerParts {
  readonly trustedProxies: AddressList | undefined;
  /** Plugin files and probes, answered straight on the socket. */
  readonly serveFile: FileHandler;
  readonly probe: HealthHandler;
  /** Everything else: the Hono app (the catalog, the API, errors). */
  readonly fetch: (request: Request) => Response | Promise<Response>;
  readonly send: NodeSender;
  /** Once per request, when the connection is done with it: the access log and the metrics. */
  readonly finished: (exchange: Exchange) => void;
  readonly started: () => void;
  readonly logError: ErrorLog;
}

/** The request listener of the Node server: a trace per request, then the fast path or the app. */
export function requestListener(parts: ListenerParts): (req: IncomingMessage, res: ServerResponse) => void {
  const { trustedProxies: trusted, serveFile, probe, send, finished, logError } = parts;
  // The Hono adapter works with web Requests and Responses, and so loads undici: only for the
  // first request that needs it (the catalog, the API, a 404); gateways and probes never do.
  let adapter: Promise<(req: IncomingMessage, res: ServerResponse) => Promise<void>> | undefined;
  const viaApp = (req: IncomingMessage, res: ServerResponse) =>
    (adapter ??= import("@hono/node-server").then(({ getRequestListener }) => getRequestListener(parts.fetch))).then(
      (listener) => listener(req, res),
      (error: unknown) => {
        logError(error);
        res.destroy();
      },
    );
  return (req, res) => {
    const peer = req.socket.remoteAddress;
    // Headers a client could forge are read only from a trusted proxy (and not at all without one).
    const fromProxy = trusted?.contains(peer) ?? false;
    const header = (name: string) => {
      const value = req.headers[name];
      return Array.isArray(value) ? value.join(",") : value;
    };
    const trace: RequestTrace = {
      id: requestId(fromProxy ? header("x-request-id") : undefined),
      client: fromProxy ? forwardedClient(peer, header("x-forwarded-for"), trusted!) : peer,
      storeSeconds: 0,
      storeCalls: 0,
      cache: undefined,
    };
    parts.started();
    const target = req.url ?? "/";
    const method = req.method === "GET" || req.method === "HEAD" ? req.method : undefined;
    // Plugin files (every gateway download, metadata.txt, revalidations) skip the Hono adapter:
    // the same handler, called with the Node request as it is and answered straight on the socket.
    const fast = method !== undefined && target.startsWith("/plugins/");
    // As the app sees the path (dot segments resolved); a plain one, the usual, needs no URL parser.
    const pathname = fast ? (PLAIN_PLUGIN_PATH.test(target) ? target : new URL(target, "http://localhost").pathname) : target.split("?", 1)[0]!;
    const route = routeKind(pathname);
    // Probes too: the kubelet must not be what loads the adapter.
    const direct = fast ? (isDownload(route) ? serveFile : undefined) : route === "health" ? probe : undefined;
    if (method && direct) {
      // The reply says what is sent and the sender how much left: no watcher around the response.
      const started = performance.now();
      return void traces.run(trace, () =>
        direct({ method, pathname, header, client: trace.client, id: trace.id })
          .then((reply) =>
            send(reply, res, (bytes, byKernel) =>
              finished({
                trace,
                method,
                path: target,
                route,
                status: reply.status,
                encoding: reply.headers["Content-Encoding"] ?? "identity",
                bytes,
                byKernel,
                seconds: (performance.now() - started) / 1000,
                userAgent: req.headers["user-agent"] ?? "-",
              }),
            ),
          )
          .catch((error: unknown) => {
            logError(error); // a reply Node refused to write (never expected): drop the connection, not the process
            res.destroy();
          }),
      );
    }
    track(req, res, trace, route, finished);
    void traces.run(trace, () => viaApp(req, res));
  };
}
