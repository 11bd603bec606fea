import { describe, expect, test } from "vitest";
import { parseAliases } from "../../src/core/aliases.ts";
import { compareVersions } from "../../src/core/versions.ts";
import { parseMetadataJson, referenceTimestamp, renderMetadataText } from "../../src/core/metadata.ts";
import { parsePluginPath } from "../../src/core/paths.ts";
import { loadConfig } from "../../src/node/config.ts";
import { parseStoreLocation } from "../../src/storage/location.ts";
import { parseJsonConfig, parseYamlConfig } from "../../uploader/config.ts";
import { publicOrigin } from "../../src/http/listing.ts";

describe("plugin paths", () => {
  test("parse into typed requests", () => {
    expect(parsePluginPath("/plugins")).toEqual({ kind: "index" });
    expect(parsePluginPath("/plugins/")).toEqual({ kind: "index" });
    expect(parsePluginPath("/plugins/key-auth/")).toEqual({ kind: "plugin", name: "key-auth" });
    expect(parsePluginPath("/plugins/key-auth/1.0.0")).toEqual({ kind: "version", name: "key-auth", version: "1.0.0" });
    expect(parsePluginPath("/plugins/key-auth/2.0.0-rc.1%2Bb5/plugin.wasm")).toEqual({
      kind: "file",
      name: "key-auth",
      version: "2.0.0-rc.1+b5",
      file: "plugin.wasm",
    });
  });

  test.each(["/plugins/-x/1/plugin.wasm", "/plugins/a..b/1/plugin.wasm", "/plugins/a/1./plugin.wasm", "/plugins/a/1/.env"])(
    "%s is refused",
    (path) => expect(() => parsePluginPath(path)).toThrow(expect.objectContaining({ status: 400 })),
  );
});

describe("aliases.json", () => {
  test("maps versions to real versions", () => {
    expect(parseAliases("k", '{"aliases":{"1.0.0":"2.0.0"}}')).toEqual({ "1.0.0": "2.0.0" });
  });
  test.each([
    ["[]", 'expected {"aliases"'],
    ['{"aliases":{"1.0.0":"2.0.0","2.0.0":"3.0.0"}}', "points at another alias"],
    ['{"aliases":{"../x":"2.0.0"}}', "not valid"],
    ['{"aliases":{"1.0.0":2}}', "target is not a string"],
  ])("%s is refused", (text, message) => expect(() => parseAliases("k", text)).toThrow(message));
});

describe("metadata", () => {
  const m = {
    name: "key-auth",
    version: "2.0.0",
    size: 1234567,
    md5: "0123456789abcdef0123456789abcdef",
    sha256: "a".repeat(64),
    created: "2026-02-03T08:00:00.123Z",
    lastModified: "2026-02-03T08:00:00.123Z",
    source: "oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/key-auth:2.0.0",
  };
  test("metadata.txt keeps the reference's five lines first, exactly", () => {
    expect(renderMetadataText(m).split("\n").slice(0, 5)).toEqual([
      "Plugin Name: key-auth",
      "Size: 1234567 bytes",
      "Last Modified: 2026-02-03T08:00:00.123000",
      "Created: 2026-02-03T08:00:00.123000",
      "MD5: 0123456789abcdef0123456789abcdef",
    ]);
    expect(renderMetadataText(m)).toContain(`SHA256: ${"a".repeat(64)}\nVersion: 2.0.0\nSource: oci://`);
    expect(referenceTimestamp("not a date")).toBe("not a date");
  });
  test("metadata.json is validated before it is trusted", () => {
    expect(parseMetadataJson(JSON.stringify(m))).toEqual(m);
    expect(parseMetadataJson(JSON.stringify({ ...m, sha256: "xyz" }))).toBeUndefined();
    expect(parseMetadataJson(JSON.stringify({ ...m, size: -1 }))).toBeUndefined();
    expect(parseMetadataJson("{")).toBeUndefined();
  });
});

describe("store locations and configuration", () => {
  test.each([
    ["file:./store", { kind: "file", root: "./store" }],
    ["file:///srv/plugins", { kind: "file", root: "/srv/plugins" }],
    ["/srv/plugins", { kind: "file", root: "/srv/plugins" }],
    ["s3://plugins", { kind: "s3", bucket: "plugins", prefix: "" }],
    ["s3://plugins/mirror/cn/", { kind: "s3", bucket: "plugins", prefix: "mirror/cn/" }],
    ["./s3:bucket", { kind: "file", root: "./s3:bucket" }],
  ])("%s", (text, expected) => expect(parseStoreLocation(text)).toEqual(expected));

  test.each([
    ["s3:/bucket", '"s3:/bucket" looks like a URL but is not one of the forms file:<dir>, s3://<bucket>[/<prefix>] or a directory path (did you mean s3://bucket?); write ./s3:/bucket for a directory of that name'],
    ["s3:bucket/mirror", '"s3:bucket/mirror" looks like a URL but is not one of the forms file:<dir>, s3://<bucket>[/<prefix>] or a directory path (did you mean s3://bucket/mirror?)'],
    ["S3://bucket", 'scheme "S3:" is not supported; use file:<dir> or s3://<bucket>[/<prefix>] (in lower case)'],
    ["r2:bucket", '"r2:bucket" looks like a URL but is not one of the forms'],
    ["https://bucket.s3.amazonaws.com", 'scheme "https:" is not supported'],
  ])("near-URL %s is refused, never taken for a directory", (text, message) => expect(() => parseStoreLocation(text)).toThrow(message));

  test("defaults", () => {
    const config = loadConfig({});
    expect(config).toMatchObject({ port: 8080, host: "0.0.0.0", store: undefined, logFormat: "text" });
    expect(config.s3).toMatchObject({ region: "us-east-1", forcePathStyle: false, maxSockets: 256 });
    expect(config.s3.credentials).toBeUndefined();
    expect(config.cache).toEqual({ ttlSeconds: 30, maxBytes: 128 * 1024 * 1024 });
    expect(loadConfig({ CACHE_TTL_SECONDS: "0" }).cache.ttlSeconds).toBe(0);
    expect(() => loadConfig({ CACHE_MAX_MB: "0" })).toThrow("CACHE_MAX_MB=0 is not a whole number from 1 to 65536");
  });

  test("a custom endpoint turns on path-style addressing unless told otherwise", () => {
    expect(loadConfig({ S3_ENDPOINT: "http://minio:9000" }).s3.forcePathStyle).toBe(true);
    expect(loadConfig({ S3_ENDPOINT: "https://x.r2.cloudflarestorage.com", S3_FORCE_PATH_STYLE: "false" }).s3.forcePathStyle).toBe(false);
  });

  test("credentials in the endpoint URL are refused", () => {
    expect(() => loadConfig({ S3_ENDPOINT: "http://key:secret@minio:9000" })).toThrow("must not carry credentials");
  });
});

