import { checkFile } from "../src/core/names.ts";

/**
 * The one allow-list of files published beside a module, for every source (registries, local
 * trees, bundles). Everything else a source carries is refused: plugin.wasm.gz and the metadata
 * files are always made by us from the validated module, so no source can put other bytes under
 * those names.
 */
const EXTRA = /^(README(_[A-Za-z-]+)?\.md|spec\.ya?ml|icon\.(png|svg))$/i;

export const MAX_EXTRA_BYTES = 8 * 1024 * 1024;

export function isExtra(name: string): boolean {
  return EXTRA.test(name) && !checkFile(name);
}

export const EXTRAS_DESCRIPTION = "README*.md, spec.yaml, icon.png or icon.svg";
