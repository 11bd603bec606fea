import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as sleep } from "node:timers/promises";
import { readText, type WritableStore } from "../src/storage/store.ts";
import { UploaderError } from "./errors.ts";

/**
 * One writer at a time per store. Two runs that publish the same version at once (the chart's
 * post-upgrade Job beside its CronJob, two operators) would each take the other's identical
 * module for their own and roll back what the other wrote. A run that writes takes a lease: a
 * small object at the store's root naming its holder and an expiry, renewed while the run goes
 * on, removed at its end. A crashed run's lease lapses by itself.
 *
 * A free store is taken with the store's exclusive create where it has one (the file store:
 * link(2)): of two runs, exactly one creates the lease. Object stores offer no compare-and-swap
 * everywhere (R2 and radosgw differ), and a lapsed lease must be replaced, not created, so
 * otherwise a lease is taken by writing it, waiting longer than any other writer takes from its
 * read to its write, and reading it back: of two runs that both found the store free, the one
 * whose write landed last sees its own lease, the other sees a stranger's and yields.
 */
export const LEASE_KEY = "uploader.lease.json";

export interface LeaseHolder {
  readonly owner: string;
  readonly host: string;
  readonly pid: number;
  readonly command: string;
  readonly acquired: string;
  readonly expires: string;
}

export interface LeaseOptions {
  readonly command: string;
  /** How long to wait for another run's lease to end; 0: refuse at once. */
  readonly waitMs?: number;
  readonly ttlMs?: number;
  /** Between writing the lease and reading it back. */
  readonly settleMs?: number;
  readonly onWait?: (holder: LeaseHolder) => void;
}

/** The store is held by another run; exit code 3. */
export class LeaseHeldError extends UploaderError {
  override readonly exitCode: number = 3;
  constructor(readonly holder: LeaseHolder) {
    super(
      `the store is being written by another plugin-uploader (${holder.command} on ${holder.host}, pid ${holder.pid}, since ${holder.acquired}); ` +
        `wait for it (--wait-for-lease <seconds>) or, if it died, its lease ${LEASE_KEY} lapses at ${holder.expires}`,
    );
  }
}

/** How often a waiting run looks at the lease again: one small read, so a queue of runs moves on within a second. */
const POLL_MS = 1_000;

/** A run killed without a word blocks others this long at most (less on its own host, below). */
const DEFAULT_TTL_MS = 30_000;

/** A lease is over when it lapsed, or when its holder ran on this host and is gone (a killed run, restarted). */
function over(holder: LeaseHolder): boolean {
  if (Date.parse(holder.expires) <= Date.now()) return true;
  if (holder.host !== hostname() || holder.pid === process.pid) return false;
  try {
    process.kill(holder.pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "ESRCH";
  }
}

async function current(store: WritableStore): Promise<LeaseHolder | undefined> {
  const object = await store.get(LEASE_KEY);
  if (!object) return undefined;
  try {
    const holder = JSON.parse(await readText(object)) as LeaseHolder;
    return typeof holder.owner === "string" && !Number.isNaN(Date.parse(holder.expires)) ? holder : undefined;
  } catch {
    return undefined; // unreadable: nobody's lease, overwritten
  }
}

/** Runs `work` holding the store's lease. */
export async function withLease<T>(store: WritableStore, options: LeaseOptions, work: () => Promise<T>): Promise<T> {
  const ttl = options.ttlMs ?? DEFAULT_TTL_MS;
  const settle = options.settleMs ?? 250;
  const deadline = Date.now() + (options.waitMs ?? 0);
  const owner = randomUUID();
  const lease = (): LeaseHolder => ({
    owner,
    host: hostname(),
    pid: process.pid,
    command: options.command,
    acquired,
    expires: new Date(Date.now() + ttl).toISOString(),
  });
  const body = () => new TextEncoder().encode(`${JSON.stringify(lease())}\n`);
  const json = { contentType: "application/json" };
  const write = () => store.put(LEASE_KEY, body(), json);
  const acquired = new Date().toISOString();
  let canCreate = store.create !== undefined;
  let exclusive = canCreate;
  let reported: string | undefined;
  for (;;) {
    const holder = await current(store);
    if (!holder && exclusive) {
      const created = await store.create!(LEASE_KEY, body(), json);
      if (created === "created") break;
      // Taken: read whose it is; one we cannot read is replaced the slow way below.
      exclusive = false;
      canCreate &&= created === "taken";
      if (created === "taken") continue;
    }
    if (!holder || holder.owner === owner || over(holder)) {
      await write();
      await sleep(settle);
      const after = await current(store);
      if (after?.owner === owner) break;
      if (!after) continue;
    }
    const other = (await current(store)) ?? holder;
    if (!other) continue;
    if (Date.now() >= deadline) throw new LeaseHeldError(other);
    if (other.owner !== reported) options.onWait?.(other); // once per holder, not once per look
    reported = other.owner;
    await sleep(Math.min(POLL_MS, Math.max(50, deadline - Date.now())));
    exclusive = canCreate;
  }
  // Renewed well before it lapses; a renewal that fails is retried at the next beat.
  const beat = setInterval(() => void write().catch(() => {}), ttl / 4);
  try {
    return await work();
  } finally {
    clearInterval(beat);
    if ((await current(store).catch(() => undefined))?.owner === owner) await store.delete(LEASE_KEY).catch(() => {});
  }
}
