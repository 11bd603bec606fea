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
  if (m.source) lines.push(`Source: ${m.source}`);
  if (m.manifestDigest) lines.push(`Manifest Digest: ${m.manifestDigest}`);
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
  for (const k of ["source", "manifestDigest"] as const) {
    if (m[k] !== undefined && typeof m[k] !== "string") return undefined;
  }
  return value as PluginMetadata;
}

export type Digest = (algorithm: "MD5" | "SHA-256", data: Uint8Array) => Promise<string>;

/**
 * Web Crypto digests. SHA-256 works everywhere; MD5 is a workerd extension, so the Node entry
 * passes its own `node:crypto` digest instead.
 */
export const webDigest: Digest = async (algorithm, data) =>
  toHex(new Uint8Array(await crypto.subtle.digest(algorithm, data as Uint8Array<ArrayBuffer>)));

export const toHex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Metadata for a version that was stored without any (a hand-made tree): computed from its bytes. */
export async function computeMetadata(
  digest: Digest,
  fields: { name: string; version: string; bytes: Uint8Array; lastModified: Date },
): Promise<PluginMetadata> {
  const [md5, sha256] = await Promise.all([digest("MD5", fields.bytes), digest("SHA-256", fields.bytes)]);
  const time = fields.lastModified.toISOString();
  return {
    name: fields.name,
    version: fields.version,
    size: fields.bytes.byteLength,
    md5,
    sha256,
    created: time,
    lastModified: time,
  };
}
