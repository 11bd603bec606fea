import { AddressList } from "./addresses.ts";
import { Authenticator, type AuthenticatorOptions } from "./authenticator.ts";
import { parseHtpasswd, parseTokens } from "./credentials.ts";

/** Who may read the catalog (`/`, `/api/v1/...`, listings under `/plugins`): anyone, those who may download, or nobody. */
export type CatalogAccess = "public" | "auth" | "off";

export interface AccessSettings {
  /** undefined: downloads are open. */
  readonly auth: Authenticator | undefined;
  readonly catalog: CatalogAccess;
  /** undefined: every address may connect. */
  readonly allow: AddressList | undefined;
  /** Peers whose X-Forwarded-For and X-Request-Id are believed. */
  readonly trustedProxies: AddressList | undefined;
}

/** A setting's text and the name to blame in messages (`AUTH_BASIC_FILE=/etc/...`, or the worker's secret `AUTH_BASIC`). */
export interface Source {
  readonly text: string;
  readonly from: string;
}

export interface AccessSources {
  readonly basic?: Source;
  readonly tokens?: Source;
  readonly catalog?: Source;
  readonly allow?: Source;
  readonly trustedProxies?: Source;
}

/**
 * Reads the access settings shared by the Node entry and the worker, adding every problem to
 * `problems`. `auth` tunes the Authenticator (the Node entry's bcrypt runs on a thread).
 */
export function accessSettings(sources: AccessSources, problems: string[], auth: AuthenticatorOptions = {}): AccessSettings {
  const attempt = <T>(source: Source | undefined, parse: (text: string) => T): T | undefined => {
    if (!source) return undefined;
    try {
      return parse(source.text);
    } catch (error) {
      problems.push(`${source.from} ${(error as Error).message}`);
      return undefined;
    }
  };
  const users = attempt(sources.basic, parseHtpasswd);
  const tokens = attempt(sources.tokens, parseTokens);
  if (users?.size === 0) problems.push(`${sources.basic!.from} lists no user`);
  if (tokens?.length === 0) problems.push(`${sources.tokens!.from} lists no token`);
  const authenticator = users?.size || tokens?.length ? new Authenticator(users ?? new Map(), tokens ?? [], auth) : undefined;

  // With credentials set, the catalog is theirs too unless made public on purpose: it names every plugin and version.
  let catalog: CatalogAccess = authenticator ? "auth" : "public";
  if (sources.catalog) {
    const value = sources.catalog.text.trim().toLowerCase();
    if (value === "public" || value === "auth" || value === "off") catalog = value;
    else problems.push(`${sources.catalog.from} must be public, auth or off`);
    if (value === "auth" && !authenticator && !sources.basic && !sources.tokens) {
      problems.push(`${sources.catalog.from} needs credentials: set AUTH_BASIC_FILE or AUTH_TOKENS_FILE (AUTH_BASIC or AUTH_TOKENS on the worker)`);
    }
  }
  return {
    auth: authenticator,
    catalog,
    allow: attempt(sources.allow, AddressList.parse),
    trustedProxies: attempt(sources.trustedProxies, AddressList.parse),
  };
}
