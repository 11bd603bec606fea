import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { expect } from "vitest";

export interface RawResponse {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
}

/**
 * A plain HTTP/1.1 request over a real connection that hands back the bytes as sent: no
 * decompression, no redirect following, and no implicit Accept-Encoding (unlike fetch).
 */
export function request(
  url: string,
  options: { method?: string; headers?: Record<string, string>; abortAfterBytes?: number } = {},
): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(url, { method: options.method ?? "GET", headers: options.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      let received = 0;
      res.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        received += chunk.length;
        if (options.abortAfterBytes !== undefined && received >= options.abortAfterBytes) {
          req.destroy();
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) });
        }
      });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on("error", reject);
    });
    req.on("error", (error) => (options.abortAfterBytes !== undefined ? undefined : reject(error)));
    req.setTimeout(15_000, () => req.destroy(new Error(`timeout: ${url}`)));
    req.end();
  });
}

/** The embedded example store answers: health, and hello-world as WebAssembly. */
export async function expectServesExamples(base: string): Promise<void> {
  expect((await request(`${base}/healthz`)).status).toBe(200);
  const plugin = await request(`${base}/plugins/hello-world/1.0.0/plugin.wasm`);
  expect(plugin.status).toBe(200);
  expect(plugin.body.subarray(0, 4)).toEqual(Buffer.from([0, 0x61, 0x73, 0x6d]));
}
