import { tmpdir } from "node:os";
import path from "node:path";
import { CachedStore, type CacheOutcome } from "../storage/cached.ts";
import { DiskCache } from "../storage/disk-cache.ts";
import type { StoreLocation } from "../storage/location.ts";
import { ObservedStore } from "../storage/observed.ts";
import { OpenFiles } from "../storage/open-files.ts";
import { PolicyStore } from "../storage/policy.ts";
import type { ObjectInfo, Store } from "../storage/store.ts";
import type { ServerConfig } from "./config.ts";
import { traces } from "./exchange.ts";
import { collectEarly } from "./memory.ts";
import type { ServerMetrics } from "./metrics.ts";

/** Objects this large and larger are the disk cache's (S3), and with sendfile never held in memory. */
export const ON_DISK_FROM = 1024 * 1024;

/** Descriptors kept open at most: a store's every file several times over (the official set is a few hundred). */
const OPEN_FILES = 1024;

/**
 * Descriptors shared by the reads of a file for as long as the caches trust what they know of it
 * (CACHE_TTL_SECONDS); none when caching is off, so every read opens what is there now.
 */
export function sharedDescriptors(config: ServerConfig): OpenFiles | undefined {
  return config.cache.ttlSeconds > 0 ? new OpenFiles({ max: OPEN_FILES, ttlMs: config.cache.ttlSeconds * 1000 }) : undefined;
}

/** The layers over the backend, and the two the rest of the server needs by name. */
export interface StoreStack {
  /** What requests read: the outermost layer. */
  readonly store: Store;
  /** Past every cache: what readiness asks, with deadlines and the breaker. */
  readonly policy: PolicyStore;
  /** The memory cache, when on: its size is a metric. */
  readonly memory: CachedStore | undefined;
}

/**
 * Layers, innermost first: the backend, observed (metrics, and the request's trace); deadlines,
 * retries and the breaker; disk copies of large objects (remote stores only: a file store is a
 * disk already); the memory cache. With sendfile (`kernelSends`), objects from `ON_DISK_FROM` up
 * stay out of memory when a disk is below: the kernel sends them from the page cache, which costs
 * less CPU than sending the cache's buffer (one copy each) and no memory of ours.
 */
export function storeStack(backend: Store, location: StoreLocation, config: ServerConfig, metrics: () => ServerMetrics | undefined, kernelSends = false, openFiles?: OpenFiles): StoreStack {
  const observed = new ObservedStore(backend, (operation, outcome, seconds) => {
    metrics()?.store(operation, outcome, seconds);
    const trace = traces.getStore();
    if (trace) {
      trace.storeSeconds += seconds;
      trace.storeCalls++;
    }
  });
  const policy = new PolicyStore(observed, config.storePolicy);
  const lookup = (outcome: CacheOutcome) => {
    metrics()?.cache(outcome);
    const trace = traces.getStore();
    if (trace) trace.cache = outcome;
  };
  let store: Store = policy;
  const diskDir = config.diskCache?.dir ?? (location.kind === "s3" ? path.join(tmpdir(), "higress-plugin-server-cache") : undefined);
  let onDisk = () => location.kind === "file";
  if (location.kind === "s3" && diskDir && config.cache.ttlSeconds > 0) {
    const disk = new DiskCache(store, { dir: diskDir, maxBytes: config.diskCache?.maxBytes ?? 2048 * 1024 * 1024, minObjectBytes: ON_DISK_FROM, ttlMs: config.cache.ttlSeconds * 1000, onLookup: lookup, openFiles });
    onDisk = () => disk.usable;
    store = disk;
  }
  let memory: CachedStore | undefined;
  if (config.cache.ttlSeconds > 0) {
    const onDrop = collectEarly();
    store = memory = new CachedStore(store, {
      ttlMs: config.cache.ttlSeconds * 1000,
      maxBytes: config.cache.maxBytes,
      ...(kernelSends ? { holds: (info: ObjectInfo) => info.size < ON_DISK_FROM || !onDisk() } : {}),
      onLookup: lookup,
      onEvict: () => metrics()?.evicted(),
      ...(onDrop ? { onDrop } : {}),
    });
  }
  return { store, policy, memory };
}
