import { readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { parseSnapshot, releasePlan } from "../../uploader/release.ts";

/** The release snapshot Higress publishes per gateway release (shape: test/fixtures, from the 2.2.5 snapshot). */
const SAMPLE = readFileSync(path.join(import.meta.dirname, "../fixtures/higress-release-snapshot-2.2.5.json"), "utf8");

describe("release snapshots", () => {
  test("the 2.2.5 snapshot: each plugin under the plugin server's path (else the Console's name), pulled by its digest", () => {
    const release = parseSnapshot(SAMPLE, "2.2.5.json");
    expect(release.gatewayVersion).toBe("2.2.5");
    expect(release.previousRelease).toBe("2.2.4");
    expect(release.plugins.map((p) => [p.name, p.version, p.source.ref.host, p.source.ref.repository, p.source.ref.tag, p.source.ref.digest])).toEqual([
      ["ai-agent", "2.0.2", "higress-registry.cn-hangzhou.cr.aliyuncs.com", "plugins/ai-agent", "2.0.2", "sha256:31938d2083ebd1ce5bc84e19f7d86f143ac39825b545b247b71823d83d16d63d"],
      ["ai-context-limit", "1.0.0", "higress-registry.cn-hangzhou.cr.aliyuncs.com", "plugins/ai-context-limit", "1.0.0", "sha256:6325ca94b20a3f5ab5e9df4014b60daca8d86e7d0999e74abb2c1ddd29b36f83"],
      ["ai-data-masking", "2.0.2", "higress-registry.cn-hangzhou.cr.aliyuncs.com", "plugins/ai-data-masking", "2.0.2", "sha256:86745533c6b295e31ee40101f2afb9f0e736fc12acd5e8868658094cdec42c7e"],
    ]);
  });

  test("fields it does not know are ignored; the ones it uses are checked, each named", () => {
    const raw = JSON.parse(SAMPLE);
    const edited = (change: (s: typeof raw) => void) => {
      const copy = structuredClone(raw);
      change(copy);
      return JSON.stringify(copy);
    };
    expect(() => parseSnapshot(edited((s) => (s.newTopLevelField = { x: 1 })), "s")).not.toThrow();
    expect(() => parseSnapshot(edited((s) => (s.plugins[1].digest = "sha256:abc")), "s")).toThrow("plugins[1].digest: digest must be sha256:<64 hex digits>");
    expect(() => parseSnapshot(edited((s) => (s.schemaVersion = 2)), "s")).toThrow("schemaVersion: schemaVersion must be 1");
    expect(() => parseSnapshot(edited((s) => (s.plugins[0].consumers.pluginServer.httpPath = "../x")), "s")).toThrow("plugins[0].consumers.pluginServer.httpPath: pluginServer.httpPath must be a plugin name");
    expect(() => parseSnapshot(edited((s) => s.plugins.push(s.plugins[0])), "s")).toThrow("lists ai-agent 2.0.2 twice");
    expect(() => parseSnapshot("{", "s")).toThrow(/release snapshot s is not JSON/);
  });

  test("one version with two digests across snapshots is refused: a version is one set of bytes", () => {
    const a = parseSnapshot(SAMPLE, "a");
    const other = JSON.parse(SAMPLE);
    other.gatewayVersion = "2.2.6";
    other.plugins[0].digest = `sha256:${"1".repeat(64)}`;
    expect(() => releasePlan([a, parseSnapshot(JSON.stringify(other), "b")])).toThrow(`ai-agent 2.0.2 has two digests in the snapshots (sha256:31938d2083ebd1ce5bc84e19f7d86f143ac39825b545b247b71823d83d16d63d and sha256:${"1".repeat(64)} in 2.2.6)`);
    expect(releasePlan([a, a]).sources).toHaveLength(3);
  });
});
