/**
 * Conditional requests, RFC 9110 section 13. Headers are parsed once into typed values; the
 * evaluation in `evaluatePreconditions` follows the order of section 13.2.2 and is the single
 * authority: a backend may pre-check conditions to save a body transfer, but the app decides.
 */

export interface EntityTag {
  readonly weak: boolean;
  readonly opaque: string; // including the quotes, as on the wire
}

/** `*` or a list of entity-tags. */
export type TagCondition = { readonly any: true } | { readonly any: false; readonly tags: readonly EntityTag[] };

/** `invalid`: present but neither an entity-tag nor an HTTP-date, so it matches nothing (section 13.1.5). */
export type IfRange = { readonly kind: "etag"; readonly tag: EntityTag } | { readonly kind: "date"; readonly date: Date } | { readonly kind: "invalid" };

export interface Preconditions {
  readonly ifMatch?: TagCondition;
  readonly ifNoneMatch?: TagCondition;
  readonly ifModifiedSince?: Date;
  readonly ifUnmodifiedSince?: Date;
  readonly ifRange?: IfRange;
}

export type PreconditionOutcome = "proceed" | "not-modified" | "precondition-failed";

export interface Validators {
  readonly etag: string;
  readonly lastModified: Date;
}

const ETAG = /^(W\/)?("[\x21\x23-\x7e\x80-\xff]*")$/;

export function parseEntityTag(value: string): EntityTag | undefined {
  const m = ETAG.exec(value.trim());
  return m ? { weak: m[1] !== undefined, opaque: m[2]! } : undefined;
}

/** Parses If-Match / If-None-Match; an invalid member makes the whole field invalid, and so ignored. */
function parseTagCondition(value: string | null): TagCondition | undefined {
  if (value === null) return undefined;
  if (value.trim() === "*") return { any: true };
  const tags: EntityTag[] = [];
  for (const part of value.split(",")) {
    if (part.trim() === "") continue;
    const tag = parseEntityTag(part);
    if (!tag) return undefined;
    tags.push(tag);
  }
  return tags.length > 0 ? { any: false, tags } : undefined;
}

const IMF_FIXDATE = /^[A-Z][a-z]{2}, \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT$/;
const RFC850_DATE = /^[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT$/;
const ASCTIME_DATE = /^[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4}$/;

/** Section 5.6.7: the three HTTP-date forms; anything else must be ignored (section 13.1.3). */
export function parseHttpDate(value: string | null): Date | undefined {
  if (value === null) return undefined;
  const text = value.trim();
  let time = Number.NaN;
  if (IMF_FIXDATE.test(text) || RFC850_DATE.test(text)) time = Date.parse(text);
  else if (ASCTIME_DATE.test(text)) time = Date.parse(`${text} GMT`);
  return Number.isNaN(time) ? undefined : new Date(time);
}

const formatted = new WeakMap<Date, string>();

/** Section 5.6.7's IMF-fixdate, formatted once per stored object's date (every response sends one). */
export function formatHttpDate(date: Date): string {
  let text = formatted.get(date);
  if (text === undefined) formatted.set(date, (text = date.toUTCString()));
  return text;
}

function parseIfRange(value: string | null): IfRange | undefined {
  if (value === null) return undefined;
  const tag = parseEntityTag(value);
  if (tag) return { kind: "etag", tag };
  const date = parseHttpDate(value);
  return date ? { kind: "date", date } : INVALID_IF_RANGE;
}

const INVALID_IF_RANGE: IfRange = Object.freeze({ kind: "invalid" });

const NONE: Preconditions = Object.freeze({});

export function parsePreconditions(headers: { get(name: string): string | null }): Preconditions {
  const ifMatch = parseTagCondition(headers.get("if-match"));
  const ifNoneMatch = parseTagCondition(headers.get("if-none-match"));
  const ifModifiedSince = parseHttpDate(headers.get("if-modified-since"));
  const ifUnmodifiedSince = parseHttpDate(headers.get("if-unmodified-since"));
  const ifRange = parseIfRange(headers.get("if-range"));
  // Most requests carry none: one shared empty value, and no object built per request.
  if (!ifMatch && !ifNoneMatch && !ifModifiedSince && !ifUnmodifiedSince && !ifRange) return NONE;
  return {
    ...(ifMatch ? { ifMatch } : {}),
    ...(ifNoneMatch ? { ifNoneMatch } : {}),
    ...(ifModifiedSince ? { ifModifiedSince } : {}),
    ...(ifUnmodifiedSince ? { ifUnmodifiedSince } : {}),
    ...(ifRange ? { ifRange } : {}),
  };
}

/** Section 8.8.3.2: strong comparison needs both tags strong; weak comparison ignores the W/. */
function matches(condition: TagCondition, current: EntityTag | undefined, strong: boolean): boolean {
  if (condition.any) return current !== undefined;
  if (!current) return false;
  return condition.tags.some(
    (tag) => tag.opaque === current.opaque && (!strong || (!tag.weak && !current.weak)),
  );
}

/** HTTP dates have one-second resolution, so compare whole seconds. */
const seconds = (date: Date) => Math.floor(date.getTime() / 1000);

/** Section 13.2.2, steps 1 to 4, for a representation that exists. */
export function evaluatePreconditions(p: Preconditions, current: Validators, method: string): PreconditionOutcome {
  if (!p.ifMatch && !p.ifNoneMatch && !p.ifModifiedSince && !p.ifUnmodifiedSince) return "proceed";
  const tag = parseEntityTag(current.etag);
  const modified = seconds(current.lastModified);
  if (p.ifMatch) {
    if (!matches(p.ifMatch, tag, true)) return "precondition-failed";
  } else if (p.ifUnmodifiedSince && modified > seconds(p.ifUnmodifiedSince)) {
    return "precondition-failed";
  }
  const safe = method === "GET" || method === "HEAD";
  if (p.ifNoneMatch) {
    if (matches(p.ifNoneMatch, tag, false)) return safe ? "not-modified" : "precondition-failed";
  } else if (safe && p.ifModifiedSince && modified <= seconds(p.ifModifiedSince)) {
    return "not-modified";
  }
  return "proceed";
}

/** Section 13.1.5: a Range applies only while the validator in If-Range still describes the representation. */
export function ifRangeHolds(ifRange: IfRange | undefined, current: Validators): boolean {
  if (!ifRange) return true;
  if (ifRange.kind === "invalid") return false; // a validator that cannot be read cannot match: the whole representation
  if (ifRange.kind === "etag") {
    const tag = parseEntityTag(current.etag);
    return tag !== undefined && !tag.weak && !ifRange.tag.weak && tag.opaque === ifRange.tag.opaque;
  }
  return seconds(ifRange.date) === seconds(current.lastModified);
}
