import { createHash } from "node:crypto";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import {
  CreateBucketCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  HeadObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
  type GetObjectCommandOutput,
} from "@aws-sdk/client-s3";
import { StoreMisconfiguredError, StoreUnavailableError } from "../core/errors.ts";
import { formatRange, type ResolvedRange } from "../core/range.ts";
import { Readable } from "node:stream";
import { joinKey, Stored, type CallOptions, type ChunkReader, type GetOptions, type Listing, type ObjectInfo, type PutOptions, type StoredObject, type WritableStore } from "./store.ts";

/** The only module that imports the AWS SDK; the worker bundle never reaches it. */

export interface S3StoreOptions {
  readonly bucket: string;
  /** Key prefix inside the bucket, normalised (`""` or `a/b/`). */
  readonly prefix: string;
  /** Custom endpoint for MinIO, radosgw or R2; unset means AWS. */
  readonly endpoint?: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
  /** Static credentials; unset means the SDK's default chain (environment, web identity, instance role). */
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  /** Upper bound of pooled connections to the endpoint. */
  readonly maxSockets?: number;
  /** Socket inactivity limit, while waiting for an answer and while a body streams (the policy layer sets the deadline). */
  readonly timeoutMs?: number;
}

export class S3Store implements WritableStore {
  readonly description: string;
  readonly #client: S3Client;
  readonly #bucket: string;
  readonly #prefix: string;

  constructor(options: S3StoreOptions) {
    this.#bucket = options.bucket;
    this.#prefix = options.prefix;
    this.description = `s3://${options.bucket}/${options.prefix}${options.endpoint ? ` at ${options.endpoint}` : ""}`;
    const agent = { keepAlive: true, maxSockets: options.maxSockets ?? 256 };
    this.#client = new S3Client({
      region: options.region,
      forcePathStyle: options.forcePathStyle,
      ...(options.endpoint ? { endpoint: options.endpoint } : {}),
      ...(options.credentials ? { credentials: options.credentials } : {}),
      // The SDK's default streaming checksums are rejected by R2 and radosgw and add nothing
      // over the ETag check we already get; ask for them only where an operation needs them.
      requestChecksumCalculation: "WHEN_REQUIRED",
      responseChecksumValidation: "WHEN_REQUIRED",
      // Retries belong to the policy layer that wraps any Store, not to one backend.
      maxAttempts: 1,
      requestHandler: {
        httpAgent: new HttpAgent(agent),
        httpsAgent: new HttpsAgent(agent),
        connectionTimeout: Math.min(5_000, options.timeoutMs ?? 5_000),
        requestTimeout: options.timeoutMs ?? 30_000,
      },
    });
  }

  #key(key: string) {
    return joinKey(this.#prefix, key);
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    const { conditions, range, signal } = options;
    let output: GetObjectCommandOutput;
    try {
      output = await this.#client.send(
        new GetObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(key),
          ...(range ? { Range: formatRange(range) } : {}),
          // S3 evaluates these like RFC 9110 does, so a 304 or 412 costs no body transfer.
          ...(conditions?.ifMatch ? { IfMatch: tagList(conditions.ifMatch) } : {}),
          ...(conditions?.ifNoneMatch ? { IfNoneMatch: tagList(conditions.ifNoneMatch) } : {}),
          ...(conditions?.ifModifiedSince ? { IfModifiedSince: conditions.ifModifiedSince } : {}),
          ...(conditions?.ifUnmodifiedSince ? { IfUnmodifiedSince: conditions.ifUnmodifiedSince } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      );
    } catch (error) {
      const status = statusOf(error);
      if (status === 404 && (error as Error).name !== "NoSuchBucket") return null;
      // 304, 412 and 416 carry no body; fetch the facts the caller needs to answer them.
      if (status === 304 || status === 412 || status === 416) {
        const info = await this.head(key, options);
        return info ? { info, body: null } : null;
      }
      throw this.#unavailable("read", key, error);
    }
    const served = parseContentRange(output.ContentRange);
    const info: ObjectInfo = {
      key,
      size: served?.size ?? output.ContentLength ?? 0,
      etag: output.ETag ?? '""',
      lastModified: output.LastModified ?? new Date(0),
    };
    // The SDK's body is a Node stream: read it as one, without a web stream per response.
    const reader = output.Body instanceof Readable ? readableReader(output.Body) : emptyReader;
    return new Stored(info, reader, { range: served?.range, release: () => reader.close() });
  }

  async head(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    try {
      const output = await this.#client.send(
        new HeadObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      return {
        key,
        size: output.ContentLength ?? 0,
        etag: output.ETag ?? '""',
        lastModified: output.LastModified ?? new Date(0),
      };
    } catch (error) {
      if (statusOf(error) === 404) return null;
      throw this.#unavailable("read", key, error);
    }
  }

  async list(prefix: string, options: CallOptions = {}): Promise<Listing> {
    const full = this.#key(prefix);
    const prefixes: string[] = [];
    const objects: ObjectInfo[] = [];
    let token: string | undefined;
    try {
      do {
        const page = await this.#client.send(
          new ListObjectsV2Command({
            Bucket: this.#bucket,
            Prefix: full,
            Delimiter: "/",
            ...(token ? { ContinuationToken: token } : {}),
          }),
          options.signal ? { abortSignal: options.signal } : {},
        );
        for (const p of page.CommonPrefixes ?? []) {
          if (p.Prefix) prefixes.push(p.Prefix.slice(full.length).replace(/\/$/, ""));
        }
        for (const o of page.Contents ?? []) {
          if (!o.Key || o.Key === full) continue; // a "directory marker" object
          objects.push({
            key: prefix + o.Key.slice(full.length),
            size: o.Size ?? 0,
            etag: o.ETag ?? '""',
            lastModified: o.LastModified ?? new Date(0),
          });
        }
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
    } catch (error) {
      throw this.#unavailable("list", prefix, error);
    }
    return { prefixes, objects };
  }

  async put(key: string, data: Uint8Array, options: PutOptions = {}): Promise<ObjectInfo> {
    try {
      // A single PUT is atomic in S3: readers see the previous object until this one is complete.
      // Content-MD5 makes the store reject a body damaged on the way.
      const output = await this.#client.send(
        new PutObjectCommand({
          Bucket: this.#bucket,
          Key: this.#key(key),
          Body: data,
          ContentLength: data.byteLength,
          ContentMD5: options.md5 ? Buffer.from(options.md5, "hex").toString("base64") : createHash("md5").update(data).digest("base64"),
          ...(options.contentType ? { ContentType: options.contentType } : {}),
        }),
      );
      return { key, size: data.byteLength, etag: output.ETag ?? '""', lastModified: new Date() };
    } catch (error) {
      throw this.#unavailable("write", key, error);
    }
  }

  async delete(key: string): Promise<void> {
    try {
      await this.#client.send(new DeleteObjectCommand({ Bucket: this.#bucket, Key: this.#key(key) }));
    } catch (error) {
      throw this.#unavailable("delete", key, error);
    }
  }

  /** Creates the bucket unless it exists (MinIO and radosgw start empty). */
  async ensureBucket(): Promise<void> {
    try {
      await this.#client.send(new CreateBucketCommand({ Bucket: this.#bucket }));
    } catch (error) {
      const name = (error as Error).name;
      if (name !== "BucketAlreadyOwnedByYou" && name !== "BucketAlreadyExists") {
        throw this.#unavailable("create bucket", this.#bucket, error);
      }
    }
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  #unavailable(action: string, key: string, error: unknown): StoreUnavailableError | StoreMisconfiguredError {
    if ((error as Error)?.name === "NoSuchBucket") {
      return new StoreMisconfiguredError(
        `S3 store ${this.description}: the bucket ${this.#bucket} does not exist: create it (plugin-uploader create-bucket --to s3://${this.#bucket}, or --create-bucket) or check the bucket name and S3_ENDPOINT`,
      );
    }
    const reason =
      error instanceof S3ServiceException
        ? `${error.name} (HTTP ${error.$metadata.httpStatusCode ?? "?"})`
        : error instanceof Error
          ? error.message
          : String(error);
    return new StoreUnavailableError(`S3 store ${this.description} could not ${action} ${key}: ${reason}`, {
      cause: error,
    });
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
}

