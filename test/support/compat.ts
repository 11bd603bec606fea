import { readFileSync } from "node:fs";
import path from "node:path";

/**
 * The URLs every Console release generates, from the contract's table (higress-compat.md
 * section 6, copied into test/support/console-versions.json so the suite owns its data):
 * name -> the `${version}` values Consoles put in URLs.
 */
export const CONSOLE_VERSIONS: Record<string, string[]> = JSON.parse(
  readFileSync(path.join(import.meta.dirname, "console-versions.json"), "utf8"),
);
