import type { AuthenticatorOptions } from "../access/authenticator.ts";
import { accessSettings, type AccessSettings, type Source } from "../access/settings.ts";
import { EnvReader, type Env, type S3Settings } from "../config/env.ts";
import type { StoreLocation } from "../storage/location.ts";
import type { SendfileMode } from "./sendfile.ts";
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
  /** sendfile(2) for plugin files on disk: auto (when the addon was built), on (required), off. */
  readonly sendfile: SendfileMode;
  readonly storePolicy: { readonly timeoutMs: number; readonly stallMs: number; readonly retries: number };
  /** Prometheus metrics: off, on the main port (port undefined), or on a port of their own. */
  readonly metrics: { readonly enabled: boolean; readonly port: number | undefined };
  readonly access: AccessSettings;
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
  const sendfile = read.get("SENDFILE") ?? "auto";
  if (sendfile !== "auto" && sendfile !== "on" && sendfile !== "off") read.problems.push(`SENDFILE=${sendfile} must be auto, on or off`);
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
    sendfile: sendfile === "on" || sendfile === "off" ? sendfile : "auto",
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
