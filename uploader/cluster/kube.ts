import type { ConfigurationOptions } from "@kubernetes/client-node";
import { UploaderError, UsageError } from "../errors.ts";
import { wasmPluginReference, type Reference } from "./references.ts";

/**
 * Reads what the cluster names through @kubernetes/client-node: in a pod, its service account;
 * outside, the kubeconfig (`--kubeconfig`, else `KUBECONFIG`, else ~/.kube/config) and its
 * current context or `--context`. Loaded on demand: only the cluster commands pay for it.
 */

export const HIGRESS_GROUP = "extensions.higress.io";
export const ISTIO_GROUP = "extensions.istio.io";
const VERSION = "v1alpha1";
const PLURAL = "wasmplugins";
const PAGE = 500;

export interface ClusterOptions {
  readonly kubeconfig?: string;
  readonly context?: string;
  /** One namespace; every namespace when unset. */
  readonly namespace?: string;
  /** The Higress controller, whose MCP_SERVER_WASM_IMAGE_URL names a plugin URL too; false: not read. */
  readonly controller?: { readonly namespace: string; readonly name: string } | false;
  /** Limit of one API request (default 30 s). */
  readonly timeoutMs?: number;
}

export interface ClusterRead {
  /** Where the reader looked (the context's cluster server, never a credential). */
  readonly server: string;
  readonly references: Reference[];
  /** The list's resourceVersion, from which a watch continues. */
  readonly resourceVersion: string | undefined;
  /** What could not be read and was left out, each a line for the report. */
  readonly notes: string[];
}

/** The API server refused or could not be reached. */
export class ClusterError extends UploaderError {}

type Kube = typeof import("@kubernetes/client-node");
/** An ApiException (numeric `code`: the HTTP status) or node-fetch's FetchError (string `code`: ECONNREFUSED...). */
type ApiError = { code?: number | string; body?: unknown; message?: string };

function statusMessage(error: ApiError): string {
  const body = typeof error.body === "string" ? safeJson(error.body) : error.body;
  const message = (body as { message?: unknown } | undefined)?.message;
  return typeof message === "string" ? message : (error.message ?? String(error)).split("\n")[0]!;
}

const safeJson = (text: string): unknown => {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
};

/**
 * One API request with a deadline: `call` gets request options that abort its connection when the
 * deadline passes (a request left hanging would also keep the process from exiting).
 */
async function within<T>(k8s: Kube, what: string, server: string, ms: number, call: (options: ConfigurationOptions) => Promise<T>): Promise<T> {
  const signal = AbortSignal.timeout(ms);
  const options: ConfigurationOptions = {
    middleware: [{ pre: (context) => new k8s.Observable(Promise.resolve((context.setSignal(signal), context))), post: (response) => new k8s.Observable(Promise.resolve(response)) }],
    middlewareMergeStrategy: "append",
  };
  try {
    return await call(options);
  } catch (error) {
    if (signal.aborted) throw new ClusterError(`${what}: the API server ${server} did not answer within ${ms / 1000} s`);
    throw error;
  }
}

export async function loadKubeConfig(options: ClusterOptions): Promise<{ k8s: Kube; kc: InstanceType<Kube["KubeConfig"]>; server: string }> {
  const k8s = await import("@kubernetes/client-node");
  const kc = new k8s.KubeConfig();
  try {
    if (options.kubeconfig) kc.loadFromFile(options.kubeconfig);
    else kc.loadFromDefault();
  } catch (error) {
    throw new UsageError(`cannot read the kubeconfig${options.kubeconfig ? ` ${options.kubeconfig}` : ""}: ${(error as Error).message}`);
  }
  if (options.context) {
    if (!kc.getContexts().some((c) => c.name === options.context)) {
      throw new UsageError(`--context ${options.context}: the kubeconfig has no such context (it has: ${kc.getContexts().map((c) => c.name).join(", ") || "none"})`);
    }
    kc.setCurrentContext(options.context);
  }
  const server = kc.getCurrentCluster()?.server;
  if (!server) throw new UsageError("no cluster to read: not in a pod, and no kubeconfig context (KUBECONFIG, --kubeconfig, --context)");
  return { k8s, kc, server };
}

