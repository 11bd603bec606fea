import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { ROOT } from "./targets.ts";

export interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

/** The built plugin-uploader as users run it, with exactly `env` (plus PATH and a throwaway HOME), `input` on stdin. */
export function cli(args: string[], env: Record<string, string> = {}, input = ""): Promise<Cli> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [path.join(ROOT, "dist/uploader.js"), ...args],
      { env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), ...env }, maxBuffer: 16 << 20, timeout: 60_000 },
      (error, stdout, stderr) => resolve({ code: error ? ((error as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
    child.stdin?.end(input);
  });
}
