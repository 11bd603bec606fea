import { mkdir, stat } from "node:fs/promises";
import { FileStore } from "./fs.ts";
import type { OpenFiles } from "./open-files.ts";
import { LocationError, type StoreLocation } from "./location.ts";
import type { S3StoreOptions } from "./s3.ts";
import type { WritableStore } from "./store.ts";

export type S3Connection = Omit<S3StoreOptions, "bucket" | "prefix">;

/**
 * Builds the backend for a parsed location (Node only: it pulls in the file system and the AWS SDK).
 * `create` makes a missing directory (the uploader's target) instead of refusing it (the server's store);
 * `openFiles` shares a directory's descriptors between reads (the server's).
 */
export async function openStore(location: StoreLocation, s3: S3Connection, options: { create?: boolean; openFiles?: OpenFiles | undefined } = {}): Promise<WritableStore> {
  if (location.kind === "s3") {
    // Loaded only for an S3 store: the AWS SDK costs a server on a directory 11 MiB of memory for nothing.
    const { S3Store } = await import("./s3.ts");
    return new S3Store({ ...s3, bucket: location.bucket, prefix: location.prefix });
  }
  if (options.create) await mkdir(location.root, { recursive: true });
  const stats = await stat(location.root).catch(() => undefined);
  if (!stats) throw new LocationError(`directory ${location.root} does not exist`);
  if (!stats.isDirectory()) throw new LocationError(`${location.root} is not a directory`);
  return new FileStore(location.root, { openFiles: options.openFiles });
}
