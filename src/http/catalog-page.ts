import type { CatalogPlugin, CatalogVersion } from "../core/catalog.ts";
import type { ClusterView } from "../core/cluster-check.ts";
import type { RenderedReadme } from "./markdown.ts";
import { html, Html } from "./render.ts";

/**
 * The catalog pages: every plugin with its versions, the exact URL, a WasmPlugin snippet and
 * the Console URL pattern for this server's address. Self-contained (inline CSS and script,
 * no outside asset) so it works in an air-gapped site; everything from the store is escaped.
 */

const STYLE = `
:root{color-scheme:light dark;--muted:#6b7280;--line:#d1d5db;--accent:#2563eb}
*{box-sizing:border-box}body{font:15px/1.5 system-ui,sans-serif;margin:0 auto;max-width:72rem;padding:1rem}
header{display:flex;flex-wrap:wrap;gap:.5rem 1rem;align-items:baseline}h1{font-size:1.5rem;margin:.5rem 0}
code,pre,input.copy{font:13px/1.4 ui-monospace,monospace}pre{overflow-x:auto;padding:.5rem;border:1px solid var(--line);border-radius:4px;margin:.25rem 0}
.muted{color:var(--muted)}.row{display:flex;gap:.5rem;align-items:center;flex-wrap:wrap}
input.copy{flex:1;min-width:12rem;padding:.3rem;border:1px solid var(--line);border-radius:4px;background:transparent;color:inherit}
button{font:inherit;padding:.25rem .6rem;border:1px solid var(--accent);border-radius:4px;background:transparent;color:var(--accent);cursor:pointer}
button:focus-visible,input:focus-visible,a:focus-visible,summary:focus-visible{outline:2px solid var(--accent);outline-offset:2px}
#filter{width:100%;max-width:28rem;padding:.45rem;font:inherit;border:1px solid var(--line);border-radius:4px}
.plugin{border-top:1px solid var(--line);padding:.75rem 0}.plugin h2{font-size:1.15rem;margin:0}
.versions{list-style:none;padding:0;margin:.25rem 0}.versions>li{margin:.4rem 0}
details{margin:.25rem 0 .5rem}summary{cursor:pointer}dl{display:grid;grid-template-columns:max-content 1fr;gap:.1rem 1rem;margin:.25rem 0}dd{margin:0;overflow-wrap:anywhere}
.table{overflow-x:auto}table{border-collapse:collapse}td,th{border:1px solid var(--line);padding:.2rem .5rem;text-align:left;vertical-align:top}
.readme{border-top:1px solid var(--line);margin-top:1rem}[hidden]{display:none}
.sr-only{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
`;

// Filter and copy buttons; the page works without it (every plugin listed, fields selectable).
const SCRIPT = `
const filter = document.getElementById("filter");
const count = document.getElementById("count");
if (filter) filter.addEventListener("input", () => {
  const words = filter.value.trim().toLowerCase().split(/\\s+/).filter(Boolean);
  let shown = 0;
  for (const el of document.querySelectorAll(".plugin")) {
    const match = words.every((w) => el.dataset.search.includes(w));
    el.hidden = !match;
    if (match) shown++;
  }
  count.textContent = shown + " of " + document.querySelectorAll(".plugin").length + " plugins";
});
const status = document.getElementById("status");
document.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-copy]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copy);
  const text = source.value ?? source.textContent;
  try { await navigator.clipboard.writeText(text); } catch { source.select?.(); document.execCommand("copy"); }
  status.textContent = "Copied " + (button.getAttribute("aria-label") || "").replace(/^Copy /, "");
});
`;

export interface PageContext {
  /** This server's origin as the client sees it, for URLs to paste into Higress. */
  readonly origin: string;
  readonly nonce: string;
}

export function catalogCsp(nonce: string): string {
  // Only our own inline script and style run; stored content (READMEs) can add neither.
  return `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`;
}

/** The shell of every page we render: one stylesheet, one script, both under the response's nonce. */
export function htmlDocument(ctx: PageContext, title: string, body: Html): string {
  return html`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${title}</title>
<link rel="icon" href="data:,">
<style nonce="${ctx.nonce}">${new Html(STYLE)}</style>
</head>
<body>
${body}
<p id="status" class="sr-only" role="status" aria-live="polite"></p>
<script nonce="${ctx.nonce}">${new Html(SCRIPT)}</script>
</body>
</html>
`.value;
}

/** A read-only field with a copy button; the field keeps the text selectable without script. */
function copyField(label: string, value: string, multiline = false): Html {
  // Labels are unique on a page, and this encoding keeps them apart (`key-auth 2.0.0` and `key auth-2.0.0` differ).
  const id = `copy-${label.replace(/[^A-Za-z0-9]/g, (c) => `_${c.charCodeAt(0).toString(16).padStart(4, "0")}`)}`;
  const field = multiline
    ? html`<pre id="${id}" tabindex="0" aria-label="${label}">${value}</pre>`
    : html`<input class="copy" id="${id}" readonly value="${value}" aria-label="${label}">`;
  return html`<div class="row">${field}<button type="button" data-copy="${id}" aria-label="Copy ${label}">Copy</button></div>`;
}

export function wasmPluginYaml(origin: string, name: string, v: CatalogVersion): string {
  return [
    "apiVersion: extensions.higress.io/v1alpha1",
    "kind: WasmPlugin",
    "metadata:",
    `  name: ${name}`,
    "  namespace: higress-system",
    "spec:",
    `  url: ${origin}${v.url}`,
    ...(v.sha256 ? [`  sha256: ${v.sha256}`] : []),
    "  phase: UNSPECIFIED_PHASE",
    "  priority: 100",
  ].join("\n");
}

