import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough, type Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { RegistryError } from "../errors.ts";
import { basicAuth, parseChallenge, type Credentials } from "./auth.ts";
import { MANIFEST_ACCEPT } from "./media-types.ts";
import { DIGEST, formatReference, isTag, type ImageReference } from "./reference.ts";

export interface Descriptor {
  readonly mediaType: string;
  readonly digest: string;
  readonly size: number;
  readonly annotations?: Readonly<Record<string, string>>;
  readonly platform?: { readonly os?: string; readonly architecture?: string; readonly variant?: string };
}

export interface RegistryClientOptions {
  /** Hosts (`host:port`) reached over plain HTTP; everything else uses HTTPS. */
  readonly plainHttp?: ReadonlySet<string>;
  /** Credentials for a registry host, or undefined for anonymous access. */
  readonly credentials?: (host: string, repository: string) => Credentials | undefined;
  /** Attempts for network errors and 5xx answers (with exponential backoff). */
  readonly attempts?: number;
  readonly backoffMs?: number;
  readonly timeoutMs?: number;
  /** Told every exchange (method, URL, status, time; never a header, so never a secret). */
  readonly log?: (line: string) => void;
  /** What to tell the operator when `host` asks for credentials we have none for (how to give it some). */
  readonly credentialHint?: (host: string) => string | undefined;
}

interface Token {
  readonly value: string;
  readonly expires: number;
}

const MAX_MANIFEST_BYTES = 4 * 1024 * 1024;
const MAX_REDIRECTS = 5;

/**
 * The distribution API on fetch: manifests and blobs, verified by sha256, with Basic and
 * Bearer-token auth (tokens per repository scope, renewed on expiry) and retries.
 */
export class RegistryClient {
  readonly #tokens = new Map<string, Token>();
  /** Hosts whose requests failed on the network after every retry, with why. */
  readonly #unreachable = new Map<string, string>();
  readonly #options: Required<Omit<RegistryClientOptions, "credentials" | "log" | "credentialHint">> & Pick<RegistryClientOptions, "credentials" | "credentialHint">;
  readonly #log: (line: string) => void;

