import { listPlugins, listVersions } from "../src/plugins/read.ts";
import { INDEX } from "../src/core/layout.ts";
import type { PluginMetadata } from "../src/core/metadata.ts";
import type { WritableStore } from "../src/storage/store.ts";
import { storedMetadata, putVerified } from "./publish.ts";

export interface StoreIndex {
  readonly generated: string;
  readonly plugins: Readonly<
    Record<string, { readonly versions: Readonly<Record<string, PluginMetadata | null>>; readonly aliases: Readonly<Record<string, string>> }>
  >;
}

/**
 * Rebuilds `index.json` at the store root from what the store holds (not from one run's
 * plan), so it stays true after partial runs, prunes and hand edits. A version without our
 * metadata.json is listed with null.
 */
export async function writeIndex(store: WritableStore): Promise<StoreIndex> {
  const plugins: Record<string, StoreIndex["plugins"][string]> = {};
  for (const name of await listPlugins(store)) {
    const found = await listVersions(store, name);
    if (!found) continue;
    const versions: Record<string, PluginMetadata | null> = {};
    for (const version of found.versions) versions[version] = (await storedMetadata(store, name, version)) ?? null;
    plugins[name] = { versions, aliases: found.aliases };
  }
  const index: StoreIndex = { generated: new Date().toISOString(), plugins };
  await putVerified(store, INDEX, new TextEncoder().encode(`${JSON.stringify(index, null, 2)}\n`));
  return index;
}
