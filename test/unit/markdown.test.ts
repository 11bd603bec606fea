import { describe, expect, test } from "vitest";
import { renderMarkdown, renderReadme } from "../../src/http/markdown.ts";

const flat = (html: string) => html.replace(/\n/g, "");

describe("README rendering", () => {
  test("the Markdown plugin READMEs use", () => {
    const out = flat(renderMarkdown("# Title\n\nSome **bold** and `code` and *em*.\n\n| a | b |\n|---|:-:|\n| `x|y` | 2 |\n\n1. one\n   - nested\n2. two\n\n```\nx < y\n```\n"));
    expect(out).toContain("<h3>Title</h3>");
    expect(out).toContain("<p>Some <strong>bold</strong> and <code>code</code> and <em>em</em>.</p>");
    expect(out).toContain('<div class="table"><table><thead><tr><th>a</th><th style="text-align:center">b</th></tr></thead>');
    expect(out).toContain("<ol><li>one<ul><li>nested</li></ul></li><li>two</li></ol>");
    expect(out).toContain("<pre><code>x &lt; y</code></pre>");
  });

  test("front matter is shown as title and description, not as text", () => {
    const out = renderReadme("---\ntitle: Key Auth\ndescription: keys in headers\nversion: 1.0.0\n---\n# Usage\n");
    expect(out).toMatchObject({ title: "Key Auth", description: "keys in headers" });
    expect(out.html).not.toContain("version");
    expect(out.html).toContain("<h3>Usage</h3>");
  });

  // Shaped like the official plugin READMEs (README.md in Chinese, README_EN.md in English): front
  // matter, a configuration table with `|` inside code, nested lists, fenced YAML, an image.
  test.each([
    [
      "Chinese",
      "---\ntitle: Key Auth\nkeywords: [higress,auth]\ndescription: Key Auth 插件配置参考\n---\n\n## 功能说明\n`key-auth` 插件实现了基于 API Key 进行认证鉴权的功能。\n\n## 配置字段\n\n| 名称 | 数据类型 | 填写要求 | 默认值 | 描述 |\n| --- | --- | --- | --- | --- |\n| `keys` | array of string | 必填 | - | 来源字段，如 `x-api-key\\|apikey` |\n\n- 全局配置\n  - `consumers`：调用者\n\n![架构](https://img.alicdn.com/arch.png)\n\n```yaml\nkeys:\n  - x-api-key\n```\n",
      "Key Auth 插件配置参考",
      "<h4>功能说明</h4>", // headings sit two levels below the page's own
    ],
    [
      "English",
      "---\ntitle: Key Auth\nkeywords: [higress,auth]\ndescription: Key Auth plugin configuration reference\n---\n\n## Description\nThe `key-auth` plugin authenticates with API keys.\n\n## Configuration Fields\n\n| Name | Type | Requirement | Default | Description |\n| --- | --- | --- | --- | --- |\n| `keys` | array of string | Required | - | sources, e.g. `x-api-key\\|apikey` |\n\n- Global configuration\n  - `consumers`: callers\n\n![architecture](https://img.alicdn.com/arch.png)\n\n```yaml\nkeys:\n  - x-api-key\n```\n",
      "Key Auth plugin configuration reference",
      "<h4>Description</h4>",
    ],
  ])("an official-style %s README: front matter as title, one table row, nested list, image as a link, YAML block", (_language, source, description, heading) => {
    const out = renderReadme(source);
    expect(out).toMatchObject({ title: "Key Auth", description });
    const html = flat(out.html);
    expect(html).not.toContain("keywords");
    expect(html).toContain(heading);
    expect(html.match(/<tr>/g)).toHaveLength(2); // the header row and one row: the escaped | stays in its cell
    expect(html).toContain("<code>x-api-key|apikey</code>");
    expect(html).toMatch(/<ul><li>[^<]+<ul><li><code>consumers<\/code>/);
    expect(html).toContain('<a href="https://img.alicdn.com/arch.png" rel="nofollow noopener noreferrer">');
    expect(html).not.toContain("<img");
    expect(html).toContain("<pre><code");
  });

  test.each([
    ["<b onmouseover=x>hi</b>", "&lt;b onmouseover=x&gt;hi&lt;/b&gt;"],
    ["<script>alert(1)</script>", "&lt;script&gt;"],
    ["[a](javascript:alert(1))", "<p>[a](javascript:alert(1))</p>"],
    ["[a](JaVaScRiPt:alert(1))", "<p>[a](JaVaScRiPt:alert(1))</p>"],
    ["![x](https://tracker.example/p.png)", '<a href="https://tracker.example/p.png" rel="nofollow noopener noreferrer">x</a>'],
    ["![x](data:image/png;base64,AAAA)", "<p>![x](data:image/png;base64,AAAA)</p>"],
    ["[a](https://x.io/?q=1&r=2)", '<a href="https://x.io/?q=1&amp;r=2" rel="nofollow noopener noreferrer">a</a>'],
  ])("%s", (source, expected) => expect(flat(renderMarkdown(source))).toContain(expected));

  // Each construct, made as hostile as 256 KiB allows; the time is compared with plain text of the
  // same size, so the check holds on slow machines too. A super-linear pattern takes seconds here.
  test("adversarial READMEs of 256 KiB render in time linear in their size", () => {
    const size = 256 * 1024;
    const fill = (unit: string, prefix = "", suffix = "") => prefix + unit.repeat(Math.floor((size - prefix.length - suffix.length) / unit.length)) + suffix;
    const time = (source: string) => {
      const started = performance.now();
      renderMarkdown(source);
      return performance.now() - started;
    };
    const baseline = Math.max(time(fill("lorem ipsum dolor sit amet\n")), 5);
    const attacks = {
      "heading with spaces": fill(" ", "# Slow plugin", "x"),
      "headings, spaces": fill("#" + " ".repeat(4000) + "x\n"),
      "emphasis": fill("*a"),
      "strong": fill("**a"),
      "nested brackets": fill("[", "", "](x)"),
      "link targets": fill("[a](", "", ""),
      "parentheses in links": fill("[a](" + "(".repeat(50)),
      "code spans": fill("`a"),
      "table cells": fill("|", "| a | b |\n|---|---|\n"),
      "table rows": fill("|a|\n", "| a |\n|---|\n"),
      "list nesting": fill(" -"),
      "blockquote nesting": fill(">"),
      "html-like": fill("<a "),
      "autolink-like": fill("<http://"),
      "entities": fill("&#"),
      "backslashes": fill("\\"),
      "front matter": fill("a: b\n", "---\n", ""),
    };
    const slow: string[] = [];
    for (const [name, source] of Object.entries(attacks)) {
      const ms = time(source);
      if (ms > Math.max(50 * baseline, 500)) slow.push(`${name}: ${ms.toFixed(0)} ms (plain text: ${baseline.toFixed(0)} ms)`);
    }
    expect(slow).toEqual([]);
  });

  test("size and line length are capped", () => {
    const out = renderReadme("x".repeat(300 * 1024));
    expect(out.html).toContain("README cut at 256 KiB");
    expect(out.html.length).toBeLessThan(10_000);
  });
});
