/**
 * What the cluster will ask the plugin server for, in one shape whatever names it: a `WasmPlugin`
 * resource (Higress's `extensions.higress.io`, or Istio's `extensions.istio.io`), the controller's
 * `MCP_SERVER_WASM_IMAGE_URL`, or the Console's URL pattern for a plugin it offers.
 */

export type ReferenceSource =
  | { readonly kind: "wasmplugin"; readonly group: string; readonly namespace: string; readonly name: string }
  | { readonly kind: "controller"; readonly namespace: string; readonly deployment: string; readonly variable: string }
  | { readonly kind: "console"; readonly release: string };

export interface Reference {
  readonly source: ReferenceSource;
  readonly url: string;
  /** `spec.sha256`: the gateway refuses a module whose sha256 differs. */
  readonly sha256?: string;
  /** The plugin the resource means (Console label or `spec.pluginName`), for `oci://` URLs. */
  readonly pluginHint?: string;
  readonly imagePullPolicy?: string;
  readonly failStrategy?: string;
  readonly phase?: string;
  readonly priority?: number;
}

export const describeSource = (s: ReferenceSource): string =>
  s.kind === "wasmplugin"
    ? `WasmPlugin ${s.namespace}/${s.name}${s.group === "extensions.higress.io" ? "" : ` (${s.group})`}`
    : s.kind === "controller"
      ? `${s.variable} of Deployment ${s.namespace}/${s.deployment}`
      : `Console ${s.release} pattern`;

/** Labels the Higress Console puts on the WasmPlugins it creates. */
const CONSOLE_NAME_LABEL = "higress.io/wasm-plugin-name";

const str = (value: unknown): string | undefined => (typeof value === "string" && value !== "" ? value : undefined);

/**
 * A WasmPlugin object as the API server returns it, read leniently: fields of other types are
 * ignored (the CRD's schema lets a hand-written resource carry anything), unknown fields never
 * matter, and an object without `spec.url` names nothing to download.
 */
export function wasmPluginReference(object: unknown, group: string): Reference | undefined {
  if (typeof object !== "object" || object === null) return undefined;
  const { metadata, spec } = object as { metadata?: Record<string, unknown>; spec?: Record<string, unknown> };
  const url = str(spec?.url);
  if (!url) return undefined;
  const labels = (typeof metadata?.labels === "object" && metadata.labels !== null ? metadata.labels : {}) as Record<string, unknown>;
  const sha256 = str(spec?.sha256)?.toLowerCase();
  const pluginHint = str(labels[CONSOLE_NAME_LABEL]) ?? str(spec?.pluginName);
  const policy = str(spec?.imagePullPolicy);
  const failStrategy = str(spec?.failStrategy);
  const phase = str(spec?.phase);
  const priority = typeof spec?.priority === "number" ? spec.priority : undefined;
  return {
    source: { kind: "wasmplugin", group, namespace: str(metadata?.namespace) ?? "default", name: str(metadata?.name) ?? "?" },
    url,
    ...(sha256 ? { sha256 } : {}),
    ...(pluginHint ? { pluginHint } : {}),
    ...(policy ? { imagePullPolicy: policy } : {}),
    ...(failStrategy ? { failStrategy } : {}),
    ...(phase ? { phase } : {}),
    ...(priority !== undefined ? { priority } : {}),
  };
}

/** The Console's literal replacement of `${name}` and `${version}` (higress-compat.md section 1). */
export function consoleUrl(pattern: string, name: string, version: string): string {
  return pattern.replaceAll("${name}", name).replaceAll("${version}", version);
}
