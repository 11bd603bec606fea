import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { writeTar } from "./tar.ts";

/**
 * Builds artifacts the way the tools that make real plugins lay them out (oras, wasm-to-oci,
 * docker build), as directories skopeo pushes unchanged: OCI image layouts (`oci:`) and
 * skopeo's `dir:` layout for Docker schema-2 manifests.
 */

export interface Blob {
  readonly mediaType: string;
  readonly data: Uint8Array;
  readonly annotations?: Record<string, string>;
  readonly platform?: { os: string; architecture: string };
}

const digestOf = (data: Uint8Array) => `sha256:${createHash("sha256").update(data).digest("hex")}`;
const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
export const descriptor = (b: Blob) => ({
  mediaType: b.mediaType,
  digest: digestOf(b.data),
  size: b.data.length,
  ...(b.annotations ? { annotations: b.annotations } : {}),
  ...(b.platform ? { platform: b.platform } : {}),
});

export const tarGzip = (files: [string, Uint8Array][]) => new Uint8Array(gzipSync(writeTar(files)));

/** An OCI image manifest blob over a config and layers. */
export function imageManifest(config: Blob, layers: Blob[], mediaType = "application/vnd.oci.image.manifest.v1+json"): Blob {
  return { mediaType, data: json({ schemaVersion: 2, mediaType, config: descriptor(config), layers: layers.map(descriptor) }) };
}

/** Writes an OCI image layout whose index.json tags `top` (a manifest or an index) as `tag`. */
export async function writeOciLayout(dir: string, tag: string, top: Blob, blobs: Blob[]): Promise<void> {
  await mkdir(path.join(dir, "blobs/sha256"), { recursive: true });
  for (const b of [top, ...blobs]) await writeFile(path.join(dir, "blobs/sha256", digestOf(b.data).slice(7)), b.data);
  await writeFile(path.join(dir, "oci-layout"), JSON.stringify({ imageLayoutVersion: "1.0.0" }));
  const entry = { ...descriptor(top), annotations: { "org.opencontainers.image.ref.name": tag } };
  await writeFile(path.join(dir, "index.json"), JSON.stringify({ schemaVersion: 2, manifests: [entry] }));
}

/** skopeo's dir: layout, which keeps a Docker schema-2 manifest as it is. */
export async function writeDirLayout(dir: string, manifest: Blob, blobs: Blob[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(path.join(dir, "version"), "Directory Transport Version: 1.1\n");
  await writeFile(path.join(dir, "manifest.json"), manifest.data);
  for (const b of blobs) await writeFile(path.join(dir, digestOf(b.data).slice(7)), b.data);
}

export const ORAS_CONFIG: Blob = { mediaType: "application/vnd.unknown.config.v1+json", data: new TextEncoder().encode("{}") };
const title = (name: string) => ({ "org.opencontainers.image.title": name });

/** The official Higress format (oras push): docs, spec, then plugin.tar.gz last. */
export function orasPlugin(wasm: Uint8Array, wasmPath = "plugin.wasm"): { manifest: Blob; blobs: Blob[] } {
  const layers: Blob[] = [
    { mediaType: "application/vnd.module.wasm.doc.v1+markdown", data: new TextEncoder().encode("# plugin\n"), annotations: title("README.md") },
    { mediaType: "application/vnd.module.wasm.doc.v1.en+markdown", data: new TextEncoder().encode("# plugin (en)\n"), annotations: title("README_EN.md") },
    { mediaType: "application/vnd.module.wasm.spec.v1+yaml", data: new TextEncoder().encode("apiVersion: 1.0.0\ninfo:\n  title: plugin\n"), annotations: title("spec.yaml") },
    { mediaType: "application/vnd.oci.image.layer.v1.tar+gzip", data: tarGzip([[wasmPath, wasm]]), annotations: title("plugin.tar.gz") },
  ];
  return { manifest: imageManifest(ORAS_CONFIG, layers), blobs: [ORAS_CONFIG, ...layers] };
}

/** The OCI wasm artifact format: the raw module as a content layer. */
export function wasmArtifact(wasm: Uint8Array): { manifest: Blob; blobs: Blob[] } {
  const config: Blob = { mediaType: "application/vnd.module.wasm.config.v1+json", data: json({ created: "2026-01-01T00:00:00Z" }) };
  const layer: Blob = { mediaType: "application/vnd.module.wasm.content.layer.v1+wasm", data: wasm, annotations: title("plugin.wasm") };
  return { manifest: imageManifest(config, [layer]), blobs: [config, layer] };
}

/** `FROM scratch` + `COPY plugin.wasm` as docker build pushes it: a Docker schema-2 manifest. */
export function dockerImage(wasm: Uint8Array): { manifest: Blob; blobs: Blob[] } {
  const layer: Blob = { mediaType: "application/vnd.docker.image.rootfs.diff.tar.gzip", data: tarGzip([["plugin.wasm", wasm]]) };
  const config: Blob = {
    mediaType: "application/vnd.docker.container.image.v1+json",
    data: json({ architecture: "amd64", os: "linux", rootfs: { type: "layers", diff_ids: [] }, config: {} }),
  };
  return { manifest: imageManifest(config, [layer], "application/vnd.docker.distribution.manifest.v2+json"), blobs: [config, layer] };
}

/** An OCI index with the image for linux/amd64 and a buildkit attestation manifest beside it. */
export function indexWithAttestation(image: { manifest: Blob; blobs: Blob[] }): { index: Blob; blobs: Blob[] } {
  const statement: Blob = { mediaType: "application/vnd.in-toto+json", data: json({ _type: "https://in-toto.io/Statement/v0.1" }) };
  const attConfig: Blob = { mediaType: "application/vnd.oci.image.config.v1+json", data: json({ architecture: "unknown", os: "unknown" }) };
  const attestation = imageManifest(attConfig, [statement]);
  const index: Blob = {
    mediaType: "application/vnd.oci.image.index.v1+json",
    data: json({
      schemaVersion: 2,
      mediaType: "application/vnd.oci.image.index.v1+json",
      manifests: [
        { ...descriptor(attestation), platform: { os: "unknown", architecture: "unknown" }, annotations: { "vnd.docker.reference.type": "attestation-manifest" } },
        { ...descriptor(image.manifest), platform: { os: "linux", architecture: "amd64" } },
      ],
    }),
  };
  return { index, blobs: [image.manifest, ...image.blobs, attestation, attConfig, statement] };
}
