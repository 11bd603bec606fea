import { StoreUnavailableError } from "../core/errors.ts";
import { resolveRange, type ByteRange } from "../core/range.ts";
import { joinKey, type GetOptions, type Listing, type ObjectInfo, type Store, type StoredObject } from "./store.ts";

/**
 * A Cloudflare R2 bucket through its Worker binding. Only the part of the binding we use is
 * typed here, so the core compiles without the Workers type package.
 */
export interface R2BucketLike {
  get(key: string, options?: { range?: R2RangeLike; onlyIf?: { etagDoesNotMatch?: string } }): Promise<R2ObjectLike | null>;
  head(key: string): Promise<R2ObjectLike | null>;
  list(options: { prefix: string; delimiter: string; cursor?: string }): Promise<{
    objects: R2ObjectLike[];
    delimitedPrefixes: string[];
    truncated: boolean;
    cursor?: string;
  }>;
}

type R2RangeLike = { offset: number; length?: number } | { suffix: number };

export interface R2ObjectLike {
  readonly key: string;
  readonly size: number;
  readonly httpEtag: string;
  readonly uploaded: Date;
  readonly body?: ReadableStream<Uint8Array>;
}

/** R2's code for an unsatisfiable range (workerd raises it; the hosted API may ignore the range instead). */
const INVALID_RANGE = "10039";

export class R2Store implements Store {
  readonly description: string;

  constructor(
    private readonly bucket: R2BucketLike,
    private readonly prefix: string,
  ) {
    this.description = `r2:PLUGINS/${prefix}`;
  }

  #info(key: string, object: R2ObjectLike): ObjectInfo {
    return { key, size: object.size, etag: object.httpEtag, lastModified: object.uploaded };
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    const { range, conditions } = options;
    // Only a single-tag If-None-Match is passed down: it is what caches revalidate with, R2
    // takes one tag only, and its date conditions differ from RFC 9110 in granularity.
    // The app re-checks every condition anyway.
    const none = conditions?.ifNoneMatch;
    const skip = none && !none.any && none.tags.length === 1 ? none.tags[0]!.opaque.slice(1, -1) : undefined;
    let object: R2ObjectLike | null;
    try {
      object = await this.bucket.get(joinKey(this.prefix, key), {
        ...(range ? { range: toR2Range(range) } : {}),
        ...(skip ? { onlyIf: { etagDoesNotMatch: skip } } : {}),
      });
    } catch (error) {
      if (range && String(error).includes(INVALID_RANGE)) {
        const info = await this.head(key);
        return info ? { info, body: null } : null;
      }
      throw unavailable("read", key, error);
    }
    if (!object) return null;
    const info = this.#info(key, object);
    if (!object.body) return { info, body: null };
    if (!range) return { info, body: object.body };
    const served = resolveRange(range, info.size);
    if (!served) {
      await object.body.cancel();
      return { info, body: null };
    }
    return { info, body: object.body, range: served };
  }

  async head(key: string): Promise<ObjectInfo | null> {
    try {
      const object = await this.bucket.head(joinKey(this.prefix, key));
      return object ? this.#info(key, object) : null;
    } catch (error) {
      throw unavailable("read", key, error);
    }
  }

  async list(prefix: string): Promise<Listing> {
    const full = joinKey(this.prefix, prefix);
    const prefixes: string[] = [];
    const objects: ObjectInfo[] = [];
    let cursor: string | undefined;
    try {
      do {
        const page = await this.bucket.list({ prefix: full, delimiter: "/", ...(cursor ? { cursor } : {}) });
        for (const p of page.delimitedPrefixes) prefixes.push(p.slice(full.length).replace(/\/$/, ""));
        for (const o of page.objects) {
          if (o.key !== full) objects.push(this.#info(prefix + o.key.slice(full.length), o));
        }
        cursor = page.truncated ? page.cursor : undefined;
      } while (cursor);
    } catch (error) {
      throw unavailable("list", prefix, error);
    }
    return { prefixes, objects };
  }
}

function toR2Range(range: ByteRange): R2RangeLike {
  switch (range.kind) {
    case "bounded":
      return { offset: range.first, length: range.last - range.first + 1 };
    case "from":
      return { offset: range.first };
    case "suffix":
      return { suffix: range.length };
  }
}

function unavailable(action: string, key: string, error: unknown): StoreUnavailableError {
  const reason = error instanceof Error ? error.message : String(error);
  return new StoreUnavailableError(`R2 bucket could not ${action} ${key}: ${reason}`, { cause: error });
}
