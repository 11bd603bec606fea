import type { ServerResponse } from "node:http";
import { RESPONSE_ALREADY_SENT } from "@hono/node-server/utils/response";
import { isReader, toResponse, type Reply, type Sender } from "../http/reply.ts";
import type { ChunkReader } from "../storage/store.ts";

/**
 * Sends plugin files the cheap way on Node:
 * - bytes in memory (the cache's shared buffer) go to the socket in one write, without a copy,
 *   however many connections send the same buffer;
 * - a chunk reader (a file, the disk cache, an S3 body) is pulled one chunk per drained socket, so
 *   a slow client holds at most one chunk; the chunk size shrinks as more streams run, keeping
 *   the bytes all streams hold within `streamBudget`.
 */
export interface NodeSenderOptions {
  /** Bytes all streaming responses may hold at once in user space. */
  readonly streamBudget: number;
  readonly maxChunk?: number;
  readonly minChunk?: number;
}

export function nodeSender(options: NodeSenderOptions): Sender & { readonly streaming: () => number } {
  const maxChunk = options.maxChunk ?? 256 * 1024;
  const minChunk = options.minChunk ?? 16 * 1024;
  let active = 0;
  const chunkSize = () => Math.max(minChunk, Math.min(maxChunk, Math.floor(options.streamBudget / Math.max(1, active))));

  async function pump(reader: ChunkReader, res: ServerResponse): Promise<void> {
    active++;
    try {
      for (;;) {
        if (res.destroyed) return;
        const chunk = await reader.read(chunkSize());
        if (!chunk) {
          res.end();
          return;
        }
        if (!res.write(chunk)) await drained(res);
      }
    } catch {
      // The store failed or stalled mid-body: cut the connection, so the client sees a short
      // transfer (Content-Length was sent) and retries, instead of waiting forever.
      res.destroy();
    } finally {
      active--;
      reader.close();
    }
  }

  const send = (reply: Reply, env: unknown): Response => {
    const res = (env as { outgoing?: ServerResponse } | undefined)?.outgoing;
    if (!res) return toResponse(reply, env);
    const { status, headers, body, release } = reply;
    if (release) res.once("close", release);
    if (isReader(body)) {
      res.writeHead(status, headers);
      void pump(body, res);
      return RESPONSE_ALREADY_SENT;
    }
    // Bytes and null: the adapter writes a plain-headers Response with one end() call.
    return new Response(body as Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null, { status, headers });
  };
  return Object.assign(send, { streaming: () => active });
}

/** Resolves when the socket takes more, or the response is gone. */
function drained(res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      res.off("drain", done).off("close", done);
      resolve();
    };
    res.on("drain", done).on("close", done);
  });
}
