import { BusyError, ForbiddenError, NotFoundError, TooManyRequestsError, UnauthorizedError } from "../core/errors.ts";
import { routeKind } from "../core/routes.ts";
import { BUSY_RETRY_AFTER_SECONDS } from "./authenticator.ts";
import type { AccessSettings } from "./settings.ts";

export const REALM = "higress-plugin-server";

export interface AccessRequest {
  readonly pathname: string;
  readonly authorization: string | undefined;
  /** The client's address, X-Forwarded-For already resolved; undefined when unknown. */
  readonly client: string | undefined;
}

/** True when nothing is restricted, so requests need no check at all. */
export const unrestricted = (s: AccessSettings | undefined): boolean =>
  !s || (!s.auth && !s.allow && s.catalog === "public");

/**
 * Decides whether a request may proceed; throws the refusal otherwise. `pathname` must be the path
 * exactly as the router matches it (percent-encoding kept), so that what is classified here is
 * what is served. Health checks stay open whatever is configured: the kubelet carries no
 * credentials. With credentials set, everything else needs them unless the catalog is public on
 * purpose, unknown paths included: no spelling of a path decides whether they are asked for.
 * Metrics on the main port take the download credentials (METRICS_PORT keeps them open on a port
 * of their own instead).
 */
export async function guard(settings: AccessSettings | undefined, request: AccessRequest): Promise<void> {
  if (unrestricted(settings)) return;
  const kind = routeKind(request.pathname);
  if (kind === "health") return;
  const s = settings!;
  if (s.allow && !s.allow.contains(request.client)) {
    throw new ForbiddenError(`address ${request.client ?? "unknown"} is not allowed (ALLOW_CIDRS)`);
  }
  const catalog = kind === "catalog" || kind === "api";
  if (catalog && s.catalog === "off") throw new NotFoundError("the catalog is turned off on this server (CATALOG=off)");
  if (!s.auth || (catalog && s.catalog === "public")) return;
  const verdict = await s.auth.check(request.authorization, request.client);
  if (verdict === "ok") return;
  if (verdict === "throttled") {
    throw new TooManyRequestsError("too many failed credential checks from this address; try again later", s.auth.retryAfter(request.client));
  }
  if (verdict === "busy") throw new BusyError("too many credential checks at once; try again shortly", BUSY_RETRY_AFTER_SECONDS);
  throw new UnauthorizedError(
    verdict === "missing" ? "credentials required: send HTTP Basic (user:password@ in the URL) or a bearer token" : "wrong credentials",
    s.auth.challenge(REALM),
  );
}

/**
 * RFC 9111 §3.5: a shared cache may store a response to an authorized request when it is
 * `public`. Under access control nothing must reach a cache that would hand it to anyone else.
 */
export function privateCacheControl(value: string): string {
  return /\bpublic\b/i.test(value) ? value.replace(/\bpublic\b/i, "private") : /\bprivate\b/i.test(value) ? value : `private, ${value}`;
}
