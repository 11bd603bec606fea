import type { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createGunzip } from "node:zlib";
import tarStream from "tar-stream";
import { checkExtras, isExtra, MAX_EXTRA_BYTES } from "../extras.ts";
import { ArtifactError, RegistryError, UploaderError } from "../errors.ts";
import { MAX_WASM_BYTES, validateWasm } from "../wasm.ts";
import type { Descriptor, RegistryClient } from "./client.ts";
import { DOCKER_LIST, OCI_INDEX, TAR_GZIP_LAYERS, TAR_LAYERS, TITLE, WASM_CONTENT_LAYER } from "./media-types.ts";
import { DIGEST, formatReference, type ImageReference } from "./reference.ts";

/** A plugin pulled from a registry and verified: the module, the files published beside it, where it came from. */
export interface PulledPlugin {
  readonly wasm: Uint8Array;
  /** README*.md, spec.yaml, icon.png from their own layers (the reference server drops them). */
  readonly extras: ReadonlyMap<string, Uint8Array>;
  readonly source: string;
  /** Digest of the image manifest the bytes came from (inside an index, the chosen image's). */
  readonly manifestDigest: string;
}

interface ImageManifest {
  readonly mediaType?: string;
  readonly config?: Descriptor;
  readonly layers?: readonly Descriptor[];
  readonly manifests?: readonly Descriptor[];
}


/**
 * The digest a pull would record as `manifestDigest`, from one manifest request and no blob: for
 * an index, the chosen image's digest as the index lists it.
 */
export async function imageDigest(client: RegistryClient, ref: ImageReference): Promise<string> {
  const where = formatReference(ref);
  const { bytes, digest, mediaType } = await client.manifest(ref);
  const manifest = parse(bytes, where);
  if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST || manifest.manifests) return chooseImage(manifest.manifests ?? [], where).digest;
  return digest;
}

export async function pullPlugin(client: RegistryClient, ref: ImageReference): Promise<PulledPlugin> {
  const where = formatReference(ref);
  let { bytes, digest, mediaType } = await client.manifest(ref);
  let manifest = parse(bytes, where);
  if (mediaType === OCI_INDEX || mediaType === DOCKER_LIST || manifest.manifests) {
    const chosen = chooseImage(manifest.manifests ?? [], where);
    ({ bytes, digest } = await client.manifest(ref, chosen.digest));
    manifest = parse(bytes, where);
  }
  const layers = manifest.layers ?? [];
  if (layers.length === 0) throw new ArtifactError(`${where} has no layers`);

  const extraLayers = layers.flatMap((layer) => {
    const title = layer.annotations?.[TITLE];
    return title && isExtra(title) && layer.size <= MAX_EXTRA_BYTES ? [{ name: title, size: layer.size, layer }] : [];
  });
  checkExtras(extraLayers, where);
  const extras = new Map<string, Uint8Array>();
  for (const { name, layer } of extraLayers) extras.set(name, await client.blob(ref, layer, MAX_EXTRA_BYTES));

  const wasm = await findWasm(client, ref, manifest, where);
  validateWasm(wasm, `plugin.wasm of ${where}`);
  return { wasm, extras, source: where, manifestDigest: digest };
}

function parse(bytes: Uint8Array, where: string): ImageManifest {
  try {
    return JSON.parse(new TextDecoder().decode(bytes)) as ImageManifest;
  } catch {
    throw new RegistryError(`manifest of ${where} is not JSON`);
  }
}

/** An index or manifest list: linux/amd64, or the only real image; attestations are skipped. */
function chooseImage(entries: readonly Descriptor[], where: string): Descriptor {
  const images = entries.filter(
    (e) =>
      e.platform?.os !== "unknown" &&
      e.annotations?.["vnd.docker.reference.type"] !== "attestation-manifest",
  );
  const amd64 = images.find((e) => e.platform?.os === "linux" && e.platform.architecture === "amd64");
  const chosen = amd64 ?? (images.length === 1 ? images[0] : undefined);
  if (chosen) {
    // An index names its images by digest only: anything else (a tag, a path) is not followed.
    if (typeof chosen.digest !== "string" || !DIGEST.test(chosen.digest)) {
      throw new ArtifactError(`${where} is an index whose image digest ${JSON.stringify(String(chosen.digest).slice(0, 80))} is not sha256:<64 hex digits>`);
    }
    return chosen;
  }
  const platforms = images.map((e) => `${e.platform?.os ?? "?"}/${e.platform?.architecture ?? "?"}`).join(", ");
  throw new ArtifactError(`${where} is an index without a linux/amd64 image or a single image (has: ${platforms || "none"})`);
}

