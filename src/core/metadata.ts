/**
 * Per-version metadata, shared with the uploader. `metadata.txt` keeps the reference server's
 * five lines first and in their exact form (people and scripts read them); our facts follow.
 */
export interface PluginMetadata {
  readonly name: string;
  readonly version: string;
  /** Bytes of plugin.wasm (uncompressed). */
  readonly size: number;
  readonly md5: string;
  /** The value to put in WasmPlugin.spec.sha256. */
  readonly sha256: string;
  /** ISO 8601 instants. */
  readonly created: string;
  readonly lastModified: string;
  /** Where the bytes came from, e.g. `oci://host/plugins/key-auth:2.0.0` or `file:...`. */
  readonly source?: string;
  /** The OCI manifest digest the bytes were pulled from. */
  readonly manifestDigest?: string;
  /** Size and MD5 of plugin.wasm.gz as published, so a rerun can tell the variant is intact without reading it. */
  readonly gzipSize?: number;
  readonly gzipMd5?: string;
}

/** `2026-02-03T08:00:00.123456`: Python's isoformat, which the reference writes (no zone, UTC). */
export function referenceTimestamp(iso: string): string {
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : `${date.toISOString().slice(0, 23)}000`;
}

export function renderMetadataText(m: PluginMetadata): string {
  const lines = [
    `Plugin Name: ${m.name}`,
    `Size: ${m.size} bytes`,
    `Last Modified: ${referenceTimestamp(m.lastModified)}`,
    `Created: ${referenceTimestamp(m.created)}`,
    `MD5: ${m.md5}`,
    `SHA256: ${m.sha256}`,
    `Version: ${m.version}`,
  ];
  // One line each, whatever a source claimed: a newline would forge lines of its own.
  const line = (value: string) => value.replace(/[\x00-\x1f\x7f]+/g, " ");
  if (m.source) lines.push(`Source: ${line(m.source)}`);
  if (m.manifestDigest) lines.push(`Manifest Digest: ${line(m.manifestDigest)}`);
  return `${lines.join("\n")}\n`;
}

const HEX = (length: number) => new RegExp(`^[0-9a-f]{${length}}$`);

/** Validates a stored metadata.json; `undefined` when it is not one we can trust. */
export function parseMetadataJson(text: string): PluginMetadata | undefined {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== "object" || value === null) return undefined;
  const m = value as Record<string, unknown>;
  const strings = ["name", "version", "md5", "sha256", "created", "lastModified"] as const;
  if (!strings.every((k) => typeof m[k] === "string")) return undefined;
  if (typeof m.size !== "number" || !Number.isSafeInteger(m.size) || m.size < 0) return undefined;
  if (!HEX(32).test(m.md5 as string) || !HEX(64).test(m.sha256 as string)) return undefined;
  for (const k of ["source", "manifestDigest", "gzipMd5"] as const) {
    if (m[k] !== undefined && typeof m[k] !== "string") return undefined;
  }
  if (m.gzipSize !== undefined && (typeof m.gzipSize !== "number" || !Number.isSafeInteger(m.gzipSize))) return undefined;
  return value as PluginMetadata;
}

/** Digests of a module fed a chunk at a time (Node hashes as it streams; Web Crypto has no streaming digest). */
export interface Hasher {
  update(chunk: Uint8Array): void;
  digest(): Promise<{ readonly md5: string; readonly sha256: string; readonly size: number }>;
}
export type HasherFactory = () => Hasher;

export const toHex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/**
 * Web Crypto: SHA-256 works everywhere; MD5 is a workerd extension. The chunks are joined
 * first, since Web Crypto cannot digest a stream; the Node entry passes a streaming hasher.
 */
export const webHasher: HasherFactory = () => {
  const chunks: Uint8Array[] = [];
  let size = 0;
  return {
    update(chunk) {
      chunks.push(chunk);
      size += chunk.length;
    },
    async digest() {
      const all = new Uint8Array(size);
      let at = 0;
      for (const chunk of chunks) {
        all.set(chunk, at);
        at += chunk.length;
      }
      const hex = async (algorithm: string) => toHex(new Uint8Array(await crypto.subtle.digest(algorithm, all)));
      const [md5, sha256] = await Promise.all([hex("MD5"), hex("SHA-256")]);
      return { md5, sha256, size };
    },
  };
};
