import { setTimeout as sleep } from "node:timers/promises";
import type { CheckReport } from "./check.ts";
import { runCheck, type CheckOptions } from "./command.ts";
import { HIGRESS_GROUP, loadKubeConfig } from "./kube.ts";

/**
 * `check --from-cluster --watch`: the check kept current. After each list it watches Higress's
 * WasmPlugins from the list's resourceVersion (with bookmarks); a change checks again (changes
 * within a second are taken together), a watch the API server ends is resumed from the last
 * resourceVersion seen, and one it answers 410 Gone (history compacted) starts over with a new
 * list. The store changes too (syncs, re-pointed aliases), so the check also runs every
 * `intervalMs`. Runs until `signal` aborts.
 */
export interface WatchOptions extends CheckOptions {
  readonly intervalMs?: number;
  readonly signal: AbortSignal;
  readonly onReport: (report: CheckReport) => void;
  readonly onError: (error: Error) => void;
}

const DEBOUNCE_MS = 1_000;

export async function watchCluster(options: WatchOptions): Promise<void> {
  const { k8s, kc } = await loadKubeConfig(options);
  const path = `/apis/${HIGRESS_GROUP}/v1alpha1/${options.namespace ? `namespaces/${options.namespace}/` : ""}wasmplugins`;
  const interval = options.intervalMs ?? 300_000;
  let resourceVersion: string | undefined;
  let stale = true; // a check is due
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  options.signal.addEventListener("abort", nudge);

  while (!options.signal.aborted) {
    if (stale) {
      try {
        const { report, resourceVersion: listed } = await runCheck(options);
        resourceVersion = listed;
        stale = false;
        options.onReport(report);
      } catch (error) {
        options.onError(error as Error);
        await sleep(Math.min(interval, 10_000), undefined, { signal: options.signal }).catch(() => {});
        continue;
      }
    }
    // Watch until something changed, the watch ended, or the interval passed.
    let gone = false;
    // This watch's own wake-up: a watch that ended earlier and reports late cannot end this one.
    let finish!: () => void;
    const ended = new Promise<void>((resolve) => (finish = resolve));
    wake = finish;
    const timer = setTimeout(() => ((stale = true), finish()), interval);
    let debounce: NodeJS.Timeout | undefined;
    // Not awaited: the watch's answer may take its time, and a change, the interval or a stop must not wait for it.
    const watching = new k8s.Watch(kc)
      .watch(
        path,
        { resourceVersion, allowWatchBookmarks: true },
        (type, object: { metadata?: { resourceVersion?: string }; code?: number }) => {
          if (type === "ERROR") {
            gone = object?.code === 410;
            return finish();
          }
          if (object?.metadata?.resourceVersion) resourceVersion = object.metadata.resourceVersion;
          if (type === "BOOKMARK") return;
          clearTimeout(debounce);
          debounce = setTimeout(() => ((stale = true), finish()), DEBOUNCE_MS);
        },
        (error: (Error & { statusCode?: number }) | null) => {
          if (error && error.name !== "AbortError") {
            gone ||= error.statusCode === 410;
            if (!gone) options.onError(error);
          }
          finish();
        },
      )
      .catch((error: Error) => (options.onError(error), finish(), undefined));
    await ended;
    clearTimeout(timer);
    clearTimeout(debounce);
    void watching.then((controller) => controller?.abort());
    if (gone) stale = true; // the history is gone: a new list, and a watch from its resourceVersion
    else if (!stale && !options.signal.aborted) await sleep(250, undefined, { signal: options.signal }).catch(() => {}); // resumed, not spun
  }
}
