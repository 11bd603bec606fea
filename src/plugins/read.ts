import { parseAliases, type Aliases } from "../core/aliases.ts";
import { aliasesKey, PLUGINS, pluginPrefix, versionPrefix } from "../core/layout.ts";
import { isName, isVersion } from "../core/names.ts";
import { parsedOnce } from "../core/parsed-once.ts";
import { compareVersions, type PluginVersions } from "../core/versions.ts";
import { readBytes, type ObjectInfo, type Store } from "../storage/store.ts";

/** What the store holds, read through the Store interface only: the one layer between the store and the facts core parses. */

export async function readAliases(store: Store, name: string): Promise<Aliases> {
  const object = await store.get(aliasesKey(name));
  if (!object) return {};
  return parsedOnce(await readBytes(object), (bytes) => parseAliases(name, new TextDecoder().decode(bytes)));
}

export async function listPlugins(store: Store): Promise<string[]> {
  const { prefixes } = await store.list(PLUGINS);
  return prefixes.filter(isName).sort();
}

/** `undefined` when the plugin has neither versions nor aliases. */
export async function listVersions(store: Store, name: string): Promise<PluginVersions | undefined> {
  const [{ prefixes }, aliases] = await Promise.all([store.list(pluginPrefix(name)), readAliases(store, name)]);
  const versions = prefixes.filter(isVersion).sort(compareVersions);
  if (versions.length === 0 && Object.keys(aliases).length === 0) return undefined;
  return { name, versions, aliases };
}

export async function listFiles(store: Store, name: string, version: string): Promise<readonly ObjectInfo[]> {
  return (await store.list(versionPrefix(name, version))).objects;
}
