import { describe, expect, test } from "vitest";
import { evaluatePreconditions, ifRangeHolds, parseHttpDate, parsePreconditions } from "../../src/core/conditional.ts";
import { acceptsGzip, prefersJson } from "../../src/core/negotiate.ts";
import { parseRange, resolveRange } from "../../src/core/range.ts";

/** Fast checks of the RFC 9110 parsers and rules that the request matrix exercises end to end. */

describe("Range (section 14)", () => {
  test.each([
    ["bytes=0-499", { kind: "bounded", first: 0, last: 499 }],
    ["bytes=500-", { kind: "from", first: 500 }],
    ["bytes=-500", { kind: "suffix", length: 500 }],
    [" bytes = 1 - 2 ", { kind: "bounded", first: 1, last: 2 }],
  ])("%s parses", (header, expected) => expect(parseRange(header)).toEqual(expected));

  test.each([null, "", "bytes=2-1", "bytes=0-1,3-4", "pages=1-2", "bytes=-", "bytes=1e3-", "bytes=99999999999999999-"])(
    "%s is ignored",
    (header) => expect(parseRange(header)).toBeUndefined(),
  );

  test("resolution against a size", () => {
    expect(resolveRange({ kind: "bounded", first: 0, last: 1_000 }, 10)).toEqual({ start: 0, end: 9 });
    expect(resolveRange({ kind: "from", first: 9 }, 10)).toEqual({ start: 9, end: 9 });
    expect(resolveRange({ kind: "from", first: 10 }, 10)).toBeUndefined();
    expect(resolveRange({ kind: "suffix", length: 3 }, 10)).toEqual({ start: 7, end: 9 });
    expect(resolveRange({ kind: "suffix", length: 0 }, 10)).toBeUndefined();
    expect(resolveRange({ kind: "suffix", length: 5 }, 0)).toBeUndefined();
  });
});

describe("conditional requests (section 13)", () => {
  const current = { etag: '"v1"', lastModified: new Date("2026-01-01T00:00:00.900Z") };
  const evaluate = (headers: Record<string, string>, method = "GET") =>
    evaluatePreconditions(parsePreconditions(new Headers(headers)), current, method);

  test("If-Match uses strong comparison", () => {
    expect(evaluate({ "If-Match": '"v1"' })).toBe("proceed");
    expect(evaluate({ "If-Match": 'W/"v1"' })).toBe("precondition-failed");
    expect(evaluate({ "If-Match": '"v0", "v1"' })).toBe("proceed");
  });

  test("If-Unmodified-Since applies only without If-Match", () => {
    const before = "Wed, 31 Dec 2025 00:00:00 GMT";
    expect(evaluate({ "If-Unmodified-Since": before })).toBe("precondition-failed");
    expect(evaluate({ "If-Unmodified-Since": before, "If-Match": '"v1"' })).toBe("proceed");
  });

  test("If-None-Match uses weak comparison; 412 for unsafe methods", () => {
    expect(evaluate({ "If-None-Match": 'W/"v1"' })).toBe("not-modified");
    expect(evaluate({ "If-None-Match": '"v1"' }, "PUT")).toBe("precondition-failed");
    expect(evaluate({ "If-None-Match": '"v2"' })).toBe("proceed");
  });

  test("If-Modified-Since compares whole seconds and is ignored with If-None-Match", () => {
    expect(evaluate({ "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT" })).toBe("not-modified");
    expect(evaluate({ "If-Modified-Since": "Wed, 31 Dec 2025 23:59:59 GMT" })).toBe("proceed");
    expect(evaluate({ "If-Modified-Since": "Thu, 01 Jan 2026 00:00:00 GMT", "If-None-Match": '"x"' })).toBe("proceed");
  });

  test("malformed fields are ignored", () => {
    expect(evaluate({ "If-Match": "v1" })).toBe("proceed");
    expect(evaluate({ "If-Modified-Since": "1" })).toBe("proceed");
  });

  test("HTTP-date forms (section 5.6.7)", () => {
    const expected = Date.UTC(1994, 10, 6, 8, 49, 37);
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT")?.getTime()).toBe(expected);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT")?.getTime()).toBe(expected);
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994")?.getTime()).toBe(expected);
    expect(parseHttpDate("2026-01-01")).toBeUndefined();
  });

  test("If-Range needs a strong match or the exact date", () => {
    const holds = (value: string) => ifRangeHolds(parsePreconditions(new Headers({ "If-Range": value })).ifRange, current);
    expect(holds('"v1"')).toBe(true);
    expect(holds('W/"v1"')).toBe(false);
    expect(holds("Thu, 01 Jan 2026 00:00:00 GMT")).toBe(true);
    expect(holds("Thu, 01 Jan 2026 00:00:01 GMT")).toBe(false);
  });
});

describe("negotiation (section 12.5)", () => {
  test.each([
    ["gzip", true],
    ["gzip, deflate, br", true],
    ["br;q=1, gzip;q=0.5", true],
    ["*", true],
    ["gzip;q=0", false],
    ["gzip;q=0, *", false],
    ["identity", false],
    ["", false],
  ])("Accept-Encoding %j accepts gzip: %s", (header, expected) => expect(acceptsGzip(header)).toBe(expected));

  test.each([
    ["application/json", true],
    ["text/html,application/xhtml+xml,*/*;q=0.8", false],
    ["*/*", false],
    ["application/json;q=0.5, text/html", false],
    [undefined, false],
  ])("Accept %j prefers JSON: %s", (header, expected) => expect(prefersJson(header)).toBe(expected));
});
