const TYPES: Readonly<Record<string, string>> = {
  wasm: "application/wasm",
  gz: "application/gzip",
  txt: "text/plain; charset=utf-8",
  json: "application/json",
  md: "text/markdown; charset=utf-8",
  yaml: "application/yaml",
  yml: "application/yaml",
  png: "image/png",
  svg: "image/svg+xml",
};

/** The media type for a stored file; unknown extensions are opaque bytes, never sniffed into HTML. */
export function contentTypeFor(file: string): string {
  const ext = file.slice(file.lastIndexOf(".") + 1).toLowerCase();
  return TYPES[ext] ?? "application/octet-stream";
}
