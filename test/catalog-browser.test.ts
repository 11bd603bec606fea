import { execFile } from "node:child_process";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { chromium, type Browser } from "playwright-core";
import { afterAll, beforeAll, describe, expect, inject, test } from "vitest";
import { HOSTILE_README, sha256 } from "./support/fixtures.ts";
import { request } from "./support/http.ts";
import { ROOT, startNode, type NodeServer } from "./support/targets.ts";
import { wasmModule } from "./support/wasm.ts";

/**
 * The catalog in headless Chromium, over the Node entry, with a store the uploader filled:
 * the filter narrows the list, a copied URL downloads the plugin, a hostile README runs nothing.
 */

const run = promisify(execFile);
const executablePath = inject("chromium");
const PLUGINS = { "key-auth": wasmModule(5000, 1), "ai-proxy": wasmModule(7000, 2), "basic-auth": wasmModule(3000, 3) };

describe.skipIf(!executablePath)("catalog page in Chromium", () => {
  let server: NodeServer;
  let browser: Browser;

  beforeAll(async () => {
    const source = await mkdtemp(path.join(tmpdir(), "catalog-src-"));
    for (const [name, wasm] of Object.entries(PLUGINS)) {
      const dir = path.join(source, name, "2.0.0");
      await mkdir(dir, { recursive: true });
      await writeFile(path.join(dir, "plugin.wasm"), wasm);
      await writeFile(path.join(dir, "README.md"), name === "basic-auth" ? HOSTILE_README : `# ${name}\n\nThe ${name} plugin.\n`);
    }
    const store = await mkdtemp(path.join(tmpdir(), "catalog-store-"));
    await run(process.execPath, [path.join(ROOT, "dist/uploader.js"), "import-dir", source, "--to", store]);
    server = await startNode("catalog", { STORE: `file:${store}` });
    browser = await chromium.launch({
      executablePath: executablePath!,
      args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run"],
    });
  }, 60_000);

  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  const open = async (url: string, viewport = { width: 1280, height: 900 }) => {
    const context = await browser.newContext({ viewport });
    await context.grantPermissions(["clipboard-read", "clipboard-write"], { origin: server.url });
    const page = await context.newPage();
    const problems: string[] = [];
    page.on("pageerror", (e) => problems.push(e.message));
    page.on("console", (m) => m.type() === "error" && problems.push(m.text()));
    page.on("dialog", (d) => {
      problems.push(`dialog: ${d.message()}`);
      void d.dismiss();
    });
    await page.goto(url);
    return { page, problems, context };
  };

  test("lists every plugin; the filter narrows it; a copied URL downloads the plugin", async () => {
    const { page, problems, context } = await open(`${server.url}/`);
    expect(await page.title()).toBe("Higress plugins");
    await expect.poll(() => page.locator("article.plugin:visible").count()).toBe(3);

    await page.getByLabel("Filter plugins").fill("auth");
    await expect.poll(() => page.locator("article.plugin:visible h2").allTextContents()).toEqual(["basic-auth", "key-auth"]);
    await page.getByLabel("Filter plugins").fill("key");
    await expect.poll(() => page.locator("article.plugin:visible h2").allTextContents()).toEqual(["key-auth"]);
    expect(await page.locator("#count").textContent()).toBe("1 of 3 plugins");

    await page.getByRole("button", { name: "Copy URL of key-auth 2.0.0" }).click();
    const url = await page.evaluate(() => navigator.clipboard.readText());
    expect(url).toBe(`${server.url}/plugins/key-auth/2.0.0/plugin.wasm`);
    const download = await request(url, { headers: { "Accept-Encoding": "identity" } });
    expect(sha256(download.body)).toBe(sha256(PLUGINS["key-auth"]));
    await expect.poll(() => page.locator("#status").textContent()).toContain("Copied URL of key-auth 2.0.0");

    await page.locator("article.plugin:visible").getByText("WasmPlugin YAML and details").click();
    await page.getByRole("button", { name: "Copy WasmPlugin YAML for key-auth 2.0.0" }).click();
    const yaml = await page.evaluate(() => navigator.clipboard.readText());
    expect(yaml).toContain(`url: ${server.url}/plugins/key-auth/2.0.0/plugin.wasm`);
    expect(yaml).toContain(`sha256: ${sha256(PLUGINS["key-auth"])}`);

    await page.getByRole("button", { name: "Copy Console URL pattern" }).click();
    expect(await page.evaluate(() => navigator.clipboard.readText())).toBe(
      `HIGRESS_ADMIN_WASM_PLUGIN_CUSTOM_IMAGE_URL_PATTERN=${server.url}/plugins/\${name}/\${version}/plugin.wasm`,
    );
    await page.getByLabel("Filter plugins").fill("");
    await page.screenshot({ path: path.join(ROOT, "reports/catalog.png"), fullPage: true });
    expect(problems).toEqual([]);
    await context.close();
  });

  test("keyboard: the filter and every copy button are reachable with Tab", async () => {
    const { page, context } = await open(`${server.url}/`);
    const reached = new Set<string>();
    for (let i = 0; i < 40; i++) {
      await page.keyboard.press("Tab");
      reached.add(await page.evaluate(() => document.activeElement?.getAttribute("aria-label") ?? document.activeElement?.id ?? ""));
    }
    expect(reached).toContain("filter");
    expect([...reached].filter((l) => l.startsWith("Copy URL of")).length).toBe(3);
    await context.close();
  });

  test("readable on a phone: no sideways scrolling", async () => {
    const { page, context } = await open(`${server.url}/`, { width: 390, height: 844 });
    expect(await page.evaluate(() => document.documentElement.scrollWidth <= window.innerWidth)).toBe(true);
    await page.screenshot({ path: path.join(ROOT, "reports/catalog-phone.png") });
    await context.close();
  });

  test("a hostile README cannot run script", async () => {
    const { page, problems, context } = await open(`${server.url}/plugins/basic-auth/`);
    await expect.poll(() => page.locator(".readme").textContent()).toContain("<script>window.pwned = 1</script>");
    expect(await page.evaluate(() => (window as unknown as { pwned?: number }).pwned)).toBeUndefined();
    await page.getByRole("link", { name: "click me" }).count().then((n) => expect(n).toBe(0));
    expect(await page.locator(".readme a").evaluateAll((links) => links.map((a) => a.getAttribute("href")))).toEqual(["https://higress.io/docs"]);
    expect(await page.locator(".readme img, .readme iframe, .readme script").count()).toBe(0);
    expect(problems).toEqual([]);
    await context.close();
  });
});
