import { hashSync } from "bcryptjs";
import { describe, expect, test } from "vitest";
import { AddressList, clientAddress } from "../../src/access/addresses.ts";
import { Authenticator } from "../../src/access/authenticator.ts";
import { parseHtpasswd, parseTokens } from "../../src/access/credentials.ts";
import { guard, privateCacheControl } from "../../src/access/guard.ts";
import { accessSettings } from "../../src/access/settings.ts";
import { ConfigError, loadConfig } from "../../src/node/config.ts";

const HASH = hashSync("right password", 4);
const TOKEN = "tok_0123456789abcdef0123";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("credential files", () => {
  test("htpasswd: bcrypt lines only, comments and blank lines skipped, errors name the line and never the hash", () => {
    expect([...parseHtpasswd(`# gateways\n\ngateway:${HASH}\n`).keys()]).toEqual(["gateway"]);
    expect(() => parseHtpasswd("a:$apr1$xyz$abcdefghijklmnopqrstuv")).toThrow(/line 1 \(user "a"\) is not a bcrypt hash; create it with htpasswd -B/);
    expect(() => parseHtpasswd("no-colon-here")).toThrow("line 1 is not user:hash");
    expect(() => parseHtpasswd(`a:${HASH}\na:${HASH}`)).toThrow(/line 2: user "a" is listed twice/);
    try {
      parseHtpasswd(`a:{SHA}secret-looking-hash`);
    } catch (error) {
      expect((error as Error).message).not.toContain("secret-looking-hash");
    }
  });

  test("tokens: one per line, RFC 6750 characters, at least 16 long, duplicates merged", () => {
    expect(parseTokens(`${TOKEN}\n# old\n${TOKEN}\n`)).toEqual([TOKEN]);
    expect(() => parseTokens("short-token")).toThrow(/line 1 is a token shorter than 16/);
    expect(() => parseTokens("has spaces in the token value")).toThrow(/line 1 is not a bearer token/);
  });
});

describe("Authenticator", () => {
  test("Basic and Bearer verdicts; schemes are case-insensitive (RFC 9110 §11.1)", async () => {
    const auth = new Authenticator(new Map([["gateway", HASH]]), [TOKEN]);
    expect(await auth.check(undefined)).toBe("missing");
    expect(await auth.check("Digest abc")).toBe("missing");
    expect(await auth.check(basic("gateway", "right password"))).toBe("ok");
    expect(await auth.check(basic("gateway", "right password").replace("Basic", "bAsIc"))).toBe("ok");
    expect(await auth.check(basic("gateway", "wrong"))).toBe("wrong");
    expect(await auth.check(basic("nobody", "right password"))).toBe("wrong");
    expect(await auth.check("Basic !!!not-base64")).toBe("wrong");
    expect(await auth.check(`Bearer ${TOKEN}`)).toBe("ok");
    expect(await auth.check(`Bearer ${TOKEN}x`)).toBe("wrong");
    expect(await auth.check(`Bearer ${TOKEN.slice(0, -1)}`)).toBe("wrong");
    expect(auth.challenge("r")).toBe('Basic realm="r", charset="UTF-8", Bearer realm="r"');
  });

  test("a rollout's hundred identical headers cost one bcrypt run; an unknown user costs one too (no user enumeration by timing)", async () => {
    let runs = 0;
    const auth = new Authenticator(new Map([["gateway", HASH]]), [], {
      compare: async (password, hash) => {
        runs++;
        await new Promise((r) => setTimeout(r, 20));
        return hash === HASH && password === "right password";
      },
    });
    const verdicts = await Promise.all(Array.from({ length: 100 }, () => auth.check(basic("gateway", "right password"))));
    expect(new Set(verdicts)).toEqual(new Set(["ok"]));
    expect(runs).toBe(1);
    expect(await auth.check(basic("stranger", "x"))).toBe("wrong");
    expect(runs).toBe(2);
  });
});

