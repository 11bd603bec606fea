import { HttpError, StoreUnavailableError } from "../core/errors.ts";
import {
  discard,
  Stored,
  type CallOptions,
  type ChunkReader,
  type GetOptions,
  type Listing,
  type ObjectInfo,
  type PutOptions,
  type Store,
  type StoredObject,
  type WritableStore,
} from "./store.ts";

/**
 * Deadlines, retries and a circuit breaker around any backend, so a store that hangs or fails
 * costs a bounded time per request, and a dead one costs milliseconds:
 * - every operation has a deadline to its first byte (`timeoutMs`); idempotent ones are retried
 *   on failure with jittered exponential backoff while the deadline allows;
 * - a body that stops flowing for `stallMs` is aborted, so the client sees a truncated transfer
 *   and retries instead of hanging;
 * - after `failureThreshold` failures in a row the breaker opens: calls fail at once (503 with
 *   Retry-After) for `cooldownMs`, then one call probes the store and closes it again.
 * "Not found" is an answer, not a failure.
 */
export interface PolicyOptions {
  readonly timeoutMs?: number;
  readonly stallMs?: number;
  /** Attempts after the first one. */
  readonly retries?: number;
  readonly backoffMs?: number;
  readonly failureThreshold?: number;
  readonly cooldownMs?: number;
  /** Told every operation's outcome and time (the uploader's --verbose). */
  readonly log?: (line: string) => void;
  /** For tests. */
  readonly now?: () => number;
  readonly random?: () => number;
}

type BreakerState = { readonly kind: "closed"; failures: number } | { readonly kind: "open"; readonly until: number } | { readonly kind: "probing" };

export class PolicyStore implements WritableStore {
  readonly description: string;
  readonly #inner: Store;
  readonly #timeout: number;
  readonly #stall: number;
  readonly #retries: number;
  readonly #backoff: number;
  readonly #threshold: number;
  readonly #cooldown: number;
  readonly #now: () => number;
  readonly #random: () => number;
  readonly #log: ((line: string) => void) | undefined;
  #state: BreakerState = { kind: "closed", failures: 0 };

  constructor(inner: Store, options: PolicyOptions = {}) {
    this.#inner = inner;
    this.description = inner.description;
    this.#timeout = options.timeoutMs ?? 5_000;
    this.#stall = options.stallMs ?? this.#timeout;
    this.#retries = options.retries ?? 2;
    this.#backoff = options.backoffMs ?? 100;
    this.#threshold = options.failureThreshold ?? 5;
    this.#cooldown = options.cooldownMs ?? 5_000;
    this.#now = options.now ?? Date.now;
    this.#random = options.random ?? Math.random;
    this.#log = options.log;
  }

  /** "closed" (healthy), "open" (failing fast) or "probing". */
  get breaker(): BreakerState["kind"] {
    return this.#state.kind;
  }

  async get(key: string, options: GetOptions = {}): Promise<StoredObject | null> {
    const object = await this.#run(`read ${key}`, options, (signal) => this.#inner.get(key, { ...options, signal }));
    return object ? this.#guard(key, object) : null;
  }

  head(key: string, options: CallOptions = {}): Promise<ObjectInfo | null> {
    return this.#run(`read ${key}`, options, (signal) => this.#inner.head(key, { signal }));
  }

  list(prefix: string, options: CallOptions & { readonly timeoutMs?: number; readonly retries?: number } = {}): Promise<Listing> {
    return this.#run(`list ${prefix}`, options, (signal) => this.#inner.list(prefix, { signal }));
  }

  put(key: string, data: Uint8Array, options?: PutOptions): Promise<ObjectInfo> {
    // A whole-object PUT is idempotent: repeating it leaves the same object.
    return this.#run(`write ${key}`, {}, () => this.#writable().put(key, data, options));
  }

  delete(key: string): Promise<void> {
    return this.#run(`delete ${key}`, {}, () => this.#writable().delete(key));
  }

  /**
   * Not idempotent like a PUT: an attempt that timed out may have landed, and its retry then
   * answers "taken" for our own object. Callers read back what they find (the lease does).
   */
  create(key: string, data: Uint8Array, options?: PutOptions): Promise<"created" | "taken" | "unsupported"> {
    const create = this.#writable().create?.bind(this.#inner);
    return create ? this.#run(`create ${key}`, {}, () => create(key, data, options)) : Promise.resolve("unsupported");
  }

  close(): Promise<void> {
    return this.#inner.close?.() ?? Promise.resolve();
  }

