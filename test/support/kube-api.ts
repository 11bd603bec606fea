import type { IncomingMessage, ServerResponse } from "node:http";
import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { listenLoopback } from "./net.ts";

/**
 * A stand-in for the Kubernetes API server, speaking its wire protocol for what the uploader
 * reads: custom-object lists (JSON with resourceVersion, limit/continue paging), watches
 * (newline-delimited JSON events; an ERROR event with a 410 Status when the resourceVersion is
 * too old, as the API server sends it), Deployments, bearer-token authentication (401) and RBAC
 * refusals (403) as `Status` objects. No API server can run on these machines; the client library
 * under test is the real one.
 */

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; resourceVersion?: string; labels?: Record<string, string>; [key: string]: unknown };
  spec?: Record<string, unknown>;
  [key: string]: unknown;
}

export interface KubeApi {
  readonly url: string;
  readonly token: string;
  /** WasmPlugins by group (`extensions.higress.io`, `extensions.istio.io`); a group absent from the map has no CRD (404). */
  readonly groups: Map<string, KubeObject[]>;
  readonly deployments: KubeObject[];
  /** Paths (without query) answered 403, as RBAC would. */
  readonly forbidden: Set<string>;
  /** Paths that never answer. */
  readonly hanging: Set<string>;
  /** Every request line (method, path and query) in order. */
  readonly requests: string[];
  resourceVersion: number;
  /** Sends a watch event to every open watch of the group; the object's resourceVersion moves on. */
  emit(group: string, type: "ADDED" | "MODIFIED" | "DELETED", object: KubeObject): void;
  /** Ends every open watch with a 410 Gone ERROR event (the history it watches from was compacted). */
  expire(): void;
  /** A kubeconfig file pointing at this server (contexts `test`, the current one, and `elsewhere`). */
  kubeconfig(token?: string): Promise<string>;
  stop(): Promise<void>;
}

const status = (code: number, reason: string, message: string) => ({ kind: "Status", apiVersion: "v1", metadata: {}, status: "Failure", message, reason, code });

export function wasmPlugin(namespace: string, name: string, spec: Record<string, unknown>, labels: Record<string, string> = {}, group = "extensions.higress.io"): KubeObject {
  return { apiVersion: `${group}/v1alpha1`, kind: "WasmPlugin", metadata: { name, namespace, uid: `${namespace}-${name}`, generation: 1, creationTimestamp: "2026-11-01T00:00:00Z", labels }, spec };
}

