/** What an incoming X-Request-Id may look like: short, printable, nothing a log or header could be split on. */
const VALID = /^[A-Za-z0-9._:@+=/-]{1,128}$/;

/** The caller's id when it is well-formed, else a new one. Only ids from a trusted proxy should be passed in. */
export function requestId(incoming: string | undefined | null): string {
  return incoming && VALID.test(incoming) ? incoming : crypto.randomUUID();
}