  #writable(): WritableStore {
    const inner = this.#inner as Partial<WritableStore>;
    if (!inner.put || !inner.delete) throw new Error(`${this.description} is read-only`);
    return inner as WritableStore;
  }

  async #run<T>(
    what: string,
    options: CallOptions & { readonly timeoutMs?: number; readonly retries?: number },
    call: (signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    const deadline = this.#now() + (options.timeoutMs ?? this.#timeout);
    const retries = options.retries ?? this.#retries;
    for (let attempt = 0; ; attempt++) {
      this.#admit();
      const remaining = deadline - this.#now();
      const started = this.#now();
      try {
        const result = await withDeadline(call, remaining, options.signal, () => new StoreUnavailableError(`store did not answer within ${options.timeoutMs ?? this.#timeout} ms (${what})`));
        this.#succeeded();
        this.#log?.(`store ${what}: ${result === null ? "not found" : "ok"} ${this.#now() - started} ms`);
        return result;
      } catch (error) {
        this.#log?.(`store ${what}: ${(error as Error).message.split("\n")[0]} ${this.#now() - started} ms`);
        if (options.signal?.aborted) {
          // Our caller gave up: that says nothing about the store; let the next call probe it if this one was.
          if (this.#state.kind === "probing") this.#state = { kind: "open", until: this.#now() };
          throw error;
        }
        if (!isStoreFailure(error)) {
          this.#succeeded(); // the store answered; the answer was just not a success
          throw error;
        }
        this.#failed();
        const pause = Math.round(this.#backoff * 2 ** attempt * (0.5 + this.#random()));
        if (attempt >= retries || this.#state.kind === "open" || deadline - this.#now() < pause + 10) throw error;
        await sleep(pause);
      }
    }
  }

  #admit(): void {
    const state = this.#state;
    if (state.kind === "closed") return;
    if (state.kind === "open" && state.until <= this.#now()) {
      this.#state = { kind: "probing" }; // this call is the probe
      return;
    }
    const wait = state.kind === "open" ? Math.max(1, Math.ceil((state.until - this.#now()) / 1000)) : 1;
    throw new StoreUnavailableError(`store is failing; not asking it again for ${wait} s`, { retryAfter: wait });
  }

  #succeeded(): void {
    this.#state = { kind: "closed", failures: 0 };
  }

  #failed(): void {
    const state = this.#state;
    if (state.kind === "closed" && ++state.failures < this.#threshold) return;
    this.#state = { kind: "open", until: this.#now() + this.#cooldown };
  }

  /** Aborts a body that stops flowing, and counts it as a store failure. One timer per body, refreshed per chunk. */
  #guard(key: string, object: StoredObject): StoredObject {
    if (object.bytes || (!object.reader && !object.body)) return object;
    const source = object.reader ?? streamReader(object.body!);
    let timer: ReturnType<typeof setTimeout> | undefined;
    let fail: ((error: Error) => void) | undefined;
    let reading = false; // only a pending read can stall: a slow client is not the store's fault
    const stalled = () => {
      if (!reading) return;
      source.close();
      this.#failed();
      fail?.(new StoreUnavailableError(`store stalled for ${this.#stall} ms while sending ${key}`));
    };
    const arm = () => {
      if (timer && "refresh" in timer) timer.refresh();
      else {
        clearTimeout(timer);
        timer = setTimeout(stalled, this.#stall);
      }
    };
    const close = () => {
      clearTimeout(timer);
      fail = undefined;
      source.close();
    };
    const reader: ChunkReader = {
      // A file the kernel sends is read by no call of ours: nothing to time (a local disk).
      get file() {
        return source.file;
      },
      read: (max, into) =>
        new Promise<Uint8Array | null>((resolve, reject) => {
          fail = reject;
          reading = true;
          arm();
          source.read(max, into).then(
            (chunk) => {
              reading = false;
              if (chunk === null) close();
              resolve(chunk);
            },
            (error: unknown) => {
              reading = false;
              close();
              if (isStoreFailure(error)) this.#failed();
              reject(error);
            },
          );
        }),
      close,
    };
    return new Stored(object.info, reader, { range: object.range, release: close });
  }
}

/** Anything but a typed client-facing answer (a 404 is `null`, never an error) is the store failing. */
function isStoreFailure(error: unknown): boolean {
  return !(error instanceof HttpError) || error instanceof StoreUnavailableError;
}

/** Runs `call` with an abort signal that fires after `ms`; rejects at that moment whether or not the backend listens. */
async function withDeadline<T>(call: (signal: AbortSignal) => Promise<T>, ms: number, outer: AbortSignal | undefined, timeout: () => Error): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const onOuter = () => controller.abort(outer?.reason);
  outer?.addEventListener("abort", onOuter, { once: true });
  const pending = call(controller.signal);
  // An answer that arrives after we gave up holds a connection or a descriptor: give it back.
  pending.then((late) => controller.signal.aborted && discardLate(late), () => {});
  try {
    return await Promise.race([
      pending,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => {
          const error = timeout();
          controller.abort(error);
          reject(error);
        }, Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
    outer?.removeEventListener("abort", onOuter);
  }
}

function discardLate(value: unknown): void {
  if (value && typeof value === "object" && "info" in value) discard(value as StoredObject);
}

/** A web stream as a chunk reader (chunks come in the size the stream makes them). */
function streamReader(stream: ReadableStream<Uint8Array>): ChunkReader {
  const reader = stream.getReader();
  let closed = false;
  return {
    async read() {
      const { done, value } = await reader.read();
      if (done) closed = true;
      return done ? null : value;
    },
    close() {
      if (closed) return;
      closed = true;
      reader.cancel().catch(() => {});
    },
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