/** Every WasmPlugin (Higress's, and Istio's where that CRD exists) and the controller's plugin URL, in one list call per group. */
export async function readCluster(options: ClusterOptions): Promise<ClusterRead> {
  const { k8s, kc, server } = await loadKubeConfig(options);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const notes: string[] = [];
  const references: Reference[] = [];
  let resourceVersion: string | undefined;
  const where = options.namespace ? `in namespace ${options.namespace}` : "in every namespace";
  const ms = options.timeoutMs ?? 30_000;

  for (const group of [HIGRESS_GROUP, ISTIO_GROUP]) {
    let next: string | undefined;
    do {
      const request = { group, version: VERSION, plural: PLURAL, limit: PAGE, ...(next ? { _continue: next } : {}) };
      let list: { metadata?: { resourceVersion?: string; continue?: string }; items?: unknown[] };
      try {
        list = await within(
          k8s,
          `listing ${PLURAL}.${group}`,
          server,
          ms,
          (o) => (options.namespace ? custom.listNamespacedCustomObject({ ...request, namespace: options.namespace }, o) : custom.listClusterCustomObject(request, o)),
        );
      } catch (error) {
        if (error instanceof ClusterError) throw error;
        const e = error as ApiError;
        if (e.code === 404 && group === ISTIO_GROUP) break; // no Istio WasmPlugin CRD here: nothing of that kind to read
        if (e.code === 404) throw new ClusterError(`${server} has no ${PLURAL}.${group} (HTTP 404): the Higress WasmPlugin CRD is not installed in this cluster`);
        if (e.code === 401) throw new ClusterError(`${server} refused the credentials of the kubeconfig (HTTP 401): ${statusMessage(e)}`);
        if (e.code === 403) {
          throw new ClusterError(`cannot list ${PLURAL}.${group} ${where} (HTTP 403: ${statusMessage(e)}): grant get, list and watch on it (the chart's uploader.cluster.enabled does)`);
        }
        if (typeof e.code === "number") throw new ClusterError(`listing ${PLURAL}.${group} ${where}: HTTP ${e.code}: ${statusMessage(e)}`);
        const cause = (error as { cause?: { code?: string } }).cause;
        throw new ClusterError(`cannot reach the API server ${server}: ${e.code ?? cause?.code ?? (error as Error).message}`);
      }
      if (group === HIGRESS_GROUP) resourceVersion = list.metadata?.resourceVersion;
      for (const item of list.items ?? []) {
        const reference = wasmPluginReference(item, group);
        if (reference) references.push(reference);
      }
      next = list.metadata?.continue || undefined;
    } while (next);
  }

  if (options.controller !== false) {
    const { namespace, name } = options.controller ?? { namespace: "higress-system", name: "higress-controller" };
    try {
      const deployment = await within(k8s, `reading Deployment ${namespace}/${name}`, server, ms, (o) => kc.makeApiClient(k8s.AppsV1Api).readNamespacedDeployment({ namespace, name }, o));
      for (const container of deployment.spec?.template.spec?.containers ?? []) {
        const url = container.env?.find((e) => e.name === "MCP_SERVER_WASM_IMAGE_URL")?.value;
        if (url) references.push({ source: { kind: "controller", namespace, deployment: name, variable: "MCP_SERVER_WASM_IMAGE_URL" }, url, pluginHint: "mcp-server" });
      }
    } catch (error) {
      if (error instanceof ClusterError) throw error;
      const e = error as ApiError;
      notes.push(
        e.code === 404
          ? `Deployment ${namespace}/${name} not found: its MCP_SERVER_WASM_IMAGE_URL was not read (--controller names another)`
          : `Deployment ${namespace}/${name} could not be read (${typeof e.code === "number" ? `HTTP ${e.code}` : (e.code ?? (error as Error).message)}): its MCP_SERVER_WASM_IMAGE_URL was not checked`,
      );
    }
  }
  return { server, references, resourceVersion, notes };
}
