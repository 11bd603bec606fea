import type { ServerResponse } from "node:http";
import { pipeline, Readable } from "node:stream";
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import { isReader, type Reply } from "../http/reply.ts";
import type { ChunkReader } from "../storage/store.ts";
import type { KernelSend } from "./sendfile.ts";

/**
 * Sends plugin files the cheap way on Node:
 * - bytes in memory (the cache's shared buffer) go to the socket in one write, with no copy per
 *   connection, however many connections send the same buffer;
 * - a file (the file store, a disk copy, a disk copy still arriving) goes to the kernel with
 *   sendfile(2) where it can: no bytes in user space at all;
 * - any other chunk reader (an S3 body not kept on disk, any file without sendfile) is pulled one chunk
 *   per drained socket, so a slow client holds at most one chunk: 64 KiB while `streamBudget` lasts, 16 KiB beyond.
 */
export interface NodeSenderOptions {
  /** Bytes all streaming responses may hold at once in user space. */
  readonly streamBudget: number;
  readonly sendfile?: KernelSend | undefined;
  readonly maxChunk?: number;
  readonly minChunk?: number;
}

interface Sent {
  bytes: number;
  byKernel: number;
}

/** Chunks of a reader of views: large, as they are views of memory held anyway. */
const VIEW_CHUNK = 4 * 1024 * 1024;

/** Writes a reply to a Node response; `done` learns, once the connection is done with it, how many body bytes left, and how many of them the kernel sent from a file. */
export type NodeSender = (reply: Reply, res: ServerResponse, done?: (bytes: number, byKernel: number) => void) => void;

export function nodeSender(options: NodeSenderOptions): NodeSender {
  const maxChunk = options.maxChunk ?? 64 * 1024;
  const minChunk = options.minChunk ?? 16 * 1024;
  /** Bytes of send buffers downloads hold now. */
  let holding = 0;
  // Two sizes only, so buffers go back to a free list and serve the next download: no garbage
  // per download, and what the free lists keep stays within the budget. Large buffers while the
  // budget lasts, small ones beyond it.
  const chunkSize = () => (holding + maxChunk <= options.streamBudget ? maxChunk : minChunk);
  const free = new Map<number, Buffer[]>([[maxChunk, []], [minChunk, []]]);
  let pooled = 0;
  const take = (size: number) => {
    const buffer = free.get(size)!.pop();
    if (buffer) pooled -= size;
    return buffer ?? Buffer.allocUnsafeSlow(size);
  };
  const give = (buffer: Buffer) => {
    if (pooled + buffer.length > options.streamBudget) return;
    free.get(buffer.length)!.push(buffer);
    pooled += buffer.length;
  };

  /** Hands the rest of `reader` to the kernel, if it is a file now and the socket can; true when it did. */
  function handedToKernel(reader: ChunkReader, res: ServerResponse, sent: Sent): boolean {
    const file = options.sendfile && reader.file;
    if (!file || file.length === 0) return false; // nothing left: the next read ends it
    const strict = res.strictContentLength;
    res.strictContentLength = false; // the bytes the kernel sends are not counted by the response
    const handed = options.sendfile!(res, file, (bytes) => {
      sent.bytes += bytes;
      sent.byKernel += bytes;
    }, (error) => {
      reader.close();
      if (error) res.destroy(); // the client sees a short transfer (Content-Length was sent) and retries
      else res.end();
    });
    if (!handed) res.strictContentLength = strict;
    return handed;
  }

  async function pump(reader: ChunkReader, res: ServerResponse, sent: Sent): Promise<void> {
    if (handedToKernel(reader, res, sent)) return; // a file: no buffer at all
    // One buffer per download, reused for every chunk once the socket has taken the previous one:
    // no garbage per chunk, and a slow client holds this buffer and nothing more. A reader of
    // views (a cached buffer still arriving) needs none: its chunks cost nothing to hold.
    const size = reader.views ? VIEW_CHUNK : chunkSize();
    const buffer = reader.views ? undefined : take(size);
    if (buffer) holding += size;
    let reusable = true;
    try {
      for (;;) {
        if (res.destroyed) return;
        const chunk = await reader.read(size, buffer);
        if (!chunk) {
          res.end();
          return;
        }
        if (!(await written(res, chunk))) {
          reusable = false; // the socket may still hold it
          return;
        }
        sent.bytes += chunk.length;
      }
    } catch {
      reusable = false;
      // The store failed or stalled mid-body: cut the connection, so the client sees a short
      // transfer (Content-Length was sent) and retries, instead of waiting forever.
      res.destroy();
    } finally {
      reader.close();
      if (buffer) {
        holding -= size;
        if (reusable) give(buffer);
      }
    }
  }

  return (reply, res, done) => {
    const { status, headers, body, release } = reply;
    const sent: Sent = { bytes: 0, byKernel: 0 };
    if (release || done) {
      // Once the socket is done with the bytes, not before.
      res.on("close", () => {
        release?.();
        // In-memory bodies leave in one write: all of it once the response finished, else none is known to.
        done?.(body instanceof Uint8Array ? (res.writableFinished ? body.byteLength : 0) : sent.bytes, sent.byKernel);
      });
    }
    if (isReader(body)) {
      // A reader that sends more than Content-Length must fail the response, never desync the connection.
      res.strictContentLength = true;
      res.writeHead(status, headers);
      void pump(body, res, sent);
    } else if (body instanceof ReadableStream) {
      res.writeHead(status, headers);
      // A body failing mid-way cuts the connection: the client sees a short transfer and retries.
      const counted = Readable.fromWeb(body as NodeReadableStream<Uint8Array>).on("data", (chunk: Uint8Array) => void (sent.bytes += chunk.length));
      pipeline(counted, res, (error) => error && res.destroy());
    } else if (body && headers["Content-Length"] === undefined && headers["content-length"] === undefined) {
      // Bytes without a length of their own (an error body): given one, as a web Response gets it, not chunked.
      res.writeHead(status, { ...headers, "Content-Length": String(body.byteLength) }).end(body);
    } else {
      // Headers and bytes in one write; HEAD answers keep their Content-Length and send no body.
      res.writeHead(status, headers).end(body ?? undefined);
    }
  };
}

/** Resolves true once the socket has taken `chunk` (its buffer may be reused), false if the response is gone. */
function written(res: ServerResponse, chunk: Uint8Array): Promise<boolean> {
  return new Promise((resolve) => {
    const gone = () => resolve(false);
    res.once("close", gone);
    res.write(chunk, (error) => {
      res.off("close", gone);
      resolve(!error);
    });
  });
}
