import { ArtifactError } from "../errors.ts";

/**
 * A small tar reader and writer (POSIX ustar, with pax and GNU long names on read): enough for
 * plugin layers and offline bundles, with every size bounded before anything is allocated.
 */
export interface TarEntry {
  readonly name: string;
  readonly type: "file" | "directory" | "other";
  readonly data: Uint8Array;
}

const BLOCK = 512;
const decoder = new TextDecoder();

function field(block: Uint8Array, offset: number, length: number): string {
  const bytes = block.subarray(offset, offset + length);
  const end = bytes.indexOf(0);
  return decoder.decode(end >= 0 ? bytes.subarray(0, end) : bytes);
}

function octal(block: Uint8Array, offset: number, length: number): number {
  const text = field(block, offset, length).trim();
  if (text === "") return 0;
  if (!/^[0-7]+$/.test(text)) throw new ArtifactError(`tar header has an invalid number "${text}"`);
  return parseInt(text, 8);
}

function paxPath(data: Uint8Array): string | undefined {
  // records: "<length> <key>=<value>\n"
  for (const record of decoder.decode(data).split("\n")) {
    const m = /^\d+ path=(.*)$/.exec(record);
    if (m) return m[1];
  }
  return undefined;
}

export function* readTar(archive: Uint8Array): Generator<TarEntry> {
  let offset = 0;
  let longName: string | undefined;
  while (offset + BLOCK <= archive.length) {
    const header = archive.subarray(offset, offset + BLOCK);
    if (header.every((b) => b === 0)) return; // end-of-archive marker
    const stored = octal(header, 148, 8);
    let sum = 0;
    for (let i = 0; i < BLOCK; i++) sum += i >= 148 && i < 156 ? 32 : header[i]!;
    if (sum !== stored) throw new ArtifactError("tar header checksum does not match: the layer is not a valid tar");
    const size = octal(header, 124, 12);
    const flag = String.fromCharCode(header[156]!);
    const start = offset + BLOCK;
    if (start + size > archive.length) throw new ArtifactError("tar entry runs past the end of the archive");
    const data = archive.subarray(start, start + size);
    offset = start + Math.ceil(size / BLOCK) * BLOCK;
    if (flag === "L") {
      longName = field(data, 0, data.length);
      continue;
    }
    if (flag === "x") {
      longName = paxPath(data) ?? longName;
      continue;
    }
    if (flag === "g") continue;
    const prefix = field(header, 345, 155);
    const name = longName ?? (prefix ? `${prefix}/${field(header, 0, 100)}` : field(header, 0, 100));
    longName = undefined;
    const type = flag === "0" || flag === "\0" || flag === "7" ? "file" : flag === "5" ? "directory" : "other";
    yield { name: name.replace(/^\.\//, ""), type, data };
  }
}

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
        throw new ArtifactError(`name too long for a tar archive: ${name}`);
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
