import MarkdownIt from "markdown-it";
import { parse as parseYaml } from "yaml";
import { escapeHtml } from "./render.ts";

/**
 * Plugin READMEs are untrusted (registries, bundles, source trees). They are rendered with
 * markdown-it (CommonMark + GFM tables, linear-time parsing) with raw HTML off, so every tag
 * in the output is one the renderer made; links keep only http(s), mailto and relative
 * targets; images become links (the page loads nothing from outside). Size and line length
 * are capped before parsing, and the page's CSP forbids any script besides its own.
 */

/** Beyond this, the README is cut (and says so). */
export const MAX_README_BYTES = 256 * 1024;
const MAX_LINE = 4096;

const SAFE_URL = /^(https?:\/\/|mailto:|\/|\.{0,2}\/|#)[^\s"'<>]*$/i;

const md = new MarkdownIt("commonmark", { html: false, linkify: false, typographer: false })
  .enable("table")
  .enable("strikethrough");
md.validateLink = (url) => SAFE_URL.test(url) || !/^[a-z][a-z0-9+.-]*:/i.test(url);

// The page owns h1 and h2: README headings are demoted two levels.
md.renderer.rules.heading_open = (tokens, i) => `<h${Math.min(6, Number(tokens[i]!.tag.slice(1)) + 2)}>`;
md.renderer.rules.heading_close = (tokens, i) => `</h${Math.min(6, Number(tokens[i]!.tag.slice(1)) + 2)}>\n`;
md.renderer.rules.link_open = (tokens, i, options, _env, self) => {
  tokens[i]!.attrSet("rel", "nofollow noopener noreferrer");
  return self.renderToken(tokens, i, options);
};
// An image would be a request to wherever the README points: show its text as a link instead.
md.renderer.rules.image = (tokens, i) => {
  const token = tokens[i]!;
  const src = String(token.attrGet("src") ?? "");
  const alt = escapeHtml(String(token.content || src));
  return SAFE_URL.test(src) ? `<a href="${escapeHtml(src)}" rel="nofollow noopener noreferrer">${alt}</a>` : alt;
};
md.renderer.rules.table_open = () => '<div class="table"><table>\n';
md.renderer.rules.table_close = () => "</table></div>\n";

export interface RenderedReadme {
  readonly html: string;
  /** From YAML front matter, when the README has it (every official plugin's does). */
  readonly title?: string;
  readonly description?: string;
}

export function renderReadme(source: string): RenderedReadme {
  let text = source.replace(/\r\n?/g, "\n");
  let truncated = false;
  if (text.length > MAX_README_BYTES) {
    text = text.slice(0, MAX_README_BYTES);
    truncated = true;
  }
  // Lines this long are never prose; cutting them bounds the work of every inline rule.
  text = text
    .split("\n")
    .map((line) => (line.length > MAX_LINE ? `${line.slice(0, MAX_LINE)}…` : line))
    .join("\n");
  const { body, meta } = frontMatter(text);
  let html = md.render(body);
  if (truncated) html += "<p><em>(README cut at 256 KiB)</em></p>\n";
  return { html, ...meta };
}

export function renderMarkdown(source: string): string {
  return renderReadme(source).html;
}

/** `---\n<yaml>\n---\n` at the very start: shown as title and description, never as text. */
function frontMatter(text: string): { body: string; meta: { title?: string; description?: string } } {
  const m = /^---\n([\s\S]{0,16384}?)\n---(?:\n|$)/.exec(text);
  if (!m) return { body: text, meta: {} };
  let data: unknown;
  try {
    data = parseYaml(m[1]!, { schema: "failsafe", maxAliasCount: 0 });
  } catch {
    return { body: text.slice(m[0].length), meta: {} };
  }
  const record = typeof data === "object" && data !== null ? (data as Record<string, unknown>) : {};
  const pick = (k: string) => (typeof record[k] === "string" && record[k] !== "" ? { [k]: (record[k] as string).slice(0, 500) } : {});
  return { body: text.slice(m[0].length), meta: { ...pick("title"), ...pick("description") } };
}
