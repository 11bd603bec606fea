import { readFile } from "node:fs/promises";
import * as v from "valibot";
import { parse as parseYaml } from "yaml";
import { checkName, checkVersion } from "../src/core/names.ts";
import { UsageError } from "./errors.ts";
import { closest } from "./suggest.ts";
import type { Credentials } from "./oci/auth.ts";
import { parseReference, type ImageReference } from "./oci/reference.ts";
import defaultConfig from "./plugins.default.json" with { type: "json" };

/** What a sync should make true in the store, parsed and validated from a config file. */
export interface SyncPlan {
  /** One entry per published version. */
  readonly sources: readonly PluginSource[];
  /** Per plugin: version -> version whose files it serves. */
  readonly aliases: ReadonlyMap<string, Readonly<Record<string, string>>>;
  /** Registry host -> mirror host with optional path prefix. */
  readonly mirrors: ReadonlyMap<string, string>;
  /** Registry host -> credentials. */
  readonly credentials: ReadonlyMap<string, Credentials>;
}

export interface PluginSource {
  readonly name: string;
  readonly version: string;
  readonly ref: ImageReference;
  /** Credentials for this plugin's registry only (per-plugin, over the host's). */
  readonly credentials?: Credentials;
}

/** The default configuration ships inside the bundle: every official plugin and Console version. */
export const DEFAULT_CONFIG_NAME = "the default official configuration (uploader/plugins.default.json)";

/** Reads a config: JSON or YAML by extension, else plugins.properties; no file means the default official one. */
export async function loadPlan(file: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<SyncPlan> {
  if (file === undefined) return parseJsonConfig(JSON.stringify(defaultConfig), DEFAULT_CONFIG_NAME, env);
  let text: string;
  try {
    text = await readFile(file, "utf8");
  } catch (error) {
    throw new UsageError(`cannot read config ${String(file)}: ${(error as NodeJS.ErrnoException).code ?? error}`);
  }
  const name = String(file);
  if (/\.json$/i.test(name)) return parseJsonConfig(text, name, env);
  if (/\.ya?ml$/i.test(name)) return parseYamlConfig(text, name, env);
  return parseProperties(text, name);
}

/**
 * The reference server's plugins.properties: `<served-name>=oci://<registry>/<repo>:<tag>`.
 * Each plugin is published under its tag and, like the reference, also answers `1.0.0`
 * (every Console from 2.1.5 to 2.2.3 asks for 1.0.0).
 */
export function parseProperties(text: string, file = "plugins.properties"): SyncPlan {
  const sources: PluginSource[] = [];
  const aliases = new Map<string, Record<string, string>>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith("!")) return;
    const where = `${file}:${index + 1}`;
    const eq = line.search(/[=:]/); // names hold neither, so the first one separates
    // `key-auth oci://...` has no "=": its first ":" is the scheme's, and what precedes it is no name.
    if (eq < 0 || (!line.includes("=") && /\s/.test(line.slice(0, eq).trim()))) {
      throw new UsageError(`${where}: expected <name>=oci://<registry>/<repository>:<tag> (this line has no "=")`);
    }
    const name = line.slice(0, eq).trim();
    const problem = checkName(name);
    if (problem) throw new UsageError(`${where}: ${problem}`);
    const ref = parseAt(where, line.slice(eq + 1).trim());
    if (!ref.tag || checkVersion(ref.tag)) {
      throw new UsageError(`${where}: ${name} needs a tag that can serve as its version (got ${ref.tag ?? "a digest only"})`);
    }
    if (sources.some((s) => s.name === name)) throw new UsageError(`${where}: ${name} is listed twice`);
    sources.push({ name, version: ref.tag, ref });
    if (ref.tag !== "1.0.0") aliases.set(name, { "1.0.0": ref.tag });
  });
  return { sources, aliases, mirrors: new Map(), credentials: new Map() };
}

type Json = Record<string, unknown>;

/**
 * The richer JSON config:
 * {
 *   "mirrors": {"<registry>": "<mirror host>[/<prefix>]"},
 *   "credentials": {"<registry>": {"username": "...", "password": "..."} | {"usernameEnv": "U", "passwordEnv": "P"}},
 *   "plugins": {"<name>": {"versions": {"<version>": "oci://..."}, "aliases": {"<version>": "<version>"}, "credentials": {...}}}
 * }
 */
