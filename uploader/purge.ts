import { setTimeout as sleep } from "node:timers/promises";
import { pluginTag, versionTag } from "../src/core/cache-tags.ts";
import { UploaderError, UsageError } from "./errors.ts";
import type { Report } from "./pipeline.ts";

/**
 * `--purge-cloudflare`: after a run, the edge copies of what it changed are purged by the
 * Cache-Tags the server puts on plugin files (src/core/cache-tags.ts). A version published for
 * the first time needs nothing (edges keep complete 200s only); a replaced version, a moved
 * alias and a pruned version or plugin do.
 */

export interface CloudflareZone {
  readonly zoneId: string;
  readonly token: string;
  /** https://api.cloudflare.com/client/v4, or an API gateway in front of it. */
  readonly apiUrl: string;
}

/** Cloudflare's limit per purge request, on every plan. */
const TAGS_PER_REQUEST = 100;

export function cloudflareZone(env: NodeJS.ProcessEnv): CloudflareZone {
  const zoneId = env.CLOUDFLARE_ZONE_ID?.trim();
  const token = env.CLOUDFLARE_API_TOKEN?.trim();
  const missing = [!zoneId && "CLOUDFLARE_ZONE_ID", !token && "CLOUDFLARE_API_TOKEN"].filter(Boolean);
  if (missing.length > 0) throw new UsageError(`--purge-cloudflare needs ${missing.join(" and ")} (an API token with the Zone > Cache Purge permission)`);
  if (!/^[0-9a-f]{32}$/.test(zoneId!)) throw new UsageError(`CLOUDFLARE_ZONE_ID=${zoneId} is not a zone id (32 hex digits, on the zone's overview page)`);
  const apiUrl = (env.CLOUDFLARE_API_URL?.trim() || "https://api.cloudflare.com/client/v4").replace(/\/+$/, "");
  if (!/^https?:\/\//.test(apiUrl)) throw new UsageError(`CLOUDFLARE_API_URL=${apiUrl} is not an http(s) URL`);
  return { zoneId: zoneId!, token: token!, apiUrl };
}

/** The tags of what the run changed, each once. */
export function changedTags(report: Report): string[] {
  const tags = new Set<string>();
  for (const v of report.versions) if (v.status === "replaced") tags.add(versionTag(v.name, v.version));
  for (const a of report.aliases) for (const from of a.moved ?? []) tags.add(versionTag(a.name, from));
  for (const p of report.pruned) {
    // "name/version", or a plugin-level key (plugins/<name>/aliases.json) when the plugin went.
    const [name, version] = p.startsWith("plugins/") ? [p.split("/")[1]!, undefined] : p.split("/");
    tags.add(version ? versionTag(name!, version) : pluginTag(name!));
  }
  return [...tags].sort();
}

interface ApiAnswer {
  success?: boolean;
  errors?: { code?: number; message?: string }[];
}

export async function purgeTags(zone: CloudflareZone, tags: readonly string[], log: (line: string) => void): Promise<void> {
  for (let i = 0; i < tags.length; i += TAGS_PER_REQUEST) {
    const batch = tags.slice(i, i + TAGS_PER_REQUEST);
    for (let attempt = 1; ; attempt++) {
      let res: Response;
      try {
        res = await fetch(`${zone.apiUrl}/zones/${zone.zoneId}/purge_cache`, {
          method: "POST",
          headers: { Authorization: `Bearer ${zone.token}`, "Content-Type": "application/json" },
          body: JSON.stringify({ tags: batch }),
          signal: AbortSignal.timeout(30_000),
        });
      } catch (error) {
        throw new UploaderError(`Cloudflare purge failed: ${(error as Error).cause instanceof Error ? ((error as Error).cause as Error).message : (error as Error).message}; the edges keep the old copies of ${batch.join(", ")} until they expire`);
      }
      // The Free plan allows 5 purge requests a minute: wait as told, a few times.
      if (res.status === 429 && attempt < 4) {
        const wait = Math.min(60, Number(res.headers.get("retry-after")) || 15);
        log(`Cloudflare purge rate-limited: again in ${wait} s`);
        await res.body?.cancel();
        await sleep(wait * 1000);
        continue;
      }
      const answer = (await res.json().catch(() => ({}))) as ApiAnswer;
      if (!res.ok || answer.success !== true) {
        const why = answer.errors?.map((e) => `${e.code ?? "?"} ${e.message ?? ""}`.trim()).join("; ") || `HTTP ${res.status}`;
        throw new UploaderError(`Cloudflare purge failed (${why}); the edges keep the old copies of ${batch.join(", ")} until they expire`);
      }
      log(`purged from Cloudflare's cache: ${batch.join(", ")}`);
      break;
    }
  }
}