describe("the origin shown in the catalog", () => {
  test.each([
    [{}, "http://plugins.svc:8080"],
    [{ "x-forwarded-proto": "https", "x-forwarded-host": "plugins.example.com" }, "https://plugins.example.com"],
    [{ "x-forwarded-proto": "https, http", "x-forwarded-host": "a.example.com:8443, b" }, "https://a.example.com:8443"],
    [{ "x-forwarded-proto": "gopher", "x-forwarded-host": "<script>" }, "http://plugins.svc:8080"],
  ])("%o -> %s", (headers, expected) => {
    expect(publicOrigin("http://plugins.svc:8080/plugins/", new Headers(headers))).toBe(expected);
  });
});

describe("YAML configuration", () => {
  test("is the JSON config written as YAML, every scalar a string", () => {
    const yaml = `
mirrors:
  higress-registry.cn-hangzhou.cr.aliyuncs.com: harbor.example.com/higress
plugins:
  key-auth:
    versions:
      2.0: oci://higress-registry.cn-hangzhou.cr.aliyuncs.com/plugins/key-auth:2.0.0
    aliases:
      1.0: 2.0
`;
    const plan = parseYamlConfig(yaml, "plugins.yaml");
    expect(plan.sources).toEqual([
      { name: "key-auth", version: "2.0", ref: { host: "higress-registry.cn-hangzhou.cr.aliyuncs.com", repository: "plugins/key-auth", tag: "2.0.0" } },
    ]);
    expect(plan.aliases.get("key-auth")).toEqual({ "1.0": "2.0" });
    expect(plan.mirrors.get("higress-registry.cn-hangzhou.cr.aliyuncs.com")).toBe("harbor.example.com/higress");
    expect(() => parseYamlConfig("plugins: [unclosed", "bad.yaml")).toThrow("bad.yaml is not valid YAML");
  });
});

describe("config files are strict (a mistyped key is an error with the path, not a setting left out)", () => {
  const REF = "oci://h.example/plugins/key-auth:2.0.0";
  const json = (value: unknown) => () => parseJsonConfig(JSON.stringify(value), "c.json");
  test.each([
    [{ plugins: { "key-auth": { version: { "2.0.0": REF } } } }, 'c.json: plugins.key-auth: unknown key "version" (did you mean "versions"?)'],
    [{ mirror: { h: "m" }, plugins: { "key-auth": { versions: { "2.0.0": REF } } } }, 'c.json: unknown key "mirror" (did you mean "mirrors"?)'],
    [{ credentials: { h: { usernameENV: "U", passwordEnv: "P" } }, plugins: {} }, 'c.json: credentials.h: unknown key "usernameENV" (did you mean "usernameEnv"?)'],
    [{ plugins: { "key-auth": { versions: { "2.0.0": 5 } } } }, "c.json: plugins.key-auth.versions.2.0.0 must be string"],
    [{ plugins: { "key-auth": { aliases: { "1.0.0": "2.0.0" } } } }, "c.json: plugins.key-auth lists no versions"],
    [{ plugins: {} }, "c.json lists no plugin versions"],
    [{ unrelated: true }, 'c.json: unknown key "unrelated" (known: mirrors, credentials, plugins)'],
  ])("%j", (config, message) => expect(json(config)).toThrow(message));

  test("YAML alike", () => {
    expect(() => parseYamlConfig(`plugins:\n  key-auth:\n    version:\n      2.0.0: ${REF}\n`, "c.yaml")).toThrow('c.yaml: plugins.key-auth: unknown key "version" (did you mean "versions"?)');
  });
});

describe("version order", () => {
  test("Semantic Versioning precedence: 1.9.0 before 1.10.0, a pre-release below its release; other versions numeric-aware", () => {
    expect(["2.0.1", "2.0.0", "2.0.0-rc.1", "1.10.0", "1.9.0", "2.0.0-rc.10", "2.0.0-rc.2", "2.0.0-alpha"].sort(compareVersions)).toEqual([
      "1.9.0", "1.10.0", "2.0.0-alpha", "2.0.0-rc.1", "2.0.0-rc.2", "2.0.0-rc.10", "2.0.0", "2.0.1",
    ]);
    expect(["10.0", "2.0", "2.0.0"].sort(compareVersions)).toEqual(["2.0", "2.0.0", "10.0"]);
  });
});
