/**
 * What a request path is for, from its shape alone (before validation, so it must stay a small
 * fixed set: metrics label requests with it, and access rules are decided by it).
 */
export type RouteKind = "plugin" | "metadata" | "file" | "catalog" | "api" | "health" | "metrics" | "other";

export function routeKind(pathname: string): RouteKind {
  if (pathname === "/" || pathname === "/plugins" || pathname.startsWith("/plugins/")) {
    const segments = pathname.split("/").filter(Boolean);
    if (segments.length < 4) return "catalog";
    const file = segments[3];
    if (file === "plugin.wasm") return "plugin";
    if (file === "metadata.txt" || file === "metadata.json") return "metadata";
    return "file";
  }
  if (pathname === "/api" || pathname.startsWith("/api/")) return "api";
  if (pathname === "/healthz" || pathname === "/readyz") return "health";
  if (pathname === "/metrics") return "metrics";
  return "other";
}

/** Routes whose bytes are plugins: what download credentials protect. */
export const isDownload = (kind: RouteKind): boolean => kind === "plugin" || kind === "metadata" || kind === "file";
