import { normalisePrefix } from "./store.ts";

/**
 * Store locations as users write them (`STORE`, the uploader's `--to`), parsed before any
 * backend is built: `file:<dir>`, a plain directory path, or `s3://<bucket>[/<prefix>]`.
 */
export type StoreLocation =
  | { readonly kind: "file"; readonly root: string }
  | { readonly kind: "s3"; readonly bucket: string; readonly prefix: string };

export class LocationError extends Error {}

// S3 bucket naming rules (R2 and MinIO follow them too).
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const PREFIX_SEGMENT = /^[A-Za-z0-9._-]+$/;

export function parseStoreLocation(value: string): StoreLocation {
  const text = value.trim();
  if (text === "") throw new LocationError("is empty; use file:<dir> or s3://<bucket>[/<prefix>]");
  if (text.startsWith("s3://")) {
    const [bucket = "", ...rest] = text.slice("s3://".length).split("/");
    if (!BUCKET.test(bucket) || bucket.includes("..")) {
      throw new LocationError(`bucket "${bucket}" is not a valid bucket name (3-63 of a-z, 0-9, '.', '-')`);
    }
    const segments = rest.filter((s) => s !== "");
    const bad = segments.find((s) => !PREFIX_SEGMENT.test(s) || s === "." || s === "..");
    if (bad !== undefined) throw new LocationError(`prefix segment "${bad}" is not allowed (use letters, digits, '.', '-', '_')`);
    return { kind: "s3", bucket, prefix: normalisePrefix(segments.join("/")) };
  }
  if (text.startsWith("file://")) {
    let path: string;
    try {
      path = decodeURIComponent(new URL(text).pathname);
    } catch {
      throw new LocationError(`"${text}" is not a valid file: URL`);
    }
    return { kind: "file", root: path };
  }
  if (text.startsWith("file:")) return { kind: "file", root: text.slice("file:".length) || "." };
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(text);
  if (scheme) throw new LocationError(`scheme "${scheme[1]}:" is not supported; use file:<dir> or s3://<bucket>[/<prefix>]${/^s3$/i.test(scheme[1]!) ? " (in lower case)" : ""}`);
  // Something that looks like a URL but is none of the forms (`s3:/bucket`, `s3:bucket`, `S3://`,
  // `r2:bucket`) would otherwise become a local directory named `s3:` that a publish fills silently.
  const near = /^([A-Za-z][A-Za-z0-9+.-]*):(\/?)(?!\/)/.exec(text);
  if (near && !/^[A-Za-z]:[\\/]/.test(text)) {
    const hint = /^s3$/i.test(near[1]!) ? ` (did you mean s3://${text.slice(near[0].length).replace(/^\/+/, "")}?)` : "";
    throw new LocationError(`"${text}" looks like a URL but is not one of the forms file:<dir>, s3://<bucket>[/<prefix>] or a directory path${hint}; write ./${text} for a directory of that name`);
  }
  return { kind: "file", root: text };
}
