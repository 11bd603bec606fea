import { parseStoreLocation, LocationError, type StoreLocation } from "../storage/location.ts";
import { DEFAULT_CACHE_CONTROL } from "../app.ts";

/** Server configuration from environment variables, validated up front with messages that name the variable. */
export interface ServerConfig {
  readonly port: number;
  readonly host: string;
  /** undefined: the embedded example store. */
  readonly store: StoreLocation | undefined;
  readonly s3: S3Settings;
  readonly cacheControl: string;
  readonly logFormat: "text" | "json";
  readonly shutdownGraceMs: number;
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

export function loadConfig(env: Env): ServerConfig {
  const problems: string[] = [];
  const get = (name: string) => {
    const value = env[name];
    return value === undefined || value.trim() === "" ? undefined : value.trim();
  };

  const integer = (name: string, fallback: number, min: number, max: number) => {
    const text = get(name);
    if (text === undefined) return fallback;
    const value = Number(text);
    if (!/^\d+$/.test(text) || value < min || value > max) {
      problems.push(`${name}=${text} is not a whole number from ${min} to ${max}`);
      return fallback;
    }
    return value;
  };

  const boolean = (name: string, fallback: boolean) => {
    const text = get(name)?.toLowerCase();
    if (text === undefined) return fallback;
    if (["1", "true", "yes", "on"].includes(text)) return true;
    if (["0", "false", "no", "off"].includes(text)) return false;
    problems.push(`${name}=${text} is not a boolean (use true or false)`);
    return fallback;
  };

  let store: StoreLocation | undefined;
  const storeText = get("STORE");
  if (storeText !== undefined) {
    try {
      store = parseStoreLocation(storeText);
    } catch (error) {
      if (!(error instanceof LocationError)) throw error;
      problems.push(`STORE=${storeText} ${error.message}`);
    }
  }

  const endpoint = get("S3_ENDPOINT");
  if (endpoint !== undefined) {
    let url: URL | undefined;
    try {
      url = new URL(endpoint);
    } catch {
      // reported below
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) {
      problems.push(`S3_ENDPOINT=${endpoint} is not an http:// or https:// URL`);
    } else if (url.username || url.password) {
      problems.push("S3_ENDPOINT must not carry credentials; use AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY");
    }
  }

  const accessKeyId = get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = get("AWS_SECRET_ACCESS_KEY");
  if ((accessKeyId === undefined) !== (secretAccessKey === undefined)) {
    problems.push(
      `${accessKeyId === undefined ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY"} is missing: set both AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or neither to use the default AWS credential chain`,
    );
  }

  const cacheControl = get("CACHE_CONTROL") ?? DEFAULT_CACHE_CONTROL;
  if (/[\r\n\0]/.test(cacheControl)) problems.push("CACHE_CONTROL must be a single header value line");

  const logFormat = get("LOG_FORMAT") ?? "text";
  if (logFormat !== "text" && logFormat !== "json") problems.push(`LOG_FORMAT=${logFormat} must be text or json`);

  const config: ServerConfig = {
    port: integer("PORT", 8080, 0, 65535),
    host: get("HOST") ?? "0.0.0.0",
    store,
    s3: {
      ...(endpoint ? { endpoint } : {}),
      region: get("S3_REGION") ?? get("AWS_REGION") ?? "us-east-1",
      // MinIO and radosgw need path-style addressing; AWS itself prefers virtual-hosted style.
      forcePathStyle: boolean("S3_FORCE_PATH_STYLE", endpoint !== undefined),
      ...(accessKeyId && secretAccessKey ? { credentials: { accessKeyId, secretAccessKey } } : {}),
      maxSockets: integer("S3_MAX_SOCKETS", 256, 1, 65535),
    },
    cacheControl,
    logFormat: logFormat === "json" ? "json" : "text",
    shutdownGraceMs: integer("SHUTDOWN_GRACE_SECONDS", 10, 0, 3600) * 1000,
  };
  if (problems.length > 0) throw new ConfigError(problems);
  return config;
}
