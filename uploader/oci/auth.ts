import { execFile } from "node:child_process";
import { readFile } from "node:fs/promises";
import { homedir } from "node:os";
import path from "node:path";

export interface Credentials {
  readonly username: string;
  readonly password: string;
}

export type Challenge =
  | { readonly scheme: "basic" }
  | { readonly scheme: "bearer"; readonly realm: string; readonly service?: string; readonly scope?: string };

/** Parses a WWW-Authenticate header (RFC 9110 section 11.6.1) into the challenge we can answer. */
export function parseChallenge(header: string | null): Challenge | undefined {
  if (!header) return undefined;
  const m = /^\s*(\w+)\s*(.*)$/s.exec(header);
  if (!m) return undefined;
  const scheme = m[1]!.toLowerCase();
  if (scheme === "basic") return { scheme: "basic" };
  if (scheme !== "bearer") return undefined;
  const params: Record<string, string> = {};
  for (const p of m[2]!.matchAll(/(\w+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))/g)) {
    params[p[1]!.toLowerCase()] = (p[2] ?? p[3] ?? "").replace(/\\(.)/g, "$1");
  }
  if (!params.realm) return undefined;
  return {
    scheme: "bearer",
    realm: params.realm,
    ...(params.service ? { service: params.service } : {}),
    ...(params.scope ? { scope: params.scope } : {}),
  };
}

export const basicAuth = (c: Credentials) => `Basic ${Buffer.from(`${c.username}:${c.password}`).toString("base64")}`;

interface DockerConfig {
  auths?: Record<string, { auth?: string; username?: string; password?: string }>;
  credsStore?: string;
  credHelpers?: Record<string, string>;
}

/**
 * Credentials for the given registry hosts from a Docker config.json: `auths` entries, and
 * credential helpers (`credHelpers` per host, else `credsStore`), asked as docker does:
 * `docker-credential-<helper> get` with the host on stdin.
 */
export async function dockerConfigCredentials(hosts: readonly string[], file?: string): Promise<Map<string, Credentials>> {
  const location = file ?? path.join(process.env.DOCKER_CONFIG ?? path.join(homedir(), ".docker"), "config.json");
  let config: DockerConfig;
  try {
    config = JSON.parse(await readFile(location, "utf8")) as DockerConfig;
  } catch {
    return new Map();
  }
  const result = new Map<string, Credentials>();
  for (const [key, entry] of Object.entries(config.auths ?? {})) {
    const host = key.replace(/^https?:\/\//, "").replace(/\/.*$/, "");
    if (entry.auth) {
      const decoded = Buffer.from(entry.auth, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon > 0) result.set(host, { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) });
    } else if (entry.username && entry.password) {
      result.set(host, { username: entry.username, password: entry.password });
    }
  }
  for (const host of hosts) {
    const helper = config.credHelpers?.[host] ?? config.credsStore;
    if (result.has(host) || !helper || !/^[A-Za-z0-9._-]+$/.test(helper)) continue;
    const found = await fromHelper(helper, host);
    if (found) result.set(host, found);
  }
  return result;
}

/** A helper that does not know the host (or is not installed) means anonymous access, as with docker. */
async function fromHelper(helper: string, host: string): Promise<Credentials | undefined> {
  const output = await new Promise<string | undefined>((resolve) => {
    const child = execFile(`docker-credential-${helper}`, ["get"], { timeout: 10_000 }, (error, stdout) =>
      resolve(error ? undefined : stdout),
    );
    child.stdin?.end(host);
  });
  try {
    const { Username, Secret } = JSON.parse(output ?? "") as { Username?: string; Secret?: string };
    return Username && Secret ? { username: Username, password: Secret } : undefined;
  } catch {
    return undefined;
  }
}
