/**
 * Allow-lists for the three path segments a plugin URL carries. Everything that reaches a
 * store key has passed one of these, so a key can never climb out of its prefix or carry
 * bytes a backend would interpret (NUL, slashes, dot segments, control characters).
 */

/** Plugin names as Higress uses them (`key-auth`, `ai-proxy`), plus `_`, `.` and capitals for in-house plugins. */
const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9])?$/;
/** Semver (with `+build`) and OCI tags (`2.0.0`, `v1.2`, `1.0.0-rc.1`, `latest`). */
const VERSION = /^[A-Za-z0-9_](?:[A-Za-z0-9._+-]{0,126}[A-Za-z0-9_])?$/;
/** Files inside a version directory: `plugin.wasm`, `metadata.txt`, `README_EN.md`, `spec.yaml`, ... */
const FILE = /^[A-Za-z0-9_](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?$/;

export const MAX_SEGMENT_LENGTH = 128;

function check(kind: string, re: RegExp, value: string): string | undefined {
  if (typeof value !== "string") return `${kind} must be a string`;
  if (value.length > MAX_SEGMENT_LENGTH) return `${kind} is longer than ${MAX_SEGMENT_LENGTH} characters`;
  if (!re.test(value) || value.includes("..")) {
    return `${kind} ${JSON.stringify(value)} is not valid: use letters, digits, '.', '-', '_'${kind === "version" ? ", '+'" : ""}, starting and ending with a letter or digit`;
  }
  return undefined;
}

/** Returns a message when `value` is not an acceptable plugin name. */
export const checkName = (value: string) => check("plugin name", NAME, value);
/** Returns a message when `value` is not an acceptable version. */
export const checkVersion = (value: string) => check("version", VERSION, value);
/** Returns a message when `value` is not an acceptable file name. */
export const checkFile = (value: string) => check("file name", FILE, value);

export const isName = (value: string) => checkName(value) === undefined;
export const isVersion = (value: string) => checkVersion(value) === undefined;