describe("addresses", () => {
  const list = AddressList.parse("10.0.0.0/8, 192.0.2.7 2001:db8::/32");
  test("CIDRs and single addresses of both families; IPv4-mapped IPv6 matches as IPv4; junk never matches", () => {
    expect(list.contains("10.200.3.4")).toBe(true);
    expect(list.contains("::ffff:10.1.1.1")).toBe(true);
    expect(list.contains("192.0.2.7")).toBe(true);
    expect(list.contains("192.0.2.8")).toBe(false);
    expect(list.contains("2001:db8::1")).toBe(true);
    expect(list.contains("2001:db9::1")).toBe(false);
    expect(list.contains("not an address")).toBe(false);
    expect(list.contains(undefined)).toBe(false);
    expect(() => AddressList.parse("10.0.0.0/33")).toThrow(/"10.0.0.0\/33", which is not an IP address or CIDR/);
  });

  test("X-Forwarded-For is read from the right, and only when the peer is a trusted proxy", () => {
    const proxies = AddressList.parse("127.0.0.1, 10.0.0.0/8");
    expect(clientAddress("203.0.113.5", "10.1.1.1", proxies)).toBe("203.0.113.5");
    expect(clientAddress("127.0.0.1", "198.51.100.9, 10.2.2.2", proxies)).toBe("198.51.100.9");
    // A client that writes its own X-Forwarded-For cannot hide behind it: the proxy appended the real address.
    expect(clientAddress("127.0.0.1", "10.9.9.9, 203.0.113.66", proxies)).toBe("203.0.113.66");
    expect(clientAddress("127.0.0.1", "1.2.3.4", undefined)).toBe("127.0.0.1");
  });
});

describe("guard", () => {
  const problems: string[] = [];
  const settings = accessSettings({ tokens: { text: TOKEN, from: "AUTH_TOKENS" }, allow: { text: "127.0.0.0/8", from: "ALLOW_CIDRS" } }, problems);
  const at = (pathname: string, authorization?: string, client = "127.0.0.1") => guard(settings, { pathname, authorization, client });
  test("downloads and (by default, with credentials set) the catalog need credentials; health stays open; the allow-list comes first", async () => {
    expect(problems).toEqual([]);
    await expect(at("/plugins/a/1.0.0/plugin.wasm")).rejects.toMatchObject({ status: 401 });
    await expect(at("/plugins/a/1.0.0/plugin.wasm", `Bearer ${TOKEN}`)).resolves.toBeUndefined();
    await expect(at("/")).rejects.toMatchObject({ status: 401 });
    await expect(at("/api/v1/plugins")).rejects.toMatchObject({ status: 401 });
    await expect(at("/metrics")).rejects.toMatchObject({ status: 401 });
    await expect(at("/healthz")).resolves.toBeUndefined();
    await expect(at("/readyz", undefined, "203.0.113.1")).resolves.toBeUndefined();
    await expect(at("/plugins/a/1.0.0/plugin.wasm", `Bearer ${TOKEN}`, "203.0.113.1")).rejects.toMatchObject({ status: 403 });
  });

  test("Cache-Control under credentials never lets a shared cache keep a response (RFC 9111 §3.5)", () => {
    expect(privateCacheControl("public, max-age=31536000, immutable")).toBe("private, max-age=31536000, immutable");
    expect(privateCacheControl("max-age=60")).toBe("private, max-age=60");
    expect(privateCacheControl("private, max-age=60")).toBe("private, max-age=60");
  });
});

describe("server configuration", () => {
  const problemsOf = (env: Record<string, string>) => {
    try {
      loadConfig(env);
      return [];
    } catch (error) {
      return (error as ConfigError).problems;
    }
  };
  test("every access setting is checked up front, with the variable named", () => {
    expect(problemsOf({ AUTH_BASIC_FILE: "/nonexistent/htpasswd" })).toEqual(["AUTH_BASIC_FILE=/nonexistent/htpasswd cannot be read: ENOENT"]);
    expect(problemsOf({ AUTH_TOKENS: TOKEN, AUTH_TOKENS_FILE: "/x" })).toEqual(["set AUTH_TOKENS or AUTH_TOKENS_FILE, not both"]);
    expect(problemsOf({ AUTH_TOKENS: "# nothing here" })).toEqual(["AUTH_TOKENS lists no token"]);
    expect(problemsOf({ CATALOG: "secret" })).toEqual(["CATALOG=secret must be public, auth or off"]);
    expect(problemsOf({ CATALOG: "auth" })[0]).toMatch(/CATALOG=auth needs credentials/);
    expect(problemsOf({ ALLOW_CIDRS: "10.0.0.0/8,example.com" })[0]).toMatch(/ALLOW_CIDRS=.* has "example.com", which is not an IP address/);
    expect(problemsOf({ METRICS_PORT: "http" })).toEqual(["METRICS_PORT=http is not a whole number from 0 to 65535"]);
    expect(loadConfig({ AUTH_TOKENS: TOKEN, CATALOG: "public" }).access.catalog).toBe("public");
    expect(loadConfig({ AUTH_TOKENS: TOKEN }).access.catalog).toBe("auth");
  });
});
