import { setTimeout as sleep } from "node:timers/promises";
import type { S3Store } from "../src/storage/s3.ts";
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