function tagList(condition: { any: true } | { any: false; tags: readonly { weak: boolean; opaque: string }[] }): string {
  return condition.any ? "*" : condition.tags.map((t) => (t.weak ? `W/${t.opaque}` : t.opaque)).join(", ");
}

function parseContentRange(value: string | undefined): { range: ResolvedRange; size: number } | undefined {
  const m = value ? /^bytes (\d+)-(\d+)\/(\d+)$/.exec(value) : null;
  return m ? { range: { start: Number(m[1]), end: Number(m[2]) }, size: Number(m[3]) } : undefined;
}

const emptyReader: ChunkReader = { read: async () => null, close: () => {} };

/** Pulls a Node stream a chunk at a time, only when asked; closing it early drops the connection. */
function readableReader(stream: Readable): ChunkReader {
  let closed = false;
  return {
    async read() {
      for (;;) {
        if (stream.errored) throw stream.errored;
        const chunk = stream.read() as Buffer | null;
        if (chunk !== null) return chunk;
        if (stream.readableEnded) return null;
        if (stream.destroyed) throw new Error("the store closed the connection before the end of the body");
        await new Promise<void>((resolve) => {
          const done = () => {
            stream.off("readable", done).off("end", done).off("error", done).off("close", done);
            resolve();
          };
          stream.on("readable", done).on("end", done).on("error", done).on("close", done);
        });
      }
    },
    close() {
      if (closed) return;
      closed = true;
      if (!stream.readableEnded) stream.destroy();
    },
  };
}
