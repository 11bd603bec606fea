import type { IncomingMessage } from "node:http";
import { listenLoopback } from "./net.ts";

/**
 * A stand-in for Cloudflare's API v4 purge endpoint, on the wire as Cloudflare answers:
 * POST /client/v4/zones/<zone id>/purge_cache with a Bearer token and a JSON body of tags
 * (at most 100); the envelope {success, errors, messages, result}; 403 code 10000 for a bad
 * token; 429 code 971 with Retry-After when rate-limited.
 */
export interface PurgeApi {
  readonly url: string;
  /** Tags of every accepted request, one array per request. */
  readonly purged: string[][];
  /** Requests answered 429 before the next one is accepted. */
  rateLimit(times: number): void;
  close(): Promise<void>;
}

const envelope = (success: boolean, errors: { code: number; message: string }[], result: unknown = null) => JSON.stringify({ success, errors, messages: [], result });

async function body(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}

export async function startPurgeApi(zoneId: string, token: string): Promise<PurgeApi> {
  const purged: string[][] = [];
  let limited = 0;
  const { server, host } = await listenLoopback((req, res) => {
    void body(req).then((text) => {
      const json = { "Content-Type": "application/json" };
      const match = /^\/client\/v4\/zones\/([0-9a-f]{32})\/purge_cache$/.exec(req.url ?? "");
      if (!match || req.method !== "POST") return res.writeHead(404, json).end(envelope(false, [{ code: 7003, message: "Could not route to the requested path" }]));
      if (req.headers.authorization !== `Bearer ${token}`) return res.writeHead(403, json).end(envelope(false, [{ code: 10000, message: "Authentication error" }]));
      if (match[1] !== zoneId) return res.writeHead(403, json).end(envelope(false, [{ code: 10000, message: "Authentication error" }]));
      if (limited > 0) {
        limited--;
        return res.writeHead(429, { ...json, "Retry-After": "1" }).end(envelope(false, [{ code: 971, message: "Please wait and consider throttling your request speed" }]));
      }
      let tags: unknown;
      try {
        tags = (JSON.parse(text) as { tags?: unknown }).tags;
      } catch {
        return res.writeHead(400, json).end(envelope(false, [{ code: 1012, message: "Request must contain one of \"purge_everything\", \"files\", \"tags\", \"hosts\" or \"prefixes\"" }]));
      }
      if (!Array.isArray(tags) || tags.length === 0 || tags.length > 100 || !tags.every((t) => typeof t === "string")) {
        return res.writeHead(400, json).end(envelope(false, [{ code: 1016, message: "Request must contain at most 100 tags" }]));
      }
      purged.push(tags as string[]);
      res.writeHead(200, json).end(envelope(true, [], { id: zoneId }));
    });
  });
  return {
    url: `http://${host}/client/v4`,
    purged,
    rateLimit: (times) => void (limited = times),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
