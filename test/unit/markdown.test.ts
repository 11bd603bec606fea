import { describe, expect, test } from "vitest";
import { renderMarkdown } from "../../src/http/markdown.ts";

describe("README rendering", () => {
  test("the subset plugin READMEs use", () => {
    const out = renderMarkdown("# Title\n\nSome **bold** and `code` and *em*.\n\n| a | b |\n|---|:-:|\n| 1 | 2 |\n\n1. one\n2. two\n\n```\nx < y\n```\n");
    expect(out).toContain("<h3>Title</h3>");
    expect(out).toContain("<p>Some <strong>bold</strong> and <code>code</code> and <em>em</em>.</p>");
    expect(out).toContain("<thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr></tbody>");
    expect(out).toContain("<ol><li>one</li><li>two</li></ol>");
    expect(out).toContain("<pre><code>x &lt; y</code></pre>");
  });

  test.each([
    ["<b onmouseover=x>hi</b>", "&lt;b onmouseover=x&gt;hi&lt;/b&gt;"],
    ['[a](javascript:alert(1))', "<p>a</p>"],
    ['[a](JaVaScRiPt:alert(1))', "<p>a</p>"],
    ['[a]("onclick=x)', "<p>a</p>"],
    ["[a](https://x.io/?q=1&r=2)", '<a href="https://x.io/?q=1&amp;r=2" rel="nofollow noopener noreferrer">a</a>'],
  ])("%s", (source, expected) => expect(renderMarkdown(source)).toContain(expected));
});
