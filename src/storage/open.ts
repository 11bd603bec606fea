import { stat } from "node:fs/promises";
import { FileStore } from "./fs.ts";
import { LocationError, type StoreLocation } from "./location.ts";
import { S3Store, type S3StoreOptions } from "./s3.ts";
import type { Store } from "./store.ts";

export type S3Connection = Omit<S3StoreOptions, "bucket" | "prefix">;

/** Builds the backend for a parsed location (Node only: it pulls in the file system and the AWS SDK). */
export async function openStore(location: StoreLocation, s3: S3Connection): Promise<Store> {
  if (location.kind === "s3") return new S3Store({ ...s3, bucket: location.bucket, prefix: location.prefix });
  const stats = await stat(location.root).catch(() => undefined);
  if (!stats) throw new LocationError(`directory ${location.root} does not exist`);
  if (!stats.isDirectory()) throw new LocationError(`${location.root} is not a directory`);
  return new FileStore(location.root);
}
