/** Content negotiation, RFC 9110 sections 12.5.1 (Accept) and 12.5.3 (Accept-Encoding). */

interface Preference {
  readonly token: string;
  readonly q: number;
}

function parsePreferences(header: string | null | undefined): Preference[] {
  if (!header) return [];
  return header.split(",").flatMap((part) => {
    const [token, ...params] = part.split(";").map((s) => s.trim().toLowerCase());
    if (!token) return [];
    const qParam = params.find((p) => p.startsWith("q="));
    const q = qParam ? Number(qParam.slice(2)) : 1;
    return Number.isFinite(q) ? [{ token, q }] : [];
  });
}

function quality(prefs: readonly Preference[], candidates: readonly string[]): number {
  // The most specific match decides (section 12.5.1): the first candidate found wins.
  for (const candidate of candidates) {
    const hit = prefs.find((p) => p.token === candidate);
    if (hit) return hit.q;
  }
  return 0;
}

/** True when the client may receive gzip: listed with q > 0, or covered by `*`. */
export function acceptsGzip(header: string | null | undefined): boolean {
  return quality(parsePreferences(header), ["gzip", "x-gzip", "*"]) > 0;
}

/** True when the client prefers JSON to HTML (browsers send text/html first; scripts ask for JSON). */
export function prefersJson(header: string | null | undefined): boolean {
  const prefs = parsePreferences(header);
  const json = quality(prefs, ["application/json", "application/*"]);
  const html = quality(prefs, ["text/html", "text/*", "*/*"]);
  return json > 0 && json > html;
}
