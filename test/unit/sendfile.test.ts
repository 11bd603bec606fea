import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { describe, expect, test } from "vitest";
import { loadSendfile } from "../../src/node/sendfile.ts";

/** How SENDFILE's modes treat an addon that is not there (the process-level tests use the built one). */
describe("loadSendfile", () => {
  const missing = ["/nonexistent/sendfile.node"];
  test("off never loads it", () => {
    expect(loadSendfile("off", missing)).toEqual({ summary: "sendfile: off (SENDFILE=off)" });
  });
  test("auto without the addon runs without it and says why", () => {
    const result = loadSendfile("auto", missing);
    expect(result.send).toBeUndefined();
    expect(result.summary).toBe("sendfile: off (dist/sendfile.node was not built (no C compiler at build time); file bytes are copied)");
  });
  test("on without the addon is an error naming the variable", () => {
    expect(() => loadSendfile("on", missing)).toThrow("SENDFILE=on, but sendfile(2) is unavailable: dist/sendfile.node was not built");
  });
  test("a file that is not the addon is named with the loader's error", async () => {
    const dir = await mkdtemp(path.join(tmpdir(), "sendfile-"));
    await writeFile(path.join(dir, "sendfile.node"), "not an ELF object");
    await writeFile(path.join(dir, "other.json"), "{}");
    expect(() => loadSendfile("on", [path.join(dir, "sendfile.node")])).toThrow(/sendfile\.node did not load: .*(file too short|invalid ELF header)/);
    expect(() => loadSendfile("on", [path.join(dir, "other.json")])).toThrow(/other\.json did not load: not the sendfile addon/);
  });
  test("the built addon loads", () => {
    expect(loadSendfile("on").summary).toBe("sendfile: on");
  });
});
