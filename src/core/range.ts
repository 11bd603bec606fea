/**
 * Byte ranges, RFC 9110 section 14. We serve one range per request: a server may ignore a
 * Range header it does not want to honour (section 14.2), and multipart/byteranges buys
 * nothing for plugin downloads, so several ranges or an unparsable header mean "send it all".
 */

/** A requested range before the representation's size is known. */
export type ByteRange =
  | { readonly kind: "bounded"; readonly first: number; readonly last: number } // bytes=0-499
  | { readonly kind: "from"; readonly first: number } // bytes=500-
  | { readonly kind: "suffix"; readonly length: number }; // bytes=-500

/** A range resolved against a size: inclusive byte offsets, as in Content-Range. */
export interface ResolvedRange {
  readonly start: number;
  readonly end: number;
}

const DIGITS = /^\d{1,15}$/; // beyond 2^53 a number stops being exact; no plugin is that large

/** Parses a Range header value; `undefined` means "ignore the header and send the whole representation". */
export function parseRange(header: string | null | undefined): ByteRange | undefined {
  if (!header || header.length > 1024) return undefined; // no single range is that long
  // Plain string steps, no lazy groups: a pattern like /^\s*bytes=(.*?)\s*$/ is quadratic on long runs of spaces.
  const text = header.trim();
  const eq = text.indexOf("=");
  if (eq < 0 || text.slice(0, eq).trim().toLowerCase() !== "bytes") return undefined; // another range unit: section 14.1 says ignore it
  const specs = text.slice(eq + 1).split(",").map((s) => s.trim()).filter((s) => s !== "");
  if (specs.length !== 1) return undefined;
  const spec = specs[0]!;
  const dash = spec.indexOf("-");
  if (dash < 0) return undefined;
  const firstText = spec.slice(0, dash).trim();
  const lastText = spec.slice(dash + 1).trim();
  if (firstText === "") {
    return DIGITS.test(lastText) ? { kind: "suffix", length: Number(lastText) } : undefined;
  }
  if (!DIGITS.test(firstText)) return undefined;
  const first = Number(firstText);
  if (lastText === "") return { kind: "from", first };
  if (!DIGITS.test(lastText)) return undefined;
  const last = Number(lastText);
  // Section 14.1.1: a range whose last position is below its first is invalid, so the header is ignored.
  return last < first ? undefined : { kind: "bounded", first, last };
}

/** Resolves a range against the representation size; `undefined` means unsatisfiable (416). */
export function resolveRange(range: ByteRange, size: number): ResolvedRange | undefined {
  switch (range.kind) {
    case "bounded":
    case "from": {
      // Section 14.1.2: an int-range is satisfiable only if its first position is inside the representation.
      if (range.first >= size) return undefined;
      const last = range.kind === "bounded" ? Math.min(range.last, size - 1) : size - 1;
      return { start: range.first, end: last };
    }
    case "suffix":
      // A suffix-range is satisfiable if its length is non-zero (and there is something to send).
      if (range.length === 0 || size === 0) return undefined;
      return { start: Math.max(0, size - range.length), end: size - 1 };
  }
}

/** The Range header form of a typed range, for backends that take one (S3). */
export function formatRange(range: ByteRange): string {
  switch (range.kind) {
    case "bounded":
      return `bytes=${range.first}-${range.last}`;
    case "from":
      return `bytes=${range.first}-`;
    case "suffix":
      return `bytes=-${range.length}`;
  }
}

export const contentRange = (r: ResolvedRange, size: number) => `bytes ${r.start}-${r.end}/${size}`;
export const unsatisfiedRange = (size: number) => `bytes */${size}`;
