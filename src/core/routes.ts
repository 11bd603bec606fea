/**
 * What a request path is for, from its shape alone (before validation, so it must stay a small
 * fixed set: metrics label requests with it, and access rules are decided by it).
 */
export type RouteKind = "plugin" | "metadata" | "file" | "catalog" | "api" | "health" | "metrics" | "other";

export function routeKind(pathname: string): RouteKind {
  if (pathname === "/" || pathname === "/plugins" || pathname.startsWith("/plugins/")) {
    const file = nonEmptySegment(pathname, 3);
    if (file === undefined) return "catalog";
    if (file === "plugin.wasm") return "plugin";
    if (file === "metadata.txt" || file === "metadata.json") return "metadata";
    return "file";
  }
  if (pathname === "/api" || pathname.startsWith("/api/")) return "api";
  if (pathname === "/healthz" || pathname === "/readyz") return "health";
  if (pathname === "/metrics") return "metrics";
  return "other";
}

/**
 * The path of a request URL exactly as sent (percent-encoding kept, no query). Both the access
 * guard and the router work on it: a router that decoded `/%61pi/v1/plugins` into `/api/v1/plugins`
 * would serve what the guard classified as an unknown path.
 */
export function rawPath(url: string): string {
  const start = url.indexOf("/", url.indexOf("://") + 3);
  if (start < 0) return "/";
  const end = url.indexOf("?", start);
  return url.slice(start, end < 0 ? undefined : end);
}

/** Routes whose bytes are plugins: what download credentials protect. */
export const isDownload = (kind: RouteKind): boolean => kind === "plugin" || kind === "metadata" || kind === "file";

/** The n-th non-empty `/`-separated segment, without splitting the whole path (this runs for every request). */
function nonEmptySegment(path: string, n: number): string | undefined {
  let start = 0;
  for (let i = 0; i <= path.length; i++) {
    if (i < path.length && path.charCodeAt(i) !== 47) continue;
    if (i > start && n-- === 0) return path.slice(start, i);
    start = i + 1;
  }
  return undefined;
}