  constructor(options: RegistryClientOptions = {}) {
    this.#options = {
      plainHttp: options.plainHttp ?? new Set(),
      attempts: options.attempts ?? 4,
      backoffMs: options.backoffMs ?? 500,
      timeoutMs: options.timeoutMs ?? 60_000,
      ...(options.credentials ? { credentials: options.credentials } : {}),
      ...(options.credentialHint ? { credentialHint: options.credentialHint } : {}),
    };
    this.#log = options.log ?? (() => {});
  }

  /** The manifest bytes exactly as served, checked against the requested digest or Docker-Content-Digest. */
  async manifest(ref: ImageReference, reference = ref.digest ?? ref.tag!): Promise<{ bytes: Uint8Array; digest: string; mediaType: string }> {
    // Whatever names the manifest becomes part of a URL sent with our credentials: a tag or a sha256 digest, nothing else.
    if (!DIGEST.test(reference) && !isTag(reference)) {
      throw new RegistryError(`manifest reference ${JSON.stringify(reference.slice(0, 80))} of ${formatReference(ref)} is neither a tag nor a sha256 digest`);
    }
    const res = await this.#request(ref, `manifests/${reference}`, { Accept: MANIFEST_ACCEPT });
    const bytes = await readBounded(res, MAX_MANIFEST_BYTES, `manifest of ${formatReference(ref)}`);
    const digest = `sha256:${createHash("sha256").update(bytes).digest("hex")}`;
    const expected = reference.startsWith("sha256:") ? reference : res.headers.get("docker-content-digest");
    if (expected && expected !== digest) {
      throw new RegistryError(`manifest of ${formatReference(ref)} has digest ${digest}, expected ${expected}: refusing it`);
    }
    let mediaType = res.headers.get("content-type")?.split(";")[0]?.trim() ?? "";
    try {
      mediaType = (JSON.parse(new TextDecoder().decode(bytes)) as { mediaType?: string }).mediaType ?? mediaType;
    } catch {
      throw new RegistryError(`manifest of ${formatReference(ref)} is not JSON`);
    }
    return { bytes, digest, mediaType };
  }

  /** A small blob (a README, a spec), read whole and verified against its descriptor. */
  blob(ref: ImageReference, descriptor: Descriptor, maxBytes: number): Promise<Uint8Array> {
    return this.blobStream(ref, descriptor, maxBytes, async (body) => Buffer.concat(await body.toArray(), descriptor.size));
  }

  /**
   * A blob streamed through `consume` (never held whole unless `consume` does), verified against
   * its descriptor: what `consume` returns is handed back only once every byte has arrived and the
   * sha256 and size match. A body cut short (a reset, a truncated answer) is fetched again from
   * the start; bytes that do not match the digest are refused, and are named as the reason even
   * when `consume` failed on them first (a corrupt layer is a digest problem, not a gzip one).
   */
  async blobStream<T>(ref: ImageReference, descriptor: Descriptor, maxBytes: number, consume: (body: Readable) => Promise<T>): Promise<T> {
    if (typeof descriptor.digest !== "string" || !DIGEST.test(descriptor.digest)) {
      throw new RegistryError(`blob digest ${JSON.stringify(String(descriptor.digest).slice(0, 80))} of ${formatReference(ref)} is not a sha256 digest`);
    }
    if (!Number.isSafeInteger(descriptor.size) || descriptor.size < 0 || descriptor.size > maxBytes) {
      throw new RegistryError(`blob ${descriptor.digest} is ${descriptor.size} bytes, over the ${maxBytes} byte limit`);
    }
    for (let attempt = 1; ; attempt++) {
      const res = await this.#request(ref, `blobs/${descriptor.digest}`, {});
      const declared = Number(res.headers.get("content-length") ?? NaN);
      if (declared > descriptor.size) {
        await res.body?.cancel();
        throw new RegistryError(`blob ${descriptor.digest} is ${declared} bytes, its descriptor says ${descriptor.size}`);
      }
      const hash = createHash("sha256");
      let total = 0;
      const body = new PassThrough({ highWaterMark: 1 << 20 });
      // Once `consume` is done (or failed), the rest of the blob is only hashed.
      let settled = false;
      const consumed = consume(body).then(
        (value) => ((settled = true), { value }),
        (error: unknown) => ((settled = true), { error }),
      );
      try {
        for await (const chunk of res.body ?? []) {
          // Never more than the descriptor says: a registry sending extra bytes is cut off, not buffered.
          total += chunk.length;
          if (total > descriptor.size) throw new RegistryError(`blob ${descriptor.digest} of ${formatReference(ref)} is longer than its descriptor's ${descriptor.size} bytes`);
          hash.update(chunk);
          if (!settled && !body.destroyed && !body.write(chunk)) await Promise.race([once(body, "drain").catch(() => {}), consumed]);
        }
        if (total < descriptor.size) throw new Error(`the answer ended after ${total} of ${descriptor.size} bytes`);
      } catch (error) {
        body.destroy();
        await consumed;
        if (error instanceof RegistryError || attempt >= this.#options.attempts) {
          throw error instanceof RegistryError ? error : new RegistryError(`blob ${descriptor.digest} of ${formatReference(ref)}: ${(error as Error).message}`, undefined, { cause: error });
        }
        this.#log(`registry blob ${descriptor.digest} cut off after ${total} bytes (${(error as Error).message}); fetching it again`);
        await sleep(this.#options.backoffMs * 2 ** (attempt - 1));
        continue;
      }
      body.end();
      const actual = `sha256:${hash.digest("hex")}`;
      if (actual !== descriptor.digest || total !== descriptor.size) {
        body.destroy();
        await consumed;
        throw new RegistryError(`blob ${descriptor.digest} of ${formatReference(ref)} does not verify: got ${total} bytes with digest ${actual}`);
      }
      const result = await consumed;
      if ("error" in result) throw result.error;
      return result.value;
    }
  }

  async #request(ref: ImageReference, path: string, headers: Record<string, string>): Promise<Response> {
    const scheme = this.#options.plainHttp.has(ref.host) ? "http" : "https";
    const url = `${scheme}://${ref.host}/v2/${ref.repository}/${path}`;
    // A registry that could not be reached at all (every retry of a request failed on the network)
    // is not tried again by every other plugin of the run: they fail at once, with the same reason.
    const unreachable = this.#unreachable.get(ref.host);
    if (unreachable) throw new RegistryError(`${url}: ${unreachable} (not tried again: an earlier request to ${ref.host} failed the same way)`);
    let lastError: unknown;
    for (let attempt = 1; attempt <= this.#options.attempts; attempt++) {
      try {
        const res = await this.#authorized(ref, url, headers);
        if (res.status >= 500 && attempt < this.#options.attempts) {
          await res.body?.cancel();
          lastError = new RegistryError(`${url}: HTTP ${res.status}`, res.status);
        } else if (!res.ok) {
          const text = (await res.text().catch(() => "")).slice(0, 300).trim();
          throw new RegistryError(`${url}: HTTP ${res.status}${text ? `: ${text}` : ""}`, res.status);
        } else {
          return res;
        }
      } catch (error) {
        if (error instanceof RegistryError && error.status !== undefined && error.status < 500) throw error;
        lastError = error;
      }
      if (attempt < this.#options.attempts) await sleep(this.#options.backoffMs * 2 ** (attempt - 1));
    }
    if (lastError instanceof RegistryError) throw lastError;
    const failure = new RegistryError(`${url}: ${describeNetworkError(lastError, ref.host, this.#options.timeoutMs)}`, undefined, { cause: lastError });
    this.#unreachable.set(ref.host, failure.message.slice(url.length + 2));
    throw failure;
  }

  /** One request with whatever auth the registry asks for, following redirects by hand. */
  async #authorized(ref: ImageReference, url: string, headers: Record<string, string>): Promise<Response> {
    const scopeKey = `${ref.host}/${ref.repository}`;
    const creds = this.#options.credentials?.(ref.host, ref.repository);
    let auth = this.#cachedToken(scopeKey);
    // Only the registry itself may ask for its credentials: a redirect target (blob storage,
    // a CDN) that answers 401 would otherwise receive them, or hand us a token of its own.
    const own = async (answer: { res: Response; origin: string }) => {
      if (answer.res.status === 401 && answer.origin !== new URL(url).origin) {
        await answer.res.body?.cancel();
        throw new RegistryError(`${url}: redirected to ${answer.origin}, which asks for authentication; registry credentials are never sent to another origin`, 401);
      }
      return answer.res;
    };
    let res = await own(await this.#follow(url, headers, auth));
    if (res.status === 401) {
      await res.body?.cancel();
      const challenge = parseChallenge(res.headers.get("www-authenticate"));
      const hint = creds ? undefined : this.#options.credentialHint?.(ref.host);
      if (challenge?.scheme === "basic") {
        if (!creds) throw new RegistryError(`${ref.host} needs a username and password (Basic auth)${hint ? `; ${hint}` : ""}`, 401);
        auth = basicAuth(creds);
      } else if (challenge?.scheme === "bearer") {
        auth = await this.#token(scopeKey, challenge, `repository:${ref.repository}:pull`, creds, new URL(url));
      } else {
        throw new RegistryError(`${url}: HTTP 401 with an authentication scheme we cannot answer`, 401);
      }
      res = await own(await this.#follow(url, headers, auth));
      if (res.status === 401 || res.status === 403) {
        await res.body?.cancel();
        throw new RegistryError(
          `${ref.host} refused ${creds ? `the credentials of ${creds.username}` : "anonymous access"} for ${ref.repository} (HTTP ${res.status})${hint ? `; ${hint}` : ""}`,
          res.status,
        );
      }
    }
    return res;
  }

  /** Follows redirects manually: Authorization goes only to the registry's own origin. */
  async #follow(url: string, headers: Record<string, string>, auth: string | undefined): Promise<{ res: Response; origin: string }> {
    const origin = new URL(url).origin;
    let current = url;
    for (let hop = 0; hop <= MAX_REDIRECTS; hop++) {
      const sameOrigin = new URL(current).origin === origin;
      const started = Date.now();
      const res = await fetch(current, {
        headers: { ...headers, ...(auth && sameOrigin ? { Authorization: auth } : {}) },
        redirect: "manual",
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      this.#log(`registry GET ${current} ${res.status} ${Date.now() - started} ms`);
      const location = res.headers.get("location");
      if (res.status < 300 || res.status >= 400 || !location) return { res, origin: new URL(current).origin };
      await res.body?.cancel();
      current = new URL(location, current).toString();
    }
    throw new RegistryError(`${url}: more than ${MAX_REDIRECTS} redirects`);
  }

  #cachedToken(key: string): string | undefined {
    const token = this.#tokens.get(key);
    return token && token.expires > Date.now() ? token.value : undefined;
  }

  async #token(key: string, challenge: { realm: string; service?: string }, scope: string, creds: Credentials | undefined, registry: URL) {
    let realm: URL;
    try {
      realm = new URL(challenge.realm);
    } catch {
      throw new RegistryError(`${registry.host} names a token realm that is not a URL: ${challenge.realm.slice(0, 100)}`);
    }
    if (realm.protocol !== "https:" && (registry.protocol === "https:" || realm.protocol !== "http:")) {
      throw new RegistryError(`${registry.host} names the token realm ${realm.origin}; credentials go over HTTPS only (or plain HTTP to a --plain-http registry)`);
    }
    if (challenge.service) realm.searchParams.set("service", challenge.service);
    realm.searchParams.set("scope", scope);
    const started = Date.now();
    const res = await fetch(realm, {
      headers: creds ? { Authorization: basicAuth(creds) } : {},
      signal: AbortSignal.timeout(this.#options.timeoutMs),
    }).catch((error: unknown) => {
      throw new RegistryError(`token service ${realm.origin}: ${describeNetworkError(error, realm.host, this.#options.timeoutMs)}`, undefined, { cause: error });
    });
    this.#log(`registry GET ${realm.origin}${realm.pathname} (token for ${scope}) ${res.status} ${Date.now() - started} ms`);
    if (!res.ok) {
      await res.body?.cancel();
      throw new RegistryError(
        `token service ${realm.origin} refused ${creds ? `the credentials of ${creds.username}` : "an anonymous token"} for ${scope} (HTTP ${res.status})`,
        res.status,
      );
    }
    const body = (await res.json().catch(() => ({}))) as { token?: string; access_token?: string; expires_in?: number };
    const token = body.token ?? body.access_token;
    if (!token) throw new RegistryError(`token service ${realm.origin} answered without a token`);
    // Renew a little before expiry (the spec's default lifetime is 60 seconds).
    const expiresIn = body.expires_in ?? 60;
    const lifetime = Math.max(0.5, expiresIn > 10 ? expiresIn - 5 : expiresIn / 2) * 1000;
    const value = `Bearer ${token}`;
    this.#tokens.set(key, { value, expires: Date.now() + lifetime });
    return value;
  }
}

/** What went wrong under fetch's "fetch failed", in words an operator can act on. */
export function describeNetworkError(error: unknown, host: string, timeoutMs: number): string {
  const e = error as { name?: string; message?: string; cause?: { code?: string; message?: string } };
  if (e?.name === "TimeoutError" || e?.name === "AbortError") return `no answer within ${timeoutMs / 1000} s (--registry-timeout)`;
  const code = e?.cause?.code ?? "";
  const detail = e?.cause?.message ?? e?.message ?? String(error);
  if (code === "ENOTFOUND" || code === "EAI_AGAIN") return `the DNS name ${host.replace(/:\d+$/, "")} was not found (${code})`;
  if (code === "ECONNREFUSED") return `connection refused by ${host} (nothing listens there)`;
  if (code === "ECONNRESET" || code === "UND_ERR_SOCKET") return `the connection to ${host} was reset`;
  if (code === "ETIMEDOUT" || code === "UND_ERR_CONNECT_TIMEOUT") return `connecting to ${host} timed out`;
  if (code === "ERR_SSL_WRONG_VERSION_NUMBER" || code === "ERR_SSL_PACKET_LENGTH_TOO_LONG" || /wrong version number|packet length too long/i.test(detail)) {
    return `the server answered HTTP to an HTTPS request: use --plain-http ${host}`;
  }
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/.test(code)) {
    return `TLS: ${code} (${detail}); a private CA is trusted with NODE_EXTRA_CA_CERTS=<ca.pem>`;
  }
  return code ? `${detail} (${code})` : detail;
}

async function readBounded(res: Response, max: number, what: string): Promise<Uint8Array> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  if (declared > max) {
    await res.body?.cancel();
    throw new RegistryError(`${what} is ${declared} bytes, over the ${max} byte limit`);
  }
  const chunks: Uint8Array[] = [];
  let total = 0;
  for await (const chunk of res.body ?? []) {
    total += chunk.length;
    if (total > max) throw new RegistryError(`${what} is over the ${max} byte limit`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, total);
}
