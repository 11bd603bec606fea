/**
 * Parses a buffer once for as long as the buffer lives: the memory cache hands out the same
 * buffer for a small file (metadata.json, aliases.json) to every request until it changes.
 */
const parsed = new WeakMap<Uint8Array, unknown>();

export function parsedOnce<T>(bytes: Uint8Array, parse: (bytes: Uint8Array) => T): T {
  if (parsed.has(bytes)) return parsed.get(bytes) as T;
  const value = parse(bytes);
  parsed.set(bytes, value);
  return value;
}
