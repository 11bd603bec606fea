import { ArtifactError } from "./errors.ts";

/** The gateway reads at most 256 MiB; refuse anything it could not load. */
export const MAX_WASM_BYTES = 256 * 1024 * 1024;

/** Modules already validated: a pulled module is checked once, not again when it is published. */
const valid = new WeakSet<Uint8Array>();

/** Refuses what is not a loadable WebAssembly module, with the reason. */
export function validateWasm(bytes: Uint8Array, what: string): void {
  if (valid.has(bytes)) return;
  if (bytes.length > MAX_WASM_BYTES) {
    throw new ArtifactError(`${what} is ${bytes.length} bytes; the gateway loads at most ${MAX_WASM_BYTES}`);
  }
  if (bytes.length < 8 || bytes[0] !== 0 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    throw new ArtifactError(`${what} does not start with the WebAssembly magic \\0asm`);
  }
  if (bytes[4] !== 1 || bytes[5] !== 0 || bytes[6] !== 0 || bytes[7] !== 0) {
    throw new ArtifactError(`${what} is not a WebAssembly version 1 module`);
  }
  if (!WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)) {
    throw new ArtifactError(`${what} is not a valid WebAssembly module (WebAssembly.validate failed)`);
  }
  valid.add(bytes);
}
