import { HttpError } from "../core/errors.ts";
import { prefersJson } from "../core/negotiate.ts";
import type { Reply } from "./reply.ts";

/** Errors worth a log line: the server's own (5xx) and anything untyped. Client mistakes are not. */
export const isServerError = (error: unknown): boolean => !(error instanceof HttpError) || error.status >= 500;

/**
 * The one rendering of an error, for every route and runtime: a typed HttpError with its status,
 * message and headers; anything else a 500 that says nothing of its cause. Plain headers and a
 * bytes body, so the Node entry writes it in one call (scanners make errors the commonest answer).
 */
export function errorReply(error: unknown, accept: string | undefined, id: string): Reply {
  const known = error instanceof HttpError ? error : undefined;
  const status = known?.status ?? 500;
  const message = known?.publicMessage ?? "internal error";
  const json = prefersJson(accept);
  const body = json ? JSON.stringify({ error: { status, message, requestId: id, ...known?.details } }) : `${message}\nrequest id: ${id}\n`;
  return {
    status,
    headers: {
      "Content-Type": json ? "application/json" : "text/plain; charset=utf-8",
      "Cache-Control": "no-store",
      "X-Content-Type-Options": "nosniff",
      "X-Request-Id": id,
      ...known?.headers,
    },
    body: new TextEncoder().encode(body),
  };
}
