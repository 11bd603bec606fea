/**
 * Hand-encoded WebAssembly modules for fixtures: a valid module (one memory, one passive data
 * segment) of about the requested size, with content that depends on `seed`, so different
 * fixtures never share bytes by accident.
 */
export function leb128(value: number): number[] {
  const out: number[] = [];
  do {
    let byte = value & 0x7f;
    value >>>= 7;
    if (value !== 0) byte |= 0x80;
    out.push(byte);
  } while (value !== 0);
  return out;
}

function section(id: number, content: number[] | Uint8Array): Uint8Array {
  const size = leb128(content.length);
  const out = new Uint8Array(1 + size.length + content.length);
  out[0] = id;
  out.set(size, 1);
  out.set(content, 1 + size.length);
  return out;
}

export function wasmModule(payloadBytes: number, seed = 1): Uint8Array<ArrayBuffer> {
  const payload = new Uint8Array(payloadBytes);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < payload.length; i++) {
    // xorshift: cheap, deterministic and poorly compressible, like real code
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    payload[i] = x & 0xff;
  }
  const header = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const memory = section(5, [1, 0x00, 1]); // one memory, min 1 page
  const dataCount = section(12, [1]);
  const segmentHeader = [1, 0x01, ...leb128(payload.length)]; // one passive segment
  const dataContent = new Uint8Array(segmentHeader.length + payload.length);
  dataContent.set(segmentHeader);
  dataContent.set(payload, segmentHeader.length);
  const data = section(11, dataContent);
  const parts = [new Uint8Array(header), memory, dataCount, data];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let offset = 0;
  for (const p of parts) {
    out.set(p, offset);
    offset += p.length;
  }
  if (!WebAssembly.validate(out)) throw new Error("fixture module does not validate");
  return out;
}
