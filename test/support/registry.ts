import { execFile, spawn, type ChildProcess } from "node:child_process";
import { createSign, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, readFile, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { forward, freePort, listenLoopback } from "./net.ts";

/**
 * The CNCF distribution registry (Debian's docker-registry) on 127.0.0.1, with no auth, Basic
 * auth or token auth (a token server here signs RS256 JWTs the registry trusts), plus a proxy
 * that redirects blob downloads to another origin. Artifacts are pushed by skopeo.
 */

const run = promisify(execFile);

export interface Registry {
  readonly host: string; // 127.0.0.1:port
  readonly root: string; // storage root
  /** Token requests seen by the token server: user and scope. */
  readonly tokenRequests: { user: string | undefined; scope: string | null }[];
  stop(): Promise<void>;
}

export type RegistryAuth =
  | { kind: "none" }
  | { kind: "basic"; username: string; password: string }
  | { kind: "token"; username: string; password: string; /** repositories this user may pull */ allowed: string[]; expiresIn?: number };

const b64url = (data: Buffer | string) => Buffer.from(data).toString("base64url");

export async function startRegistry(auth: RegistryAuth = { kind: "none" }): Promise<Registry> {
  const dir = await mkdtemp(path.join(tmpdir(), "registry-"));
  const port = await freePort();
  const cleanups: (() => Promise<unknown>)[] = [];
  const tokenRequests: Registry["tokenRequests"] = [];
  let authConfig = "";

  if (auth.kind === "basic") {
    const { stdout } = await run("htpasswd", ["-Bbn", auth.username, auth.password]);
    await writeFile(path.join(dir, "htpasswd"), stdout);
    authConfig = `auth: {htpasswd: {realm: basic-realm, path: ${dir}/htpasswd}}`;
  } else if (auth.kind === "token") {
    await run("openssl", [
      "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-token-issuer",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"),
    ]);
    const key = await readFile(path.join(dir, "key.pem"), "utf8");
    const der = (await readFile(path.join(dir, "cert.pem"), "utf8")).replace(/-----[^-]+-----|\s/g, "");
    const tokenServer = await listenLoopback((req, res) => {
      const url = new URL(req.url!, "http://x");
      const header = req.headers.authorization;
      const [user, password] = header?.startsWith("Basic ")
        ? Buffer.from(header.slice(6), "base64").toString().split(":")
        : [undefined, undefined];
      const scope = url.searchParams.get("scope");
      tokenRequests.push({ user, scope });
      if (user !== undefined && (user !== auth.username || password !== auth.password)) {
        res.writeHead(401).end("bad credentials");
        return;
      }
      const [, repository, actions] = /^repository:([^:]+):(.+)$/.exec(scope ?? "") ?? [];
      // Scoped per repository: the token covers the asked repository only; pull only where allowed
      // (push is open to the user, so fixtures can be pushed everywhere).
      const granted = (actions ?? "").split(",").filter((a) => a === "push" || (a === "pull" && auth.allowed.includes(repository!)));
      const access = user && repository ? [{ type: "repository", name: repository, actions: granted }] : [];
      const now = Math.floor(Date.now() / 1000);
      const head = b64url(JSON.stringify({ alg: "RS256", typ: "JWT", x5c: [der] }));
      const claims = b64url(JSON.stringify({ iss: "test-issuer", sub: user ?? "", aud: "test-registry", exp: now + 300, nbf: now - 10, iat: now, jti: randomUUID(), access }));
      const signature = createSign("RSA-SHA256").update(`${head}.${claims}`).sign(key, "base64url");
      res.writeHead(200, { "Content-Type": "application/json" }).end(JSON.stringify({ token: `${head}.${claims}.${signature}`, expires_in: auth.expiresIn ?? 300 }));
    });
    cleanups.push(() => new Promise((resolve) => tokenServer.server.close(resolve)));
    authConfig = `auth: {token: {realm: "http://${tokenServer.host}/token", service: test-registry, issuer: test-issuer, rootcertbundle: ${dir}/cert.pem}}`;
  }

  await writeFile(
    path.join(dir, "config.yml"),
    `version: 0.1
log: {level: error, accesslog: {disabled: true}}
storage: {filesystem: {rootdirectory: ${dir}/data}, delete: {enabled: true}}
http: {addr: 127.0.0.1:${port}}
${authConfig}
`,
  );
  await mkdir(path.join(dir, "data"), { recursive: true });
  const child: ChildProcess = spawn("docker-registry", ["serve", path.join(dir, "config.yml")], { stdio: "ignore" });
  cleanups.push(async () => {
    child.kill("SIGTERM");
    await new Promise((resolve) => child.once("exit", resolve));
  });
  for (let i = 0; ; i++) {
    const ok = await fetch(`http://127.0.0.1:${port}/v2/`).then((r) => r.status === 200 || r.status === 401, () => false);
    if (ok) break;
    if (i > 100) throw new Error("docker-registry did not start");
    await sleep(100);
  }
  return {
    host: `127.0.0.1:${port}`,
    root: path.join(dir, "data"),
    tokenRequests,
    async stop() {
      for (const c of cleanups.reverse()) await c();
    },
  };
}

/** Pushes a layout directory with skopeo, byte for byte (`oci:dir:tag` or `dir:dir`). */
export async function push(source: string, registry: Registry, target: string, creds?: { username: string; password: string }, all = false) {
  await run("skopeo", [
    "copy", "--quiet", "--preserve-digests", "--dest-tls-verify=false",
    ...(all ? ["--all"] : []),
    ...(creds ? ["--dest-creds", `${creds.username}:${creds.password}`] : []),
    source, `docker://${registry.host}/${target}`,
  ]);
}

/**
 * A front for a registry that answers blob downloads with 307 to a second origin, as
 * registries that offload blobs to object storage do. The second origin records whether it
 * received an Authorization header (it must not) and fetches the blob with its own credentials.
 */
export async function startRedirectingProxy(registry: Registry, upstreamAuth?: string) {
  const received: (string | undefined)[] = [];
  const blobs = await listenLoopback((req, res) => {
    received.push(req.headers.authorization);
    forward(registry.host, req, res, upstreamAuth);
  });
  const front = await listenLoopback((req, res) => {
    if (/\/blobs\/sha256:/.test(req.url ?? "") && req.method === "GET") {
      res.writeHead(307, { Location: `http://${blobs.host}${req.url}` }).end();
      return;
    }
    forward(registry.host, req, res);
  });
  return {
    host: front.host,
    /** Authorization headers the blob origin received, one per blob request. */
    received,
    stop: async () => {
      await new Promise((r) => front.server.close(r));
      await new Promise((r) => blobs.server.close(r));
    },
  };
}

/** A front that answers 503 to the first `failures` requests, then forwards: a registry having a bad moment. */
export async function startFlakyProxy(registry: Registry, failures: number) {
  let seen = 0;
  const { server, host } = await listenLoopback((req, res) => {
    if (seen++ < failures) {
      res.writeHead(503).end("try later");
      return;
    }
    forward(registry.host, req, res);
  });
  return {
    host,
    requests: () => seen,
    stop: () => new Promise((r) => server.close(r)),
  };
}