/** The formats of higress-compat.md section 5, in order: wasm content layer, then tar layers from the last. */
async function findWasm(client: RegistryClient, ref: ImageReference, manifest: ImageManifest, where: string): Promise<Uint8Array> {
  const layers = manifest.layers ?? [];
  const content = layers.find((l) => l.mediaType === WASM_CONTENT_LAYER);
  if (content) return client.blob(ref, content, MAX_WASM_BYTES);

  const tars = layers.filter((l) => TAR_GZIP_LAYERS.has(l.mediaType) || TAR_LAYERS.has(l.mediaType)).reverse();
  for (const layer of tars) {
    // Layers are streamed (gunzip on libuv's pool, tar read as it arrives): only the module is kept.
    const found = await client.blobStream(ref, layer, MAX_LAYER_BYTES, (body) => wasmFromTar(body, TAR_GZIP_LAYERS.has(layer.mediaType), `layer ${layer.digest} of ${where}`));
    if (found) return found;
  }
  const types = [...new Set(layers.map((l) => l.mediaType))].join(", ");
  throw new ArtifactError(`${where} has no wasm: no wasm content layer and no plugin.wasm or *.wasm in its tar layers (layers: ${types})`);
}

/** A layer holds the module and little else; anything larger than this is not a plugin layer. */
const MAX_LAYER_BYTES = MAX_WASM_BYTES + (16 << 20);

/** `plugin.wasm` by base name, else the first `*.wasm`, from a (gzipped) tar stream, with every size bounded before it is allocated. */
async function wasmFromTar(body: Readable, gzipped: boolean, what: string): Promise<Uint8Array | undefined> {
  let found: { name: string; data: Uint8Array } | undefined;
  let unpacked = 0;
  const extract = tarStream.extract();
  extract.on("entry", (header, entry, next) => {
    // An entry is destroyed with the pipeline's error, which the pipeline reports.
    entry.on("error", () => {});
    unpacked += header.size ?? 0;
    const name = header.name.split("/").pop() ?? "";
    const wanted = header.type === "file" && name.endsWith(".wasm") && (name === "plugin.wasm" ? found?.name !== "plugin.wasm" : !found);
    if (unpacked > MAX_LAYER_BYTES) {
      entry.resume();
      return next(new ArtifactError(`${what} unpacks to more than ${MAX_LAYER_BYTES} bytes`));
    }
    if (!wanted) {
      entry.on("end", () => next());
      return void entry.resume();
    }
    if ((header.size ?? 0) > MAX_WASM_BYTES) {
      entry.resume();
      return next(new ArtifactError(`${what}: ${header.name} is ${header.size} bytes; the gateway loads at most ${MAX_WASM_BYTES}`));
    }
    const data = Buffer.allocUnsafeSlow(header.size ?? 0); // filled entirely below, or the tar is refused
    let at = 0;
    entry.on("data", (chunk) => {
      const bytes = chunk as Buffer;
      data.set(bytes.subarray(0, data.length - at), at);
      at += bytes.length;
    });
    entry.on("end", () => {
      if (at !== data.length) return next(new ArtifactError(`${what}: ${header.name} ends after ${at} of ${data.length} bytes`));
      found = { name, data };
      next();
    });
  });
  try {
    await pipeline(gzipped ? [body, createGunzip({ chunkSize: 256 << 10 }), extract] : [body, extract]);
  } catch (error) {
    if (error instanceof UploaderError) throw error;
    throw new ArtifactError(`${what} is not a valid ${gzipped ? "gzipped " : ""}tar: ${(error as Error).message}`);
  }
  return found?.data;
}
