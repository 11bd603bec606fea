import { readFileSync } from "node:fs";
import type { Source } from "../access/settings.ts";
import { parseStoreLocation, LocationError, type StoreLocation } from "../storage/location.ts";

/**
 * Environment variables as the server (src/node/config.ts) and the uploader (uploader/cli.ts)
 * both read them: the store, the S3 connection, secrets inline or from a file; every problem
 * collected and reported at once, each naming its variable.
 */

export interface S3Settings {
  readonly endpoint?: string;
  readonly region: string;
  readonly forcePathStyle: boolean;
  readonly credentials?: { readonly accessKeyId: string; readonly secretAccessKey: string };
  readonly maxSockets: number;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid configuration:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

export type Env = Readonly<Record<string, string | undefined>>;

/** Reads variables, collecting every problem instead of stopping at the first. */
export class EnvReader {
  readonly problems: string[] = [];
  constructor(private readonly env: Env) {}

  get(name: string): string | undefined {
    const value = this.env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const text = this.get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      this.problems.push(`${name}=${text} is not a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const text = this.get(name)?.toLowerCase();
    if (text === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(text)) return true;
    if (["0", "false", "no", "off"].includes(text)) return false;
    this.problems.push(`${name}=${text} is not a boolean (use true or false)`);
    return fallback;
  }

  store(name: string): StoreLocation | undefined {
    const text = this.get(name);
    if (text === undefined) return undefined;
    try {
      return parseStoreLocation(text);
    } catch (error) {
      if (!(error instanceof LocationError)) throw error;
      this.problems.push(`${name}=${text} ${error.message}`);
      return undefined;
    }
  }

  /** The S3 connection variables, shared by the server and the uploader. */
  s3(): S3Settings {
    const endpoint = this.get("S3_ENDPOINT");
    if (endpoint !== undefined) {
      let url: URL | undefined;
      try {
        url = new URL(endpoint);
      } catch {
        // reported below
      }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
        this.problems.push(`S3_ENDPOINT=${endpoint} is not an http:// or https:// URL`);
      } else if (url.username || url.password) {
        this.problems.push("S3_ENDPOINT must not carry credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
      }
    }
    const accessKeyId = this.get("AWS_ACCESS_KEY_ID");
    const secretAccessKey = this.get("AWS_SECRET_ACCESS_KEY");
    if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
      this.problems.push(
        `${accessKeyId === undefined ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY"} is missing: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither to use the default AWS credential chain`,
      );
    }
    return {
      ...(endpoint ? { endpoint } : {}),
      region: this.get("S3_REGION") ?? this.get("AWS_REGION") ?? "us-east-1",
      // MinIO and radosgw need path-style addressing; AWS itself prefers virtual-hosted style.
      forcePathStyle: this.boolean("S3_FORCE_PATH_STYLE", endpoint !== undefined),
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
      maxSockets: this.integer("S3_MAX_SOCKETS", 256, 1, 65535),
    };
  }

  /** A setting given inline (`NAME`) or as a file (`NAME_FILE`, a mounted Secret), not both. */
  source(name: string): Source | undefined {
    const inline = this.get(name);
    const file = this.get(`${name}_FILE`);
    if (inline !== undefined && file !== undefined) {
      this.problems.push(`set ${name} or ${name}_FILE, not both`);
      return undefined;
    }
    if (inline !== undefined) return { text: inline, from: name };
    if (file === undefined) return undefined;
    try {
      return { text: readFileSync(file, "utf8"), from: `${name}_FILE=${file}` };
    } catch (error) {
      this.problems.push(`${name}_FILE=${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
      return undefined;
    }
  }

  /** Throws every collected problem at once. */
  check(): void {
    if (this.problems.length > 0) throw new ConfigError(this.problems);
  }
}

