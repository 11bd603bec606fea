import { compare as bcryptCompare, getRounds } from "bcryptjs";
import { LRUCache } from "lru-cache";
import { clientKey } from "./addresses.ts";

/**
 * `throttled`: the client spent its failed-attempt budget; `busy`: too many bcrypt checks are
 * waiting already. Neither ran bcrypt.
 */
export type Verdict = "ok" | "missing" | "wrong" | "throttled" | "busy";

export type Compare = (password: string, hash: string) => Promise<boolean>;

export interface AuthenticatorOptions {
  /** bcrypt's compare; the Node entry runs it on a worker thread, tests count its runs. */
  readonly compare?: Compare;
  /** Checks started and not finished beyond which a new one is refused as `busy`. */
  readonly maxPending?: number;
  /** Failed checks a client address may make at once before it must wait... */
  readonly failureBurst?: number;
  /** ...and the time that gives it one attempt back. */
  readonly failureRefillMs?: number;
  readonly now?: () => number;
}

export const DEFAULT_MAX_PENDING = 8;
export const DEFAULT_FAILURE_BURST = 10;
export const DEFAULT_FAILURE_REFILL_MS = 6_000;
/** How long a `busy` client is asked to wait: one queue of checks takes about this long. */
export const BUSY_RETRY_AFTER_SECONDS = 1;

const encoder = new TextEncoder();
const sha256 = async (text: string) => new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
const hex = (bytes: Uint8Array) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** Compares two digests in time that depends on their length only. */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  let difference = a.length ^ b.length;
  for (let i = 0; i < a.length; i++) difference |= a[i]! ^ (b[i] ?? 0);
  return difference === 0;
}

interface Budget {
  tokens: number;
  at: number;
}

/**
 * Checks an Authorization header against htpasswd users (Basic) and bearer tokens.
 *
 * bcrypt is slow on purpose (tens of milliseconds per check at cost 10), which makes every
 * unknown header a way to spend the server's CPU. So:
 * - a rollout sends the same header hundreds of times at once: verdicts are remembered for a
 *   minute, keyed by the header's SHA-256 (never the password itself), and concurrent checks of
 *   one header share a single run;
 * - good verdicts and failures are remembered apart, so a flood of junk headers cannot push the
 *   gateways' good verdicts out;
 * - each client address has a budget of failed checks (a token bucket; IPv6 by /64): spent, its
 *   new headers are answered `throttled` without bcrypt until the budget refills;
 * - at most `maxPending` checks wait or run at once, whoever sends them: beyond, `busy`.
 * Tokens are compared as SHA-256 digests, every configured token every time, so the time taken
 * says nothing about which bytes matched.
 */
export class Authenticator {
  readonly schemes: readonly ("Basic" | "Bearer")[];
  readonly #users: ReadonlyMap<string, string>;
  readonly #tokens: Promise<Uint8Array[]>;
  readonly #good = new LRUCache<string, true>({ max: 4096, ttl: 60_000 });
  readonly #bad = new LRUCache<string, true>({ max: 4096, ttl: 60_000 });
  readonly #inFlight = new Map<string, Promise<boolean | undefined>>();
  readonly #budgets = new LRUCache<string, Budget>({ max: 16_384 });
  readonly #compare: Compare;
  readonly #maxPending: number;
  readonly #burst: number;
  readonly #refillMs: number;
  readonly #now: () => number;
  #pending = 0;
  #decoy: string | undefined;

  constructor(users: ReadonlyMap<string, string>, tokens: readonly string[], options: AuthenticatorOptions = {}) {
    this.#users = users;
    this.#compare = options.compare ?? bcryptCompare;
    this.#maxPending = options.maxPending ?? DEFAULT_MAX_PENDING;
    this.#burst = options.failureBurst ?? DEFAULT_FAILURE_BURST;
    this.#refillMs = options.failureRefillMs ?? DEFAULT_FAILURE_REFILL_MS;
    this.#now = options.now ?? Date.now;
    this.#tokens = Promise.all(tokens.map(sha256));
    this.schemes = [...(users.size > 0 ? (["Basic"] as const) : []), ...(tokens.length > 0 ? (["Bearer"] as const) : [])];
  }

