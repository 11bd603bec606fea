import { readerStream, type ChunkReader } from "../storage/store.ts";

/**
 * A response before it becomes one: each runtime sends it the cheapest way it can. The Node
 * entry writes shared bytes straight to the socket and pulls a chunk reader once per drained
 * socket; the worker makes a web Response of it.
 */
export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Uint8Array | ChunkReader | ReadableStream<Uint8Array> | null;
  /** Gives back what the body holds (a pinned buffer, a descriptor) once it is sent or dropped. */
  readonly release?: () => void;
}

export function isReader(body: Reply["body"]): body is ChunkReader {
  return body !== null && !(body instanceof Uint8Array) && !(body instanceof ReadableStream);
}

/** The portable way: a web Response (the Node entry writes plugin files to its socket instead). */
export function toResponse({ status, headers, body, release }: Reply): Response {
  if (isReader(body)) return new Response(readerStream(body), { status, headers });
  release?.(); // bytes and streams need nothing given back once they are in a Response
  return new Response(body as Uint8Array<ArrayBuffer> | ReadableStream<Uint8Array> | null, { status, headers });
}
