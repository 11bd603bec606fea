import { WASM } from "./layout.ts";
import { parseMetadataJson, type PluginMetadata } from "./metadata.ts";
import { isVersion } from "./names.ts";
import { compareVersions } from "./versions.ts";

/** What the catalog shows of a plugin, built from facts (index.json's, or the store's files); src/plugins/catalog.ts reads them. */
export interface CatalogVersion {
  readonly version: string;
  /** The module's URL path. */
  readonly url: string;
  /** Set for an alias: the version whose files it serves. */
  readonly aliasOf?: string;
  readonly size?: number;
  readonly sha256?: string;
  readonly md5?: string;
  readonly created?: string;
  readonly lastModified?: string;
  readonly source?: string;
  readonly manifestDigest?: string;
}

export interface CatalogPlugin {
  readonly name: string;
  readonly url: string;
  /** Newest first; aliases included, with the facts of their target. */
  readonly versions: readonly CatalogVersion[];
  readonly aliases: Readonly<Record<string, string>>;
  /** What is wrong with this plugin in the store (an invalid aliases.json), shown instead of failing the page. */
  readonly problem?: string;
}

export type Versions = Record<string, PluginMetadata | null>;
const FACTS = ["size", "sha256", "md5", "created", "lastModified", "source", "manifestDigest"] as const;

export function buildPlugin(name: string, versions: Versions, aliases: Readonly<Record<string, string>>): CatalogPlugin {
  const entry = (version: string, metadata: PluginMetadata | null | undefined, aliasOf?: string): CatalogVersion => {
    // Only the facts we know, picked by name: extra keys in a stored metadata.json or index.json
    // (a hand-edited store, a hostile bundle of old) never override the computed url or aliasOf.
    const facts: Record<string, unknown> = {};
    for (const key of FACTS) if (metadata && metadata[key] !== undefined) facts[key] = metadata[key];
    return { version, url: `/plugins/${name}/${version}/${WASM}`, ...(aliasOf ? { aliasOf } : {}), ...facts };
  };
  const list = [
    ...Object.entries(versions).map(([v, m]) => entry(v, m)),
    ...Object.entries(aliases).map(([from, to]) => entry(from, Object.hasOwn(versions, to) ? versions[to] : undefined, to)),
  ].sort((a, b) => compareVersions(b.version, a.version));
  return { name, url: `/plugins/${name}/`, versions: list, aliases };
}

export interface IndexFile {
  plugins?: Record<string, { versions?: Versions; aliases?: Record<string, string> }>;
}

/** index.json's text, or undefined when it is damaged (then the store itself is read). */
export function parseIndex(text: string): IndexFile | undefined {
  try {
    const parsed = JSON.parse(text) as IndexFile;
    return typeof parsed.plugins === "object" && parsed.plugins !== null ? parsed : undefined;
  } catch {
    return undefined;
  }
}

export function fromIndex(name: string, entry: NonNullable<IndexFile["plugins"]>[string]): CatalogPlugin {
  const versions: Versions = {};
  for (const [v, m] of Object.entries(entry.versions ?? {})) {
    if (isVersion(v)) versions[v] = m && parseMetadataJson(JSON.stringify(m)) ? m : null;
  }
  const aliases = Object.fromEntries(Object.entries(entry.aliases ?? {}).filter(([f, t]) => isVersion(f) && isVersion(t)));
  return buildPlugin(name, versions, aliases);
}