export async function startKubeApi(): Promise<KubeApi> {
  const token = "stand-in-token-0123456789";
  const watches = new Set<{ group: string; res: ServerResponse }>();
  const api: Omit<KubeApi, "url" | "stop" | "kubeconfig"> = {
    token,
    groups: new Map([["extensions.higress.io", []]]),
    deployments: [],
    forbidden: new Set(),
    hanging: new Set(),
    requests: [],
    resourceVersion: 1000,
    emit(group, type, object) {
      object.metadata.resourceVersion = String(++api.resourceVersion);
      for (const w of watches) if (w.group === group) w.res.write(`${JSON.stringify({ type, object })}\n`);
    },
    expire() {
      for (const w of watches) {
        w.res.end(`${JSON.stringify({ type: "ERROR", object: status(410, "Expired", "too old resource version: 1 (1000)") })}\n`);
        watches.delete(w);
      }
    },
  };
  const send = (res: ServerResponse, code: number, body: unknown) => res.writeHead(code, { "Content-Type": "application/json" }).end(JSON.stringify(body));

  const handle = (req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://localhost");
    api.requests.push(`${req.method} ${url.pathname}${url.search}`);
    if (api.hanging.has(url.pathname)) return; // never answered
    if (req.headers.authorization !== `Bearer ${token}`) return send(res, 401, status(401, "Unauthorized", "Unauthorized"));
    if (api.forbidden.has(url.pathname)) {
      const m = /\/apis\/([^/]+)\/v1alpha1\/(?:namespaces\/([^/]+)\/)?wasmplugins$/.exec(url.pathname);
      const scope = m?.[2] ? `in the namespace "${m[2]}"` : "at the cluster scope";
      return send(res, 403, status(403, "Forbidden", `wasmplugins.${m?.[1] ?? "?"} is forbidden: User "system:serviceaccount:higress-system:uploader" cannot list resource "wasmplugins" in API group "${m?.[1] ?? "?"}" ${scope}`));
    }
    const list = /^\/apis\/([^/]+)\/v1alpha1\/(?:namespaces\/([^/]+)\/)?wasmplugins$/.exec(url.pathname);
    if (list && req.method === "GET") {
      const [, group, namespace] = list;
      const objects = api.groups.get(group!);
      if (!objects) return send(res, 404, status(404, "NotFound", "the server could not find the requested resource"));
      if (url.searchParams.get("watch") === "true") {
        res.writeHead(200, { "Content-Type": "application/json", "Transfer-Encoding": "chunked" });
        res.flushHeaders(); // as the API server does: the watch is established before any event
        const since = Number(url.searchParams.get("resourceVersion") ?? 0);
        if (since < api.resourceVersion - 100) {
          res.end(`${JSON.stringify({ type: "ERROR", object: status(410, "Expired", `too old resource version: ${since} (${api.resourceVersion})`) })}\n`);
          return;
        }
        const watch = { group: group!, res };
        watches.add(watch);
        res.on("close", () => watches.delete(watch));
        return;
      }
      const matching = objects.filter((o) => !namespace || o.metadata.namespace === namespace);
      const limit = Number(url.searchParams.get("limit") ?? 0) || matching.length;
      const start = Number(url.searchParams.get("continue") ?? 0);
      const page = matching.slice(start, start + limit);
      const next = start + limit < matching.length ? String(start + limit) : "";
      return send(res, 200, {
        apiVersion: `${group}/v1alpha1`,
        kind: "WasmPluginList",
        metadata: { resourceVersion: String(api.resourceVersion), continue: next },
        items: page.map((o) => ({ ...o, metadata: { resourceVersion: String(api.resourceVersion), ...o.metadata } })),
      });
    }
    const deployment = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/deployments\/([^/]+)$/.exec(url.pathname);
    if (deployment && req.method === "GET") {
      const found = api.deployments.find((d) => d.metadata.namespace === deployment[1] && d.metadata.name === deployment[2]);
      return found ? send(res, 200, found) : send(res, 404, status(404, "NotFound", `deployments.apps "${deployment[2]}" not found`));
    }
    send(res, 404, status(404, "NotFound", "the server could not find the requested resource"));
  };

  const { server, host } = await listenLoopback(handle);
  const url = `http://${host}`;
  // The same object the handler reads, so a test that sets resourceVersion moves the server's own.
  return Object.assign(api, {
    url,
    async kubeconfig(as = token) {
      const dir = await mkdtemp(path.join(tmpdir(), "kubeconfig-"));
      const file = path.join(dir, "config");
      const context = (name: string, cluster: string) => ({ name, context: { cluster, user: "uploader" } });
      await writeFile(
        file,
        JSON.stringify({
          apiVersion: "v1",
          kind: "Config",
          // Plain HTTP on loopback: the client takes it only with TLS verification off.
          clusters: [{ name: "stand-in", cluster: { server: url, "insecure-skip-tls-verify": true } }, { name: "gone", cluster: { server: "http://127.0.0.1:9", "insecure-skip-tls-verify": true } }],
          users: [{ name: "uploader", user: { token: as } }],
          contexts: [context("test", "stand-in"), context("elsewhere", "gone")],
          "current-context": "test",
        }),
      );
      return file;
    },
    async stop() {
      for (const w of watches) w.res.destroy();
      server.closeAllConnections?.();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

export function controllerDeployment(env: Record<string, string>): KubeObject {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: "higress-controller", namespace: "higress-system" },
    spec: { template: { spec: { containers: [{ name: "higress-core", image: "higress", env: Object.entries(env).map(([name, value]) => ({ name, value })) }] } } },
  };
}