  /** The WWW-Authenticate value of a 401 (RFC 9110 §11.6.1; RFC 7617 for Basic, RFC 6750 for Bearer). */
  challenge(realm: string): string {
    return this.schemes.map((s) => (s === "Basic" ? `Basic realm="${realm}", charset="UTF-8"` : `Bearer realm="${realm}"`)).join(", ");
  }

  /** `client` is the request's address (undefined when unknown: such clients share one budget). */
  async check(authorization: string | undefined, client?: string): Promise<Verdict> {
    if (!authorization) return "missing";
    const space = authorization.indexOf(" ");
    const scheme = authorization.slice(0, space).toLowerCase(); // auth-scheme is case-insensitive (RFC 9110 §11.1)
    if (space < 0 || (scheme !== "basic" && scheme !== "bearer")) return "missing";
    const key = hex(await sha256(authorization));
    if (this.#good.has(key)) return "ok";
    if (this.#bad.has(key)) return "wrong";
    let verdict = this.#inFlight.get(key);
    if (!verdict) {
      const budget = this.#budget(client);
      if (budget.tokens < 1) return "throttled";
      if (scheme === "basic" && this.#pending >= this.#maxPending) return "busy";
      // Spent up front, given back on success: a client's checks in flight are bounded by its budget too.
      budget.tokens -= 1;
      const value = authorization.slice(space + 1).trim();
      verdict = this.#run(key, scheme === "basic" ? this.#basic(value) : this.#bearer(value), budget);
      this.#inFlight.set(key, verdict);
    }
    const ok = await verdict;
    return ok === undefined ? "busy" : ok ? "ok" : "wrong";
  }

  /** Seconds until a throttled client may try a new header again. */
  retryAfter(client: string | undefined): number {
    const budget = this.#budget(client);
    return Math.max(1, Math.ceil(((1 - budget.tokens) * this.#refillMs) / 1000));
  }

  /** The verdict, remembered; undefined when the check itself failed (a dead worker thread), which is not the client's fault. */
  async #run(key: string, check: Promise<boolean>, budget: Budget): Promise<boolean | undefined> {
    try {
      const ok = await check;
      (ok ? this.#good : this.#bad).set(key, true);
      if (ok) budget.tokens = Math.min(this.#burst, budget.tokens + 1);
      return ok;
    } catch {
      budget.tokens = Math.min(this.#burst, budget.tokens + 1);
      return undefined;
    } finally {
      this.#inFlight.delete(key);
    }
  }

  #budget(client: string | undefined): Budget {
    const key = clientKey(client);
    const now = this.#now();
    let budget = this.#budgets.get(key);
    if (!budget) {
      budget = { tokens: this.#burst, at: now };
      this.#budgets.set(key, budget);
    }
    budget.tokens = Math.min(this.#burst, budget.tokens + (now - budget.at) / this.#refillMs);
    budget.at = now;
    return budget;
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
    this.#pending++;
    try {
      const ok = await this.#compare(decoded.slice(colon + 1), hash ?? this.#decoyHash());
      return ok && hash !== undefined;
    } finally {
      this.#pending--;
    }
  }

  /**
   * A bcrypt string of the users' cost with a random salt and digest: comparing against it costs
   * what a real user's check costs, and it matches no password (2^-184), without hashing anything.
   */
  #decoyHash(): string {
    if (this.#decoy) return this.#decoy;
    const [first] = this.#users.values();
    const rounds = first ? getRounds(first) : 10;
    const alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const random = crypto.getRandomValues(new Uint8Array(53));
    return (this.#decoy = `$2b$${String(rounds).padStart(2, "0")}$${Array.from(random, (b) => alphabet[b & 63]).join("")}`);
  }
}
