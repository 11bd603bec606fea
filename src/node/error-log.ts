import { HttpError, StoreMisconfiguredError, StoreUnavailableError } from "../core/errors.ts";
import type { LogFormat } from "./exchange.ts";

/**
 * Server-side failures on stderr, one line each (a log collector keeps lines together; an SDK
 * error printed whole is dozens of lines of $metadata and stack): what failed, its status, the
 * request it failed for, and for a failure that is not ours to expect (a bug) where it happened.
 */
export type ErrorLog = (error: unknown) => void;

type Kind = "store" | "config" | "server";

function kindOf(error: unknown): Kind {
  if (error instanceof StoreMisconfiguredError) return "config";
  if (error instanceof StoreUnavailableError) return "store";
  return "server";
}

/** The first line of a message: the rest of an SDK's message is its XML or stack. */
const firstLine = (text: string) => text.split("\n", 1)[0]!.trim();

/** A code of the underlying failure (ECONNREFUSED, TimeoutError), when the message may not say it. */
function causeOf(error: unknown): string | undefined {
  const cause = (error as { cause?: unknown } | undefined)?.cause;
  if (!cause || typeof cause !== "object") return undefined;
  const { code, name } = cause as { code?: unknown; name?: unknown };
  return typeof code === "string" ? code : typeof name === "string" && name !== "Error" ? name : undefined;
}

/** Where an unexpected error was thrown: the first frame of its stack. */
function whereOf(error: unknown): string | undefined {
  if (error instanceof HttpError || !(error instanceof Error)) return undefined;
  return /\n\s+at (.+)/.exec(error.stack ?? "")?.[1];
}

export function errorLog(format: LogFormat, requestId: () => string | undefined, write: (line: string) => void = (line) => process.stderr.write(line)): ErrorLog {
  return (error) => {
    const kind = kindOf(error);
    const status = error instanceof HttpError ? error.status : 500;
    const message = firstLine(error instanceof Error ? error.message : String(error));
    const cause = causeOf(error);
    const where = whereOf(error);
    const id = requestId();
    const time = new Date().toISOString();
    if (format === "json") {
      write(`${JSON.stringify({ time, level: "error", kind, status, message, ...(cause ? { cause } : {}), ...(where ? { at: where } : {}), ...(id ? { requestId: id } : {}) })}\n`);
      return;
    }
    write(`${time} error ${kind} ${status} ${message}${cause ? ` (${cause})` : ""}${where ? ` at ${where}` : ""}${id ? ` id=${id}` : ""}\n`);
  };
}
