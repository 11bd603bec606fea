/** Small renderers shared by listings and errors: escaped HTML, JSON, plain text. */

const ESCAPES: Readonly<Record<string, string>> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

export const escapeHtml = (value: string) => value.replace(/[&<>"']/g, (c) => ESCAPES[c]!);

/** Builds HTML from a template; every interpolated value is escaped unless it is already `Html`. */
export class Html {
  constructor(readonly value: string) {}
  toString() {
    return this.value;
  }
}

export function html(strings: TemplateStringsArray, ...values: unknown[]): Html {
  let out = strings[0]!;
  values.forEach((value, i) => {
    const parts = Array.isArray(value) ? value : [value];
    out += parts.map((p) => (p instanceof Html ? p.value : escapeHtml(String(p ?? "")))).join("");
    out += strings[i + 1]!;
  });
  return new Html(out);
}

export function page(title: string, body: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<style>body{font:15px/1.5 system-ui,sans-serif;margin:2rem auto;max-width:60rem;padding:0 1rem}code{font-size:.9em}td{padding:.1rem 1rem .1rem 0}</style>
</head>
<body>
${body}
</body>
</html>
`.value;
}

/** Security headers for every response we generate. */
export const PAGE_HEADERS = {
  // No script, no outside resource: the pages are plain HTML and must work air-gapped.
  "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'",
} as const;
