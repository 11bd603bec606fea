import { HttpError } from "./errors.ts";
import { aliasesKey } from "./layout.ts";
import { checkVersion } from "./names.ts";

/** Version -> the version whose files it serves. One hop only, so no alias can loop. */
export type Aliases = Readonly<Record<string, string>>;

/** The store holds something we cannot serve from; 502, the store's fault and not the client's. */
export class InvalidStoreContentError extends HttpError {
  constructor(message: string) {
    super(502, message);
  }
}

export function parseAliases(name: string, text: string): Aliases {
  const fail = (why: string) => new InvalidStoreContentError(`${aliasesKey(name)} is invalid: ${why}`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw fail("not JSON");
  }
  const aliases = (value as { aliases?: unknown } | null)?.aliases;
  if (typeof aliases !== "object" || aliases === null || Array.isArray(aliases)) {
    throw fail('expected {"aliases": {"<version>": "<target version>"}}');
  }
  const result: Record<string, string> = Object.create(null) as Record<string, string>;
  for (const [from, to] of Object.entries(aliases)) {
    const problem = checkVersion(from) ?? (typeof to === "string" ? checkVersion(to) : "target is not a string");
    if (problem) throw fail(`${from}: ${problem}`);
    result[from] = to as string;
  }
  for (const [from, to] of Object.entries(result)) {
    if (Object.hasOwn(result, to)) throw fail(`${from} -> ${to} points at another alias; aliases must name a real version`);
  }
  return result;
}
