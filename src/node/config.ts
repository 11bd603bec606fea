import { readFileSync } from "node:fs";
import type { AuthenticatorOptions } from "../access/authenticator.ts";
import { accessSettings, type AccessSettings, type Source } from "../access/settings.ts";
import { parseStoreLocation, LocationError, type StoreLocation } from "../storage/location.ts";
import { cacheControlProblems, DEFAULT_ALIAS_CACHE_CONTROL, DEFAULT_CACHE_CONTROL } from "../app.ts";

/** Server configuration from environment variables, validated up front with messages that name the variable. */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  /** undefined: the embedded example store. */
  readonly store: StoreLocation | undefined;
  readonly s3: S3Settings;
  readonly cacheControl: string;
  readonly aliasCacheControl: string;
  readonly logFormat: "text" | "json";
  readonly shutdownGraceMs: number;
  /** After SIGTERM: /readyz answers 503 while the server still accepts, for this long. */
  readonly drainDelayMs: number;
  /** In-memory cache in front of the store; ttlSeconds 0 turns it off. */
  readonly cache: { readonly ttlSeconds: number; readonly maxBytes: number };
  /** Disk copies of large objects of a remote store; undefined: off. */
  readonly diskCache: { readonly dir: string; readonly maxBytes: number } | undefined;
  /** Bytes all streaming downloads may hold in memory at once. */
  readonly streamBudget: number;
  readonly storePolicy: { readonly timeoutMs: number; readonly stallMs: number; readonly retries: number };
  /** Prometheus metrics: off, on the main port (port undefined), or on a port of their own. */
  readonly metrics: { readonly enabled: boolean; readonly port: number | undefined };
  readonly access: AccessSettings;
}

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

type Env = Readonly<Record<string, string | undefined>>;

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

const optional = <K extends string, V>(key: K, value: V | undefined) => (value === undefined ? {} : ({ [key]: value } as Record<K, V>));
const envSource = (read: EnvReader, name: string): Source | undefined => {
  const text = read.get(name);
  return text === undefined ? undefined : { text, from: `${name}=${text}` };
};

/** `auth`: how the server runs its credential checks (the Node entry's bcrypt thread). */
export function loadConfig(env: Env, auth: AuthenticatorOptions = {}): ServerConfig {
  const read = new EnvReader(env);
  const store = read.store("STORE");
  const s3 = read.s3();
  read.problems.push(...cacheControlProblems(read.get("CACHE_CONTROL"), read.get("ALIAS_CACHE_CONTROL")));
  const cacheControl = read.get("CACHE_CONTROL") ?? DEFAULT_CACHE_CONTROL;
  const aliasCacheControl = read.get("ALIAS_CACHE_CONTROL") ?? DEFAULT_ALIAS_CACHE_CONTROL;
  const logFormat = read.get("LOG_FORMAT") ?? "text";
  if (logFormat !== "text" && logFormat !== "json") read.problems.push(`LOG_FORMAT=${logFormat} must be text or json`);
  const cacheDir = read.get("CACHE_DIR");
  const timeoutMs = read.integer("STORE_TIMEOUT_MS", 5_000, 100, 600_000);
  const config: ServerConfig = {
    port: read.integer("PORT", 8080, 0, 65535),
    host: read.get("HOST") ?? "0.0.0.0",
    store,
    s3,
    cacheControl,
    aliasCacheControl,
    logFormat: logFormat === "json" ? "json" : "text",
    shutdownGraceMs: read.integer("SHUTDOWN_GRACE_SECONDS", 30, 0, 3600) * 1000,
    drainDelayMs: read.integer("DRAIN_DELAY_SECONDS", 5, 0, 600) * 1000,
    cache: {
      ttlSeconds: read.integer("CACHE_TTL_SECONDS", 30, 0, 86_400),
      maxBytes: read.integer("CACHE_MAX_MB", 128, 1, 65_536) * 1024 * 1024,
    },
    diskCache:
      cacheDir === undefined || cacheDir === "off"
        ? undefined
        : { dir: cacheDir, maxBytes: read.integer("CACHE_DIR_MAX_MB", 2048, 16, 16 * 1024 * 1024) * 1024 * 1024 },
    streamBudget: read.integer("STREAM_BUFFER_MB", 16, 1, 4096) * 1024 * 1024,
    storePolicy: {
      timeoutMs,
      stallMs: read.integer("STORE_STALL_TIMEOUT_MS", Math.max(timeoutMs, 10_000), 100, 600_000),
      retries: read.integer("STORE_RETRIES", 2, 0, 10),
    },
    metrics: {
      enabled: read.boolean("METRICS", true),
      port: read.get("METRICS_PORT") === undefined ? undefined : read.integer("METRICS_PORT", 9090, 0, 65535),
    },
    access: accessSettings(
      {
        ...optional("basic", read.source("AUTH_BASIC")),
        ...optional("tokens", read.source("AUTH_TOKENS")),
        ...optional("catalog", envSource(read, "CATALOG")),
        ...optional("allow", envSource(read, "ALLOW_CIDRS")),
        ...optional("trustedProxies", envSource(read, "TRUSTED_PROXIES")),
      },
      read.problems,
      auth,
    ),
  };
  read.check();
  return config;
}
