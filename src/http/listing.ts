import type { Context } from "hono";
import { LRUCache } from "lru-cache";
import { describeVersions } from "../core/versions.ts";
import { listFiles, listVersions } from "../plugins/read.ts";
import type { CatalogPlugin } from "../core/catalog.ts";
import { loadCatalog, loadPlugin } from "../plugins/catalog.ts";
import { NotFoundError } from "../core/errors.ts";
import { clusterViewJson, parseClusterCheck, type ClusterView } from "../core/cluster-check.ts";
import { CLUSTER_CHECK, fileKey } from "../core/layout.ts";
import { prefersJson } from "../core/negotiate.ts";
import { discard, readBytes, type Store } from "../storage/store.ts";
import { catalogCsp, catalogPage, htmlDocument, pluginPage, type PageContext } from "./catalog-page.ts";
import { MAX_README_BYTES, renderReadme, type RenderedReadme } from "./markdown.ts";
import { html } from "./render.ts";

/**
 * The catalog (/, /plugins/, /plugins/<name>/ and /api/v1/...) and the file listing of a
 * version: HTML for browsers, JSON for `Accept: application/json` and under /api/v1.
 */

const LISTING_CACHE = "no-cache"; // what exists changes with every upload
/** Rendered READMEs per object and ETag: rendering happens once per published README, not per page view. */
const rendered = new LRUCache<string, RenderedReadme & { file: string }>({ max: 200 });

/**
 * The origin the client used, for URLs to paste into Higress: behind an ingress or load
 * balancer that terminates TLS, X-Forwarded-Proto and -Host say what it was. A forged value
 * only changes the text shown to the client that forged it (and it is escaped).
 */
export function publicOrigin(url: string, headers: Headers): string {
  const own = new URL(url);
  const proto = headers.get("x-forwarded-proto")?.split(",")[0]?.trim().toLowerCase();
  const host = headers.get("x-forwarded-host")?.split(",")[0]?.trim();
  const scheme = proto === "http" || proto === "https" ? proto : own.protocol.slice(0, -1);
  const authority = host && /^[A-Za-z0-9.-]+(:\d{1,5})?$|^\[[0-9A-Fa-f:]+\](:\d{1,5})?$/.test(host) ? host : own.host;
  return `${scheme}://${authority}`;
}

function pageContext(c: Context): PageContext {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return { origin: publicOrigin(c.req.url, c.req.raw.headers), nonce: btoa(String.fromCharCode(...bytes)) };
}

function html200(c: Context, ctx: PageContext, body: string): Response {
  c.header("Cache-Control", LISTING_CACHE);
  c.header("Vary", "Accept");
  return c.html(body, 200, { "Content-Security-Policy": catalogCsp(ctx.nonce) });
}

function json200(c: Context, body: unknown): Response {
  c.header("Cache-Control", LISTING_CACHE);
  c.header("Vary", "Accept");
  return c.json(body);
}

async function requirePlugin(store: Store, name: string): Promise<CatalogPlugin> {
  const plugin = await loadPlugin(store, name);
  if (!plugin) throw new NotFoundError(`no plugin named "${name}"; the list of plugins is at /plugins/`, { plugin: name });
  return plugin;
}

/** The README of the newest real version, rendered safely; READMEs are untrusted. */
async function readme(store: Store, plugin: CatalogPlugin): Promise<(RenderedReadme & { file: string }) | undefined> {
  const newest = plugin.versions.find((v) => !v.aliasOf);
  if (!newest) return undefined;
  const files = (await listFiles(store, plugin.name, newest.version)).map((f) => f.key.slice(f.key.lastIndexOf("/") + 1));
  const file = ["README_EN.md", "README.md"].find((f) => files.includes(f));
  if (!file) return undefined;
  const object = await store.get(fileKey(plugin.name, newest.version, file), { range: { kind: "bounded", first: 0, last: MAX_README_BYTES - 1 } });
  if (!object) return undefined;
  const key = `${object.info.key}|${object.info.etag}`;
  const hit = rendered.get(key);
  if (hit) {
    discard(object);
    return hit;
  }
  const result = { file: `${file} (${newest.version})`, ...renderReadme(new TextDecoder().decode(await readBytes(object))) };
  rendered.set(key, result);
  return result;
}

/** The uploader's last recorded cluster check; undefined when none is recorded (or it cannot be read). */
export async function loadClusterView(store: Store): Promise<ClusterView | undefined> {
  const object = await store.get(CLUSTER_CHECK);
  return object ? parseClusterCheck(new TextDecoder().decode(await readBytes(object))) : undefined;
}

export async function catalog(c: Context, store: Store, api = false): Promise<Response> {
  const plugins = await loadCatalog(store);
  if (api || prefersJson(c.req.header("accept"))) return json200(c, { plugins });
  const ctx = pageContext(c);
  return html200(c, ctx, catalogPage(ctx, plugins, await loadClusterView(store)));
}

export async function pluginDetail(c: Context, store: Store, name: string, api = false): Promise<Response> {
  const plugin = await requirePlugin(store, name);
  if (api || prefersJson(c.req.header("accept"))) return json200(c, plugin);
  const ctx = pageContext(c);
  return html200(c, ctx, pluginPage(ctx, plugin, await readme(store, plugin), await loadClusterView(store)));
}

/** `/api/v1/cluster`: what the last recorded check found (which versions the cluster uses, where, and what is broken). */
export async function clusterCheck(c: Context, store: Store): Promise<Response> {
  const view = await loadClusterView(store);
  if (!view) throw new NotFoundError("no cluster check is recorded in this store; run plugin-uploader check --from-cluster --record");
  return json200(c, clusterViewJson(view));
}

export async function versionFiles(c: Context, store: Store, name: string, version: string): Promise<Response> {
  let files = await listFiles(store, name, version);
  let aliasOf: string | undefined;
  if (files.length === 0) {
    const found = await listVersions(store, name);
    aliasOf = found?.aliases[version];
    if (aliasOf) files = await listFiles(store, name, aliasOf);
    if (files.length === 0) {
      throw new NotFoundError(
        found
          ? `plugin "${name}" has no version "${version}"; versions: ${describeVersions(found)}`
          : `no plugin named "${name}"; the list of plugins is at /plugins/`,
        { plugin: name, version },
      );
    }
  }
  const base = `/plugins/${name}/${version}`;
  const entries = files.map((f) => {
    const file = f.key.slice(f.key.lastIndexOf("/") + 1);
    return { name: file, url: `${base}/${file}`, size: f.size, lastModified: f.lastModified.toISOString() };
  });
  if (prefersJson(c.req.header("accept"))) return json200(c, { name, version, ...(aliasOf ? { aliasOf } : {}), files: entries });
  const ctx = pageContext(c);
  return html200(
    c,
    ctx,
    htmlDocument(
      ctx,
      `${name} ${version}`,
      html`<p><a href="/plugins/${name}/">All versions of ${name}</a></p>
<h1>${name} ${version}${aliasOf ? html` <span class="muted">alias of ${aliasOf}</span>` : ""}</h1>
<div class="table"><table><thead><tr><th>File</th><th>Bytes</th><th>Last modified</th></tr></thead><tbody>
${entries.map((e) => html`<tr><td><a href="${e.url}">${e.name}</a></td><td>${e.size}</td><td>${e.lastModified}</td></tr>`)}
</tbody></table></div>`,
    ),
  );
}
