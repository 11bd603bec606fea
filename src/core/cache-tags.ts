/**
 * Cache-Tag values of plugin files (Cloudflare's cache, the Cache API's `put` included, purges by
 * them): the uploader purges exactly what it changed. A file served through an alias carries its
 * target's tag too, so a replaced target purges the alias URLs with it.
 */
export const pluginTag = (name: string): string => `plugin:${name}`;
export const versionTag = (name: string, version: string): string => `plugin:${name}@${version}`;

export function cacheTags(name: string, version: string, aliasOf: string | undefined): string {
  const tags = [pluginTag(name), versionTag(name, version)];
  if (aliasOf) tags.push(versionTag(name, aliasOf));
  return tags.join(",");
}
