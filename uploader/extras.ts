import { checkFile } from "../src/core/names.ts";
import { ArtifactError } from "./errors.ts";

/**
 * The one allow-list of files published beside a module, for every source (registries, local
 * trees, bundles). Everything else a source carries is refused: plugin.wasm.gz and the metadata
 * files are always made by us from the validated module, so no source can put other bytes under
 * those names.
 */
const EXTRA = /^(README(_[A-Za-z-]+)?\.md|spec\.ya?ml|icon\.(png|svg))$/i;

export const MAX_EXTRA_BYTES = 8 * 1024 * 1024;
/** Extras of one version, from any source: a README per language, a spec and an icon are a handful, not dozens. */
export const MAX_EXTRAS = 12;
export const MAX_EXTRAS_TOTAL_BYTES = 16 * 1024 * 1024;

/** Refuses a version whose extras are too many or too large together, before any of them is read. */
export function checkExtras(extras: readonly { readonly name: string; readonly size: number }[], what: string): void {
  if (extras.length > MAX_EXTRAS) {
    throw new ArtifactError(`${what} carries ${extras.length} extra files (${EXTRAS_DESCRIPTION}); at most ${MAX_EXTRAS} are accepted`);
  }
  const total = extras.reduce((n, e) => n + e.size, 0);
  if (total > MAX_EXTRAS_TOTAL_BYTES) {
    throw new ArtifactError(`${what} carries ${total} bytes of extra files (${EXTRAS_DESCRIPTION}); at most ${MAX_EXTRAS_TOTAL_BYTES} together are accepted`);
  }
}

export function isExtra(name: string): boolean {
  return EXTRA.test(name) && !checkFile(name);
}

export const EXTRAS_DESCRIPTION = "README*.md, spec.yaml, icon.png or icon.svg";
