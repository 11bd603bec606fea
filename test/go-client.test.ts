import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { BIG, fixture, PLAIN, sha256 } from "./support/fixtures.ts";
import { fileTarget, s3Target, workerdTarget, type Target } from "./support/targets.ts";

/**
 * A Go program using net/http defaults, as the gateway's istio-agent does, downloads plugins
 * through each entry: it must get 200, wasm magic and the stored sha256, through gzip too.
 */

const run = promisify(execFile);
const goClient = inject("goClient");
const s3 = inject("s3");
const data = await fixture();

interface GoResult {
  status: number;
  uncompressed: boolean;
  wasmMagic: boolean;
  sha256: string;
  size: number;
}

async function download(url: string): Promise<GoResult> {
  const { stdout } = await run(goClient!, [url]);
  return JSON.parse(stdout) as GoResult;
}

const starts: [string, (() => Promise<Target>) | null][] = [
  ["node + file", () => fileTarget(data.objects)],
  ["node + s3", s3 ? () => s3Target(s3, data.objects) : null],
  ["workerd + r2", () => workerdTarget(data.objects)],
];

describe.skipIf(!goClient).each(starts)("Go net/http client through %s", (_name, start) => {
  let target: Target;
  beforeAll(async () => {
    if (!start) throw new Error("S3 service missing");
    target = await start();
  });
  afterAll(() => target?.stop());

  test("gets the gzip variant, undoes it, and has the exact wasm", async () => {
    const result = await download(`${target.url}/plugins/hello-world/1.0.0/plugin.wasm`);
    expect(result).toMatchObject({ status: 200, uncompressed: true, wasmMagic: true, sha256: sha256(data.hello) });
  });

  test("a plugin with no gzip variant arrives intact", async () => {
    const result = await download(`${target.url}/plugins/plain/1.0.0/plugin.wasm`);
    expect(result).toMatchObject({ status: 200, wasmMagic: true, sha256: sha256(PLAIN), size: PLAIN.byteLength });
  });

  test("an alias URL (what old Console versions generate) gets the target's bytes", async () => {
    const result = await download(`${target.url}/plugins/big/1.0.0/plugin.wasm`);
    expect(result).toMatchObject({ status: 200, uncompressed: true, wasmMagic: true, sha256: sha256(BIG) });
  });

  test("a missing version is a 4xx the gateway will not retry, and not wasm", async () => {
    const result = await download(`${target.url}/plugins/big/3.0.0/plugin.wasm`);
    expect(result.status).toBe(404);
    expect(result.wasmMagic).toBe(false);
  });
});
