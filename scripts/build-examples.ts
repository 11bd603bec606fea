import { mkdir, writeFile } from "node:fs/promises";
import { buildExample, EXAMPLE_STORE, EXAMPLES } from "./examples.ts";

/** Rebuilds examples/store/ from the sources in examples/plugins/ (the test suite checks they agree). */
for (const [name, version] of EXAMPLES) {
  const example = await buildExample(name, version);
  const dir = new URL(`plugins/${name}/${version}/`, EXAMPLE_STORE);
  await mkdir(dir, { recursive: true });
  for (const [file, bytes] of example.files) await writeFile(new URL(file, dir), bytes);
  console.error(`built ${name} ${version}: ${example.metadata.size} bytes, sha256 ${example.metadata.sha256}`);
}
