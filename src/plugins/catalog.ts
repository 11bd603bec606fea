import { InvalidStoreContentError } from "../core/aliases.ts";
import { buildPlugin, fromIndex, parseIndex, type CatalogPlugin, type IndexFile, type Versions } from "../core/catalog.ts";
import { fileKey, INDEX, METADATA_JSON, pluginPrefix } from "../core/layout.ts";
import { parseMetadataJson } from "../core/metadata.ts";
import { isName, isVersion } from "../core/names.ts";
import { readText, type Store } from "../storage/store.ts";
import { listPlugins, listVersions } from "./read.ts";

/**
 * What the catalog shows, for the page, the JSON API and the uploader's checks. Read from the
 * store-wide index.json the uploader keeps (one read); a store without one (the reference tree, a
 * hand-made directory) is listed and its metadata.json files read one by one.
 */

async function readIndex(store: Store): Promise<IndexFile | undefined> {
  const object = await store.get(INDEX);
  return object ? parseIndex(await readText(object)) : undefined;
}

async function fromStore(store: Store, name: string): Promise<CatalogPlugin | undefined> {
  let found;
  let problem: string | undefined;
  try {
    found = await listVersions(store, name);
  } catch (error) {
    if (!(error instanceof InvalidStoreContentError)) throw error;
    problem = error.message;
    found = { versions: (await store.list(pluginPrefix(name))).prefixes.filter(isVersion), aliases: {} };
  }
  if (!found) return undefined;
  const versions: Versions = {};
  await Promise.all(
    found.versions.map(async (v) => {
      const object = await store.get(fileKey(name, v, METADATA_JSON));
      versions[v] = object ? (parseMetadataJson(await readText(object)) ?? null) : null;
    }),
  );
  const plugin = buildPlugin(name, versions, found.aliases);
  return problem ? { ...plugin, problem } : plugin;
}

export async function loadCatalog(store: Store): Promise<CatalogPlugin[]> {
  const index = await readIndex(store);
  if (index) {
    return Object.entries(index.plugins!)
      .filter(([name]) => isName(name))
      .map(([name, entry]) => fromIndex(name, entry))
      .sort((a, b) => a.name.localeCompare(b.name));
  }
  const plugins = await Promise.all((await listPlugins(store)).map((name) => fromStore(store, name)));
  return plugins.filter((p): p is CatalogPlugin => p !== undefined);
}

export async function loadPlugin(store: Store, name: string): Promise<CatalogPlugin | undefined> {
  const index = await readIndex(store);
  const entry = index?.plugins && Object.hasOwn(index.plugins, name) ? index.plugins[name] : undefined;
  return entry ? fromIndex(name, entry) : fromStore(store, name);
}
