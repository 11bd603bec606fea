import { hashSync } from "bcryptjs";
import { describe, expect, test } from "vitest";
import { AddressList, clientAddress } from "../../src/access/addresses.ts";
import { Authenticator } from "../../src/access/authenticator.ts";
import { parseHtpasswd, parseTokens } from "../../src/access/credentials.ts";
import { guard, privateCacheControl } from "../../src/access/guard.ts";
import { accessSettings } from "../../src/access/settings.ts";
import { ConfigError } from "../../src/config/env.ts";
import { loadConfig } from "../../src/node/config.ts";

const HASH = hashSync("right password", 4);
const TOKEN = "tok_0123456789abcdef0123";
const basic = (user: string, password: string) => `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}`;

describe("credential files", () => {
  test("htpasswd: bcrypt lines only, comments and blank lines skipped, errors name the line and never the hash", () => {
    expect([...parseHtpasswd(`# gateways\n\ngateway:${HASH}\n`).keys()]).toEqual(["gateway"]);
    expect(() => parseHtpasswd("a:$apr1$xyz$abcdefghijklmnopqrstuv")).toThrow(/line 1 \(user "a"\) is not a bcrypt hash; create it with htpasswd -B/);
    expect(() => parseHtpasswd("no-colon-here")).toThrow("line 1 is not user:hash");
    expect(() => parseHtpasswd(`a:${HASH}\na:${HASH}`)).toThrow(/line 2: user "a" is listed twice/);
    // Cost 13 and more: each unknown header would cost half a second of a core and more.
    expect(() => parseHtpasswd(`a:${HASH.replace("$04$", "$13$")}`)).toThrow(/line 1 \(user "a"\) has bcrypt cost 13; at most 12 is accepted.*htpasswd -B -C 10/);
    expect([...parseHtpasswd(`a:${HASH.replace("$04$", "$12$")}`).keys()]).toEqual(["a"]);
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

describe("Authenticator under a flood of wrong headers (security review N1)", () => {
  /** A compare whose runs the test counts and releases by hand. */
  const gatedCompare = () => {
    const waiting: (() => void)[] = [];
    let runs = 0;
    const compare = (password: string, hash: string) =>
      new Promise<boolean>((resolve) => {
        runs++;
        waiting.push(() => resolve(hash === HASH && password === "right password"));
      });
    return { compare, runs: () => runs, release: () => waiting.splice(0).forEach((go) => go()) };
  };
  const tick = () => new Promise((r) => setTimeout(r, 1));
  /** Waits (a few seconds at most) until `condition` holds: checks reach bcrypt after a SHA-256 of their header. */
  const until = async (condition: () => boolean) => {
    for (let i = 0; i < 3000 && !condition(); i++) await tick();
  };
  /** Releases the gate until `check` has its verdict. */
  const answered = async <T>(gate: { release(): void }, check: Promise<T>): Promise<T> => {
    let done = false;
    void check.finally(() => (done = true));
    while (!done) {
      gate.release();
      await tick();
    }
    return check;
  };

  test("a client's failures are budgeted: spent, its new headers are throttled without bcrypt until it refills; other clients are not", async () => {
    let now = 0;
    const gate = gatedCompare();
    const auth = new Authenticator(new Map([["gateway", HASH]]), [], { compare: gate.compare, failureBurst: 3, failureRefillMs: 6_000, maxPending: 100, now: () => now });
    const flood = Array.from({ length: 5 }, (_, i) => auth.check(basic("gateway", `guess ${i}`), "203.0.113.9"));
    await until(() => gate.runs() === 3);
    await tick();
    expect(gate.runs()).toBe(3); // the budget bounds a client's checks in flight too
    const verdicts = await answered(gate, Promise.all(flood));
    expect([...verdicts].sort()).toEqual(["throttled", "throttled", "wrong", "wrong", "wrong"]);
    expect(auth.retryAfter("203.0.113.9")).toBe(6);
    // The same wrong header again is answered from memory, free: a misconfigured gateway's retries cost nothing.
    // (Which three of the five reached bcrypt depends on when their digests finished.)
    const judged = verdicts.indexOf("wrong");
    expect(await auth.check(basic("gateway", `guess ${judged}`), "203.0.113.9")).toBe("wrong");
    expect(gate.runs()).toBe(3);
    // Another address has its own budget; an IPv6 client is budgeted by its /64.
    expect(await answered(gate, auth.check(basic("gateway", "right password"), "198.51.100.1"))).toBe("ok");
    for (let i = 0; i < 3; i++) expect(await answered(gate, auth.check(basic("gateway", `v6 ${i}`), `2001:db8:1:2::${i + 1}`))).toBe("wrong");
    expect(await auth.check(basic("gateway", "v6 other"), "2001:db8:1:2:ffff::1")).toBe("throttled");
    // Six seconds give one attempt back.
    now += 6_000;
    expect(await answered(gate, auth.check(basic("gateway", "guess 9"), "203.0.113.9"))).toBe("wrong");
    expect(await auth.check(basic("gateway", "guess 10"), "203.0.113.9")).toBe("throttled");
  });

  test("at most maxPending checks wait at once, whoever sends them: beyond, busy without bcrypt", async () => {
    const gate = gatedCompare();
    const auth = new Authenticator(new Map([["gateway", HASH]]), [TOKEN], { compare: gate.compare, maxPending: 4 });
    const flood = Array.from({ length: 10 }, (_, i) => auth.check(basic("x", `${i}`), `192.0.2.${i}`));
    let settled = 0;
    for (const check of flood) void check.then(() => settled++);
    await until(() => gate.runs() === 4 && settled === 6);
    expect([gate.runs(), settled]).toEqual([4, 6]);
    // Bearer tokens cost no bcrypt and are never refused as busy.
    expect(await auth.check(`Bearer ${TOKEN}`, "192.0.2.200")).toBe("ok");
    const verdicts = await answered(gate, Promise.all(flood));
    expect(verdicts.filter((v) => v === "busy")).toHaveLength(6);
    expect(verdicts.filter((v) => v === "wrong")).toHaveLength(4);
  });

  test("good verdicts are kept apart from failures: 10,000 junk headers do not evict a gateway's", async () => {
    let runs = 0;
    const auth = new Authenticator(new Map([["gateway", HASH]]), [], {
      compare: async (password, hash) => (runs++, hash === HASH && password === "right password"),
      failureBurst: 1e9,
      maxPending: 1e9,
    });
    expect(await auth.check(basic("gateway", "right password"), "10.0.0.1")).toBe("ok");
    for (let i = 0; i < 10_000; i++) await auth.check(basic("gateway", `junk ${i}`), "10.0.0.2");
    runs = 0;
    expect(await auth.check(basic("gateway", "right password"), "10.0.0.1")).toBe("ok");
    expect(runs).toBe(0);
  });

  test("a check that fails (a dead bcrypt thread) is busy, not wrong, and not remembered", async () => {
    let broken = true;
    const auth = new Authenticator(new Map([["gateway", HASH]]), [], {
      compare: async (password) => {
        if (broken) throw new Error("thread exited");
        return password === "right password";
      },
    });
    expect(await auth.check(basic("gateway", "right password"), "10.0.0.1")).toBe("busy");
    broken = false;
    expect(await auth.check(basic("gateway", "right password"), "10.0.0.1")).toBe("ok");
  });

  test("the guard answers a throttled client 429 and an overloaded server 503, both with Retry-After", async () => {
    const gate = gatedCompare();
    const users = new Map([["gateway", HASH]]);
    const settings = { ...accessSettings({ tokens: { text: TOKEN, from: "AUTH_TOKENS" } }, []), auth: new Authenticator(users, [], { compare: gate.compare, failureBurst: 1, maxPending: 1 }) };
    const at = (authorization: string, client: string) => guard(settings, { pathname: "/plugins/a/1.0.0/plugin.wasm", authorization, client });
    const first = at(basic("gateway", "a"), "192.0.2.1").catch((error: unknown) => error);
    await until(() => gate.runs() === 1);
    await expect(at(basic("gateway", "b"), "192.0.2.2")).rejects.toMatchObject({ status: 503, headers: { "Retry-After": "1" } });
    expect(await answered(gate, first)).toMatchObject({ status: 401 });
    await expect(at(basic("gateway", "c"), "192.0.2.1")).rejects.toMatchObject({ status: 429, headers: { "Retry-After": "6" } });
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
    // A hop that is no address (review N6) makes the client unknown, never a string of the sender's choosing.
    expect(clientAddress("127.0.0.1", '1.2.3.4 "GET /forged" 200', proxies)).toBeUndefined();
    expect(clientAddress("127.0.0.1", "unknown", proxies)).toBeUndefined();
    expect(clientAddress("127.0.0.1", "[2001:db8::5]", proxies)).toBe("2001:db8::5");
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

  test("deny by default (review N2): with credentials set, unknown and percent-encoded paths need them too", async () => {
    for (const path of ["/%61pi/v1/plugins", "/%6detrics", "/%70lugins/plugins/1.0.0/plugin.wasm", "/no/such/path", "/%68ealthz"]) {
      await expect(at(path), path).rejects.toMatchObject({ status: 401 });
    }
    const off = accessSettings({ tokens: { text: TOKEN, from: "AUTH_TOKENS" }, catalog: { text: "off", from: "CATALOG=off" } }, []);
    await expect(guard(off, { pathname: "/api/v1/plugins", authorization: `Bearer ${TOKEN}`, client: undefined })).rejects.toMatchObject({ status: 404 });
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
    expect(problemsOf({ ALIAS_CACHE_CONTROL: "public, max-age=60, immutable" })).toEqual(["ALIAS_CACHE_CONTROL must not be immutable: an alias can be re-pointed"]);
  });
});
