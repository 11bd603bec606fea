#!/usr/bin/env node
/**
 * plugin-uploader: fills a plugin store from OCI registries, local files and offline bundles.
 * Progress goes to stderr, results to stdout (`--json` for machines).
 * Exit codes: 0 all done, 1 some plugins failed (each named), 2 usage or configuration error,
 * 3 another run holds the store's lease.
 *
 * The options and commands are declared in cli/spec.ts, parsed by commander (cli/program.ts) and
 * run by cli/commands.ts; errors are rendered here, once.
 */
import { ConfigError } from "../src/config/env.ts";
import { LocationError } from "../src/storage/location.ts";
import { run } from "./cli/commands.ts";
import { parseCommandLine } from "./cli/program.ts";
import { UploaderError, UsageError } from "./errors.ts";

/** Set by the build from package.json (one version for the package, the image and the chart). */
declare const __VERSION__: string | undefined;
const VERSION = typeof __VERSION__ === "string" ? __VERSION__ : "dev";

async function main(argv: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const line = parseCommandLine(argv, VERSION, { out: (text) => process.stdout.write(text), err: (text) => process.stderr.write(text) });
  if ("exit" in line) return line.exit;
  try {
    return await run(line.command, line.args, line.values, env);
  } catch (error) {
    if (error instanceof UsageError || error instanceof ConfigError || error instanceof LocationError) {
      process.stderr.write(`plugin-uploader: ${error.message}\n`);
      return 2;
    }
    if (error instanceof UploaderError) {
      process.stderr.write(`plugin-uploader: ${error.message}\n`);
      return error.exitCode;
    }
    // Anything else is still one line for the operator; the stack only on request.
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`plugin-uploader: ${message}${env.DEBUG ? `\n${(error as Error).stack ?? ""}` : " (DEBUG=1 shows where)"}\n`);
    return 1;
  }
}

main(process.argv.slice(2), process.env).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`plugin-uploader: ${(error as Error)?.stack ?? error}\n`);
    process.exitCode = 1;
  },
);
