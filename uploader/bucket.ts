import { setTimeout as sleep } from "node:timers/promises";
import { PLUGINS } from "../src/core/layout.ts";
import type { S3Store } from "../src/storage/s3.ts";
import type { Store } from "../src/storage/store.ts";
import { StoreMisconfiguredError, StoreUnavailableError } from "../src/core/errors.ts";
import { UploaderError } from "./errors.ts";

/** Creates the bucket, retrying while the endpoint is not up yet (a MinIO starting beside us). */
export async function createBucket(store: S3Store, waitSeconds: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  for (;;) {
    try {
      await store.ensureBucket();
      log(`bucket ready: ${store.description}`);
      return;
    } catch (error) {
      if (Date.now() >= deadline) throw new UploaderError((error as Error).message);
      log(`waiting for the store: ${(error as Error).message}`);
      await sleep(2000);
    }
  }
}

/**
 * Waits until the store answers a listing: a MinIO still starting, its setup still creating the
 * bucket or the uploader's user. Only the store's own failures are waited on; the last one is
 * the error when the time is up.
 */
export async function waitForStore(store: Store, waitSeconds: number, log: (line: string) => void): Promise<void> {
  const deadline = Date.now() + waitSeconds * 1000;
  let said = 0;
  for (;;) {
    try {
      await store.list(`${PLUGINS}/`);
      if (said > 0) log(`store ready: ${store.description}`);
      return;
    } catch (error) {
      if (!(error instanceof StoreUnavailableError || error instanceof StoreMisconfiguredError)) throw error;
      if (Date.now() >= deadline) throw new UploaderError(`${error.message} (waited ${waitSeconds} s for the store)`);
      // Once at first, then every 15 s: a Job's log should show the wait, not fill with it.
      if (Date.now() - said >= 15_000) {
        log(`waiting for the store: ${error.message}`);
        said = Date.now();
      }
      await sleep(Math.min(2000, Math.max(0, deadline - Date.now())));
    }
  }
}
