import type { Context } from "hono";
import { describeVersions, listFiles, listPlugins, listVersions } from "../core/catalog.ts";
import { NotFoundError } from "../core/errors.ts";
import { WASM } from "../core/layout.ts";
import { prefersJson } from "../core/negotiate.ts";
import type { Store } from "../storage/store.ts";
import { html, PAGE_HEADERS, page } from "./render.ts";

/**
 * Directory listings for /plugins/, /plugins/<name>/ and /plugins/<name>/<version>/, as people
 * browsed them on the reference server: HTML for browsers, JSON for `Accept: application/json`.
 */

const LISTING_CACHE = "no-cache"; // what exists changes with every upload

function respond(c: Context, json: unknown, title: string, body: ReturnType<typeof html>): Response {
  c.header("Cache-Control", LISTING_CACHE);
  c.header("Vary", "Accept");
  if (prefersJson(c.req.header("accept"))) return c.json(json);
  return c.html(page(title, body), 200, PAGE_HEADERS);
}

export async function pluginIndex(c: Context, store: Store): Promise<Response> {
  const names = await listPlugins(store);
  const plugins = names.map((name) => ({ name, url: `/plugins/${name}/` }));
  return respond(
    c,
    { plugins },
    "Plugins",
    html`<h1>Plugins</h1>
<p>${names.length} plugin${names.length === 1 ? "" : "s"}. JSON: <code>Accept: application/json</code>.</p>
<ul>${plugins.map((p) => html`<li><a href="${p.url}">${p.name}/</a></li>`)}</ul>`,
  );
}

export async function pluginVersions(c: Context, store: Store, name: string): Promise<Response> {
  const found = await listVersions(store, name);
  if (!found) throw new NotFoundError(`no plugin named "${name}"; the list of plugins is at /plugins/`, { plugin: name });
  const base = `/plugins/${name}`;
  const versions = [
    ...found.versions.map((version) => ({ version, url: `${base}/${version}/${WASM}` })),
    ...Object.entries(found.aliases).map(([version, aliasOf]) => ({ version, aliasOf, url: `${base}/${version}/${WASM}` })),
  ];
  return respond(
    c,
    { name, versions, aliases: found.aliases },
    name,
    html`<h1>${name}</h1>
<p><a href="/plugins/">All plugins</a></p>
<table><thead><tr><th>Version</th><th>Module</th><th></th></tr></thead><tbody>
${versions.map(
  (v) =>
    html`<tr><td><a href="${base}/${v.version}/">${v.version}/</a></td><td><a href="${v.url}">${v.url}</a></td><td>${"aliasOf" in v ? `alias of ${v.aliasOf}` : ""}</td></tr>`,
)}
</tbody></table>`,
  );
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
  return respond(
    c,
    { name, version, ...(aliasOf ? { aliasOf } : {}), files: entries },
    `${name} ${version}`,
    html`<h1>${name} ${version}</h1>
<p><a href="/plugins/${name}/">All versions of ${name}</a>${aliasOf ? ` (alias of ${aliasOf})` : ""}</p>
<table><thead><tr><th>File</th><th>Bytes</th><th>Last modified</th></tr></thead><tbody>
${entries.map((e) => html`<tr><td><a href="${e.url}">${e.name}</a></td><td>${e.size}</td><td>${e.lastModified}</td></tr>`)}
</tbody></table>`,
  );
}
