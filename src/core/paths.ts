import { BadRequestError, NotFoundError, UriTooLongError } from "./errors.ts";
import { checkFile, checkName, checkVersion } from "./names.ts";

/** What a path under `/plugins` asks for, after validation. */
export type PluginPath =
  | { readonly kind: "index" }
  | { readonly kind: "plugin"; readonly name: string }
  | { readonly kind: "version"; readonly name: string; readonly version: string }
  | { readonly kind: "file"; readonly name: string; readonly version: string; readonly file: string };

export const MAX_PATH_LENGTH = 1024;

function decodeSegment(raw: string): string {
  let value = raw;
  try {
    if (raw.includes("%")) value = decodeURIComponent(raw);
  } catch {
    throw new BadRequestError(`path segment ${JSON.stringify(raw)} is not valid percent-encoding`);
  }
  // An encoded slash or backslash would let one segment stand for several, and NUL or
  // control bytes confuse file systems and logs; none belongs in a plugin path.
  if (/[/\\\u0000-\u001f\u007f]/.test(value)) {
    throw new BadRequestError(`path segment ${JSON.stringify(raw)} contains a slash or control character`);
  }
  return value;
}

function valid(message: string | undefined, value: string): string {
  if (message !== undefined) throw new BadRequestError(message);
  return value;
}

/**
 * Parses the raw (still percent-encoded) pathname of a request under `/plugins`.
 * `/plugins` and `/plugins/` are the index; a trailing slash is optional everywhere because
 * we never redirect (a redirect costs the gateway a round trip and breaks some proxies).
 */
export function parsePluginPath(pathname: string): PluginPath {
  if (pathname.length > MAX_PATH_LENGTH) throw new UriTooLongError(MAX_PATH_LENGTH);
  // Literally `plugins`: an encoded `/%70lugins/...` is not a plugin path (nor any path we serve).
  if (!/^\/plugins(?:\/|$)/.test(pathname)) throw new NotFoundError("not found: plugins are served under /plugins/<name>/<version>/plugin.wasm");
  const rest = pathname.slice("/plugins".length);
  const segments = rest.split("/").slice(1);
  if (segments.at(-1) === "") segments.pop();
  if (segments.some((s) => s === "")) throw new BadRequestError("path contains an empty segment ('//')");
  const [name, version, file, ...extra] = segments.map(decodeSegment);
  if (extra.length > 0) {
    throw new BadRequestError("plugin paths have the form /plugins/<name>/<version>/<file>; this one is deeper");
  }
  if (name === undefined) return { kind: "index" };
  valid(checkName(name), name);
  if (version === undefined) return { kind: "plugin", name };
  valid(checkVersion(version), version);
  if (file === undefined) return { kind: "version", name, version };
  return { kind: "file", name, version, file: valid(checkFile(file), file) };
}
