import { execFile } from "node:child_process";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { ROOT } from "./targets.ts";

export interface Cli {
  code: number;
  stdout: string;
  stderr: string;
}

const run = promisify(execFile);

/** The built plugin-uploader as users run it, with exactly `env` (plus PATH and a throwaway HOME). */
export async function cli(args: string[], env: Record<string, string> = {}): Promise<Cli> {
  try {
    const { stdout, stderr } = await run(process.execPath, [path.join(ROOT, "dist/uploader.js"), ...args], {
      env: { PATH: process.env.PATH ?? "", HOME: tmpdir(), ...env },
      maxBuffer: 16 << 20,
      timeout: 60_000,
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