export function parseJsonConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): SyncPlan {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${file} is not valid JSON: ${(error as Error).message}`);
  }
  checkShape(root, file);
  const object = (value: unknown, where: string): Json => {
    if (typeof value !== "object" || value === null || Array.isArray(value)) throw new UsageError(`${file}: ${where} must be an object`);
    return value as Json;
  };
  const strings = (value: unknown, where: string): Record<string, string> => {
    const o = object(value ?? {}, where);
    for (const [k, v] of Object.entries(o)) if (typeof v !== "string") throw new UsageError(`${file}: ${where}.${k} must be a string`);
    return o as Record<string, string>;
  };
  const config = object(root, "the top level");
  const mirrors = new Map(Object.entries(strings(config.mirrors, "mirrors")));
  const credentials = new Map<string, Credentials>();
  for (const [host, value] of Object.entries(object(config.credentials ?? {}, "credentials"))) {
    credentials.set(host, credentialsFrom(value, `${file}: credentials.${host}`, env));
  }
  const sources: PluginSource[] = [];
  const aliases = new Map<string, Record<string, string>>();
  for (const [name, value] of Object.entries(object(config.plugins ?? {}, "plugins"))) {
    const where = `plugins.${name}`;
    const problem = checkName(name);
    if (problem) throw new UsageError(`${file}: ${where}: ${problem}`);
    const entry = object(value, where);
    const own = entry.credentials === undefined ? undefined : credentialsFrom(entry.credentials, `${file}: ${where}.credentials`, env);
    const versions = strings(entry.versions, `${where}.versions`);
    for (const [version, reference] of Object.entries(versions)) {
      const bad = checkVersion(version);
      if (bad) throw new UsageError(`${file}: ${where}.versions: ${bad}`);
      sources.push({ name, version, ref: parseAt(`${file}: ${where}.versions.${version}`, reference), ...(own ? { credentials: own } : {}) });
    }
    const pluginAliases = strings(entry.aliases, `${where}.aliases`);
    for (const [from, to] of Object.entries(pluginAliases)) {
      const bad = checkVersion(from) ?? checkVersion(to);
      if (bad) throw new UsageError(`${file}: ${where}.aliases: ${bad}`);
      if (from in versions) throw new UsageError(`${file}: ${where}.aliases.${from}: ${from} is also a published version`);
      if (to in pluginAliases) throw new UsageError(`${file}: ${where}.aliases.${from}: ${to} is itself an alias`);
    }
    if (Object.keys(pluginAliases).length > 0) aliases.set(name, pluginAliases);
    if (Object.keys(versions).length === 0) throw new UsageError(`${file}: ${where} lists no versions ("versions": {"<version>": "oci://..."})`);
  }
  if (sources.length === 0) throw new UsageError(`${file} lists no plugin versions ("plugins": {"<name>": {"versions": {...}}})`);
  return { sources, aliases, mirrors, credentials };
}

/** The JSON config's structure written as YAML. */
export function parseYamlConfig(text: string, file: string, env: NodeJS.ProcessEnv = process.env): SyncPlan {
  let value: unknown;
  try {
    // failsafe: every scalar stays a string, so `1.0: 2.0` means versions, not numbers.
    value = parseYaml(text, { schema: "failsafe", maxAliasCount: 100 });
  } catch (error) {
    throw new UsageError(`${file} is not valid YAML: ${(error as Error).message.split("\n")[0]}`);
  }
  return parseJsonConfig(JSON.stringify(value ?? {}), file, env);
}

function parseAt(where: string, reference: string): ImageReference {
  try {
    return parseReference(reference);
  } catch (error) {
    throw new UsageError(`${where}: ${(error as Error).message}`);
  }
}

function credentialsFrom(value: unknown, where: string, env: NodeJS.ProcessEnv): Credentials {
  const o = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const pick = (key: "username" | "password") => {
    if (typeof o[key] === "string") return o[key] as string;
    const name = o[`${key}Env`];
    if (typeof name === "string") {
      const v = env[name];
      if (!v) throw new UsageError(`${where}: environment variable ${name} (${key}) is not set`);
      return v;
    }
    throw new UsageError(`${where}: needs ${key} or ${key}Env`);
  };
  return { username: pick("username"), password: pick("password") };
}

const CREDENTIALS = v.strictObject({
  username: v.optional(v.string()),
  password: v.optional(v.string()),
  usernameEnv: v.optional(v.string()),
  passwordEnv: v.optional(v.string()),
});
const STRINGS = v.record(v.string(), v.string());
/** The config's structure, strict at every level: a mistyped key is an error, not a setting quietly left out. */
const CONFIG = v.strictObject({
  $comment: v.optional(v.string()),
  mirrors: v.optional(STRINGS),
  credentials: v.optional(v.record(v.string(), CREDENTIALS)),
  plugins: v.optional(v.record(v.string(), v.strictObject({ versions: v.optional(STRINGS), aliases: v.optional(STRINGS), credentials: v.optional(CREDENTIALS) }))),
});
const KEYS = {
  top: Object.keys(CONFIG.entries),
  plugin: ["versions", "aliases", "credentials"],
  credentials: Object.keys(CREDENTIALS.entries),
};

function checkShape(root: unknown, file: string): void {
  const result = v.safeParse(CONFIG, root);
  if (result.success) return;
  const issue: v.BaseIssue<unknown> = result.issues[0];
  const path = (issue.path ?? []).map((p) => String(p.key));
  const where = path.join(".");
  if (issue.type === "strict_object" && path.length > 0) {
    const key = path.at(-1)!;
    const allowed = path.length === 1 ? KEYS.top : path.length === 3 && path[0] === "plugins" ? KEYS.plugin : KEYS.credentials;
    const known = allowed.filter((k) => !k.startsWith("$"));
    const near = closest(key, known);
    const hint = near ? ` (did you mean "${near}"?)` : ` (known: ${known.join(", ")})`;
    throw new UsageError(`${file}: ${path.length > 1 ? `${path.slice(0, -1).join(".")}: ` : ""}unknown key "${key}"${hint}`);
  }
  const expected = issue.expected ? `must be ${issue.expected === "Object" ? "an object" : issue.expected}` : issue.message;
  throw new UsageError(`${file}: ${where || "the top level"} ${expected}${issue.received ? `, not ${issue.received}` : ""}`);
}
