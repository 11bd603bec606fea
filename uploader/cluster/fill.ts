import type { SyncPlan, PluginSource } from "../config.ts";
import { parseReference } from "../oci/reference.ts";
import type { CheckReport } from "./check.ts";

/**
 * `sync --from-cluster`: what the references need and the store lacks, resolved to OCI sources.
 * A missing name and version is looked up in the plans in order (the user's config, then the
 * default official one): a version they publish, or an alias whose target they publish (both are
 * then published). An `oci://` resource whose plugin the store does not hold is mirrored from the
 * very reference it names, so that it can be switched to the store.
 */

export interface Unresolved {
  readonly plugin: string;
  readonly version?: string;
  /** Who asked for it. */
  readonly from: readonly string[];
  readonly why: string;
}

export function clusterPlan(report: CheckReport, plans: readonly { readonly plan: SyncPlan; readonly name: string }[]): { plan: SyncPlan; unresolved: Unresolved[] } {
  const sources = new Map<string, PluginSource>();
  const aliases = new Map<string, Record<string, string>>();
  const unresolved = new Map<string, { plugin: string; version?: string; from: string[]; why: string }>();
  const notFound = (plugin: string, version: string | undefined, from: string, why: string) => {
    const key = `${plugin}/${version ?? ""}`;
    const entry = unresolved.get(key) ?? { plugin, ...(version ? { version } : {}), from: [], why };
    entry.from.push(from);
    unresolved.set(key, entry);
  };
  const add = (source: PluginSource) => {
    const key = `${source.name}/${source.version}`;
    if (!sources.has(key)) sources.set(key, source);
  };

  for (const finding of report.findings) {
    if (finding.status === "missing" && finding.plugin && finding.version) {
      const { plugin, version } = finding;
      let resolved = false;
      for (const { plan } of plans) {
        const direct = plan.sources.find((s) => s.name === plugin && s.version === version);
        const target = plan.aliases.get(plugin)?.[version];
        const viaAlias = target ? plan.sources.find((s) => s.name === plugin && s.version === target) : undefined;
        if (direct) add(direct);
        else if (viaAlias) {
          add(viaAlias);
          aliases.set(plugin, { ...aliases.get(plugin), [version]: target! });
        } else continue;
        resolved = true;
        break;
      }
      if (!resolved) notFound(plugin, version, finding.from, `no source for ${plugin} ${version} in ${plans.map((p) => p.name).join(" or ")}`);
    } else if (finding.status === "oci" && !finding.switchTo && finding.source.kind !== "console") {
      // The store lacks the plugin: mirror the reference itself (by its tag, which becomes the version).
      let ref;
      try {
        ref = parseReference(finding.url);
      } catch {
        notFound(finding.plugin ?? "?", undefined, finding.from, `${finding.url} is not an image reference the uploader can pull`);
        continue;
      }
      const name = finding.plugin ?? ref.repository.split("/").at(-1)!;
      if (!ref.tag) {
        notFound(name, undefined, finding.from, `${finding.url} names no tag, so no version to publish it under (name one in a --config)`);
        continue;
      }
      add({ name, version: ref.tag, ref });
    }
  }
  // Mirrors and credentials of every plan, the earlier plan's winning.
  const later = [...plans].reverse();
  return {
    plan: {
      sources: [...sources.values()],
      aliases,
      mirrors: new Map(later.flatMap(({ plan }) => [...plan.mirrors])),
      credentials: new Map(later.flatMap(({ plan }) => [...plan.credentials])),
    },
    unresolved: [...unresolved.values()],
  };
}
