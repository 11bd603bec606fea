/**
 * A small synchronous ustar writer for the tests' own archives (layers, hand-made and hostile
 * bundles, whose entries are in memory). The uploader itself writes bundles with tar-stream.
 */
const BLOCK = 512;

/** Writes a ustar archive of regular files (names up to 255 bytes, split into prefix/name). */
export function writeTar(files: Iterable<readonly [string, Uint8Array]>, mtime = 0): Uint8Array {
  const chunks: Uint8Array[] = [];
  const encoder = new TextEncoder();
  for (const [name, data] of files) {
    const header = new Uint8Array(BLOCK);
    const encoded = encoder.encode(name);
    let namePart = encoded;
    let prefixPart = new Uint8Array(0);
    if (encoded.length > 100) {
      const cut = name.lastIndexOf("/", 155);
      if (cut <= 0 || encoder.encode(name.slice(cut + 1)).length > 100) {
        throw new Error(`name too long for a tar archive: ${name}`);
      }
      prefixPart = encoder.encode(name.slice(0, cut));
      namePart = encoder.encode(name.slice(cut + 1));
    }
    const put = (text: string, offset: number) => header.set(encoder.encode(text), offset);
    header.set(namePart, 0);
    put("0000644\0", 100);
    put("0000000\0", 108);
    put("0000000\0", 116);
    put(`${data.length.toString(8).padStart(11, "0")}\0`, 124);
    put(`${mtime.toString(8).padStart(11, "0")}\0`, 136);
    put("        ", 148);
    header[156] = "0".charCodeAt(0);
    put("ustar\0", 257);
    put("00", 263);
    header.set(prefixPart, 345);
    let sum = 0;
    for (const b of header) sum += b;
    put(`${sum.toString(8).padStart(6, "0")}\0 `, 148);
    chunks.push(header, data);
    const pad = (BLOCK - (data.length % BLOCK)) % BLOCK;
    if (pad) chunks.push(new Uint8Array(pad));
  }
  chunks.push(new Uint8Array(BLOCK * 2));
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
