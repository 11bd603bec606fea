import { compare, getRounds, hashSync } from "bcryptjs";
import { LRUCache } from "lru-cache";

export type Verdict = "ok" | "missing" | "wrong";

const encoder = new TextEncoder();
const sha256 = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));

/** Compares two digests in time that depends on their length only. */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ (b[i] ?? 0);
  return difference === 0;
}

/**
 * Checks an Authorization header against htpasswd users (Basic) and bearer tokens.
 *
 * bcrypt is slow on purpose (milliseconds per check, more at higher costs), and a rollout
 * sends the same header hundreds of times at once: a verdict is remembered for a minute,
 * keyed by the header's SHA-256 (never the password itself), and concurrent checks of one
 * header share a single bcrypt run. Tokens are compared as SHA-256 digests, every configured
 * token every time, so the time taken says nothing about which bytes matched.
 */
export class Authenticator {
  readonly schemes: readonly ("Basic" | "Bearer")[];
  readonly #users: ReadonlyMap<string, string>;
  readonly #tokens: Promise<Uint8Array[]>;
  readonly #verdicts = new LRUCache<string, Promise<boolean>>({ max: 4096, ttl: 60_000 });
  readonly #compare: (password: string, hash: string) => Promise<boolean>;
  #decoy: string | undefined;

  /** `compare` is bcrypt's; tests count its runs. */
  constructor(users: ReadonlyMap<string, string>, tokens: readonly string[], options: { compare?: (password: string, hash: string) => Promise<boolean> } = {}) {
    this.#users = users;
    this.#compare = options.compare ?? compare;
    this.#tokens = Promise.all(tokens.map(sha256));
    this.schemes = [...(users.size > 0 ? (["Basic"] as const) : []), ...(tokens.length > 0 ? (["Bearer"] as const) : [])];
  }

  /** The WWW-Authenticate value of a 401 (RFC 9110 §11.6.1; RFC 7617 for Basic, RFC 6750 for Bearer). */
  challenge(realm: string): string {
    return this.schemes.map((s) => (s === "Basic" ? `Basic realm="${realm}", charset="UTF-8"` : `Bearer realm="${realm}"`)).join(", ");
  }

  async check(authorization: string | undefined): Promise<Verdict> {
    if (!authorization) return "missing";
    const space = authorization.indexOf(" ");
    const scheme = authorization.slice(0, space).toLowerCase(); // auth-scheme is case-insensitive (RFC 9110 §11.1)
    const value = authorization.slice(space + 1).trim();
    if (space < 0 || (scheme !== "basic" && scheme !== "bearer")) return "missing";
    const key = await sha256(authorization);
    const keyText = Array.from(key, (b) => b.toString(16).padStart(2, "0")).join("");
    let verdict = this.#verdicts.get(keyText);
    if (!verdict) {
      verdict = scheme === "basic" ? this.#basic(value) : this.#bearer(value);
      this.#verdicts.set(keyText, verdict);
    }
    return (await verdict) ? "ok" : "wrong";
  }

  async #bearer(token: string): Promise<boolean> {
    const digest = await sha256(token);
    let found = false;
    for (const known of await this.#tokens) found = sameDigest(digest, known) || found;
    return found;
  }

  async #basic(encoded: string): Promise<boolean> {
    let decoded: string;
    try {
      decoded = new TextDecoder("utf-8", { fatal: true }).decode(Uint8Array.from(atob(encoded), (c) => c.charCodeAt(0)));
    } catch {
      return false;
    }
    const colon = decoded.indexOf(":");
    if (colon < 0 || this.#users.size === 0) return false;
    const hash = this.#users.get(decoded.slice(0, colon));
    // An unknown user costs a bcrypt run too, so timing does not tell which users exist.
    const ok = await this.#compare(decoded.slice(colon + 1), hash ?? this.#decoyHash());
    return ok && hash !== undefined;
  }

  #decoyHash(): string {
    const [first] = this.#users.values();
    return (this.#decoy ??= hashSync(crypto.randomUUID(), first ? getRounds(first) : 10));
  }
}
