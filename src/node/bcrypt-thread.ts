import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";
import type { Compare } from "../access/authenticator.ts";

/**
 * bcrypt on a worker thread: a check costs tens of milliseconds of CPU (more at higher costs), and
 * on the event loop every check would stall every download and probe for that long. One thread,
 * started on the first check and stopped after a minute without one (an idle server keeps no
 * second V8 heap); checks queue on it in order, and the Authenticator bounds how many may wait.
 * The thread loads bcryptjs by the path this module resolves, so it works from src/ and dist/ alike.
 */
const THREAD = `
const { parentPort, workerData } = require("node:worker_threads");
const { compareSync } = require(workerData.bcryptjs);
parentPort.on("message", ({ id, password, hash }) => {
  let ok = false;
  try { ok = compareSync(password, hash); } catch {}
  parentPort.postMessage({ id, ok });
});
`;

const IDLE_MS = 60_000;

export function threadedCompare(): Compare & { close(): Promise<void> } {
  const bcryptjs = createRequire(import.meta.url).resolve("bcryptjs");
  let worker: Worker | undefined;
  let idle: NodeJS.Timeout | undefined;
  let nextId = 0;
  const waiting = new Map<number, { resolve: (ok: boolean) => void; reject: (error: Error) => void }>();

  const stop = () => {
    const w = worker;
    worker = undefined;
    return w?.terminate().then(() => undefined);
  };
  const start = (): Worker => {
    const w = new Worker(THREAD, { eval: true, workerData: { bcryptjs }, resourceLimits: { maxOldGenerationSizeMb: 16, maxYoungGenerationSizeMb: 4 } });
    w.on("message", ({ id, ok }: { id: number; ok: boolean }) => {
      waiting.get(id)?.resolve(ok);
      waiting.delete(id);
      if (waiting.size === 0) {
        w.unref(); // nothing to wait for: the thread must not keep the process alive
        idle = setTimeout(stop, IDLE_MS).unref();
      }
    });
    // A thread that dies fails the checks it held (answered 503 by the guard, never "wrong"); the next check starts a new one.
    const fail = (error: Error) => {
      if (worker === w) worker = undefined;
      for (const { reject } of waiting.values()) reject(error);
      waiting.clear();
    };
    w.on("error", fail);
    w.on("exit", (code) => fail(new Error(`the bcrypt thread exited (code ${code})`)));
    return w;
  };

  const compare = (password: string, hash: string) =>
    new Promise<boolean>((resolve, reject) => {
      clearTimeout(idle);
      worker ??= start();
      worker.ref();
      const id = nextId++;
      waiting.set(id, { resolve, reject });
      worker.postMessage({ id, password, hash });
    });
  return Object.assign(compare, { close: async () => void (await stop()) });
}
