import { UsageError } from "../errors.ts";

/** `oci://host[:port]/repo[/...]:tag` or `...@sha256:<hex>`, parsed. */
export interface ImageReference {
  readonly host: string;
  readonly repository: string;
  readonly tag?: string;
  readonly digest?: string;
}

// Distribution spec: repository path components and tags.
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$/;
export const DIGEST = /^sha256:[0-9a-f]{64}$/;
export const isTag = (text: string) => TAG.test(text);
const HOST = /^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::\d{1,5})?$|^\[[0-9a-fA-F:]+\](?::\d{1,5})?$/;

export function parseReference(text: string): ImageReference {
  const fail = (why: string) => new UsageError(`image reference "${text}" ${why}`);
  const body = text.trim().replace(/^oci:\/\//, "");
  const slash = body.indexOf("/");
  if (slash < 0) throw fail("needs a registry host: oci://<host>/<repository>:<tag>");
  const host = body.slice(0, slash);
  if (!HOST.test(host)) throw fail(`has an invalid registry host "${host}"`);
  let rest = body.slice(slash + 1);
  let digest: string | undefined;
  const at = rest.indexOf("@");
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw fail("has a digest that is not sha256:<64 hex digits>");
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(":");
  if (colon > rest.lastIndexOf("/")) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw fail(`has an invalid tag "${tag}"`);
  }
  if (!rest.split("/").every((c) => COMPONENT.test(c))) throw fail(`has an invalid repository "${rest}"`);
  if (!tag && !digest) throw fail("needs a tag or a digest");
  return { host, repository: rest, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

export function formatReference(ref: ImageReference): string {
  return `oci://${ref.host}/${ref.repository}${ref.tag ? `:${ref.tag}` : ""}${ref.digest ? `@${ref.digest}` : ""}`;
}

/**
 * Applies registry mirrors: `from` is a registry host, `to` a host with an optional path
 * prefix (`harbor.example.com/higress`), so `from/plugins/x` is pulled as `harbor.example.com/higress/plugins/x`.
 */
export function applyMirrors(ref: ImageReference, mirrors: ReadonlyMap<string, string>): ImageReference {
  const to = mirrors.get(ref.host);
  if (!to) return ref;
  const [host, ...prefix] = to.split("/");
  return { ...ref, host: host!, repository: [...prefix, ref.repository].filter(Boolean).join("/") };
}