function formatSize(bytes: number | undefined): string {
  if (bytes === undefined) return "unknown size";
  return bytes >= 1024 * 1024 ? `${(bytes / 1048576).toFixed(1)} MiB` : `${(bytes / 1024).toFixed(1)} KiB`;
}

/** Who in the cluster uses a version, from the last recorded check. */
function usedBy(cluster: ClusterView | undefined, plugin: string, version: string): Html | string {
  if (!cluster) return "";
  const use = cluster.usage.get(`${plugin}/${version}`);
  if (!use) return html` <span class="muted">unused in the cluster</span>`;
  return html` <span class="used" title="${use.from.join("\n")}">used by ${use.count} ${use.count === 1 ? "resource" : "resources"}</span>`;
}

function versionItem(ctx: PageContext, plugin: CatalogPlugin, v: CatalogVersion, cluster: ClusterView | undefined): Html {
  const url = `${ctx.origin}${v.url}`;
  return html`<li>
<strong>${v.version}</strong>${v.aliasOf ? html` <span class="muted">alias of ${v.aliasOf}</span>` : ""} <span class="muted">${formatSize(v.size)}</span>${usedBy(cluster, plugin.name, v.version)}
${copyField(`URL of ${plugin.name} ${v.version}`, url)}
<details><summary>WasmPlugin YAML and details</summary>
${copyField(`WasmPlugin YAML for ${plugin.name} ${v.version}`, wasmPluginYaml(ctx.origin, plugin.name, v), true)}
<dl>
<dt>SHA-256</dt><dd><code>${v.sha256 ?? "unknown"}</code></dd>
<dt>Published</dt><dd>${v.lastModified ?? "unknown"}</dd>
<dt>Source</dt><dd>${v.source ?? "unknown"}</dd>
<dt>Files</dt><dd><a href="/plugins/${plugin.name}/${v.version}/">/plugins/${plugin.name}/${v.version}/</a></dd>
</dl>
</details>
</li>`;
}

function consolePattern(ctx: PageContext): Html {
  return html`<section aria-labelledby="console"><h2 id="console">Higress Console</h2>
<p class="muted">Set in the Console's environment to install every plugin from this server:</p>
${copyField("Console URL pattern", `HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN=${ctx.origin}/plugins/\${name}/\${version}/plugin.wasm`)}
</section>`;
}

/** The last recorded cluster check: what would fail at a gateway, before a rollout finds out. */
function clusterSection(cluster: ClusterView | undefined): Html | string {
  if (!cluster) return "";
  const s = cluster.summary;
  const problems = cluster.problems;
  return html`<section aria-labelledby="cluster"><h2 id="cluster">Cluster</h2>
<p${s.errors > 0 ? html` role="alert"` : ""}>Checked ${cluster.checkedAt}${cluster.cluster ? html` against ${cluster.cluster}` : ""}: ${s.references} references, ${s.ok} fine, <strong>${s.errors} would fail</strong>, ${s.warnings} warnings; ${s.unreferenced} stored versions unused.</p>
${problems.length > 0
  ? html`<details${s.errors > 0 ? html` open` : ""}><summary>${problems.length} to look at</summary><div class="table"><table><thead><tr><th>Severity</th><th>Problem</th><th>Where</th><th>URL</th><th>Why</th></tr></thead><tbody>
${problems.map((p) => html`<tr><td>${p.severity}</td><td>${p.status}</td><td>${p.from}</td><td><code>${p.url}</code></td><td>${p.message}</td></tr>`)}
</tbody></table></div></details>`
  : ""}
<p class="muted">JSON: <a href="/api/v1/cluster">/api/v1/cluster</a></p>
</section>`;
}

export function catalogPage(ctx: PageContext, plugins: readonly CatalogPlugin[], cluster?: ClusterView): string {
  return htmlDocument(
    ctx,
    "Higress plugins",
    html`<header><h1>Higress plugins</h1><span id="count" class="muted">${plugins.length} plugins</span></header>
<p><label for="filter">Filter plugins</label><br><input id="filter" type="search" placeholder="name or version" autocomplete="off"></p>
${consolePattern(ctx)}
${clusterSection(cluster)}
<main>
${plugins.map(
  (p) => html`<article class="plugin" data-search="${[p.name, ...p.versions.map((v) => v.version)].join(" ").toLowerCase()}">
<h2><a href="${p.url}">${p.name}</a></h2>${p.problem ? html`<p role="alert">${p.problem}</p>` : ""}
<ul class="versions">${p.versions.map((v) => versionItem(ctx, p, v, cluster))}</ul>
</article>`,
)}
</main>
<p class="muted">JSON: <a href="/api/v1/plugins">/api/v1/plugins</a></p>`,
  );
}

export function pluginPage(ctx: PageContext, plugin: CatalogPlugin, readme: RenderedReadme & { file: string } | undefined, cluster?: ClusterView): string {
  return htmlDocument(
    ctx,
    `${plugin.name} - Higress plugins`,
    html`<p><a href="/plugins/">All plugins</a></p>
<header><h1>${plugin.name}</h1></header>${plugin.problem ? html`<p role="alert">${plugin.problem}</p>` : ""}
<main>
<article class="plugin" data-search="${plugin.name}">
<ul class="versions">${plugin.versions.map((v) => versionItem(ctx, plugin, v, cluster))}</ul>
</article>
${readme ? html`<section class="readme" aria-labelledby="readme"><h2 id="readme">${readme.file}</h2>${readme.title ? html`<p><strong>${readme.title}</strong></p>` : ""}${readme.description ? html`<p>${readme.description}</p>` : ""}${new Html(readme.html)}</section>` : ""}
</main>
<p class="muted">JSON: <a href="/api/v1/plugins/${plugin.name}">/api/v1/plugins/${plugin.name}</a></p>`,
  );
}
