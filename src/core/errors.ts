/**
 * Typed HTTP errors. Route code throws them; the single `app.onError` renders them,
 * so every failure carries a status and a message meant for the person reading it.
 */
export class HttpError extends Error {
  constructor(
    readonly status: 400 | 401 | 403 | 404 | 405 | 414 | 429 | 500 | 502 | 503,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
    /** Extra machine-readable facts rendered into JSON error bodies. */
    readonly details: Readonly<Record<string, unknown>> = {},
  ) {
    // A client's mistake (a scanner's 404, a bad path) is an answer, not a fault: capturing its
    // stack would cost every such request more than answering it. Server errors keep theirs.
    const limit = Error.stackTraceLimit;
    if (status < 500) Error.stackTraceLimit = 0;
    super(message);
    Error.stackTraceLimit = limit;
    this.name = new.target.name;
  }

  /** The message for the response body; subclasses hide internals here. */
  get publicMessage(): string {
    return this.message;
  }
}

export class BadRequestError extends HttpError {
  constructor(message: string) {
    super(400, message);
  }
}

/** RFC 9110 §15.5.2: a 401 carries the challenges the client may answer. */
export class UnauthorizedError extends HttpError {
  constructor(message: string, challenge: string) {
    super(401, message, { "WWW-Authenticate": challenge });
  }
}

export class ForbiddenError extends HttpError {
  constructor(message: string) {
    super(403, message);
  }
}

export class NotFoundError extends HttpError {
  constructor(message: string, details: Record<string, unknown> = {}) {
    super(404, message, {}, details);
  }
}

export class MethodNotAllowedError extends HttpError {
  constructor(method: string, allow: readonly string[]) {
    super(405, `method ${method} is not allowed; use ${allow.join(" or ")}`, { Allow: allow.join(", ") });
  }
}

/** RFC 6585 §4: this client has sent too many failed attempts; Retry-After says when to try again. */
export class TooManyRequestsError extends HttpError {
  constructor(message: string, retryAfter: number) {
    super(429, message, { "Retry-After": String(retryAfter) });
  }
}

/**
 * The server is overloaded (RFC 9110 §15.6.4), here by credential checks: a 5xx, which the
 * gateway retries after its backoff, with Retry-After for other clients.
 */
export class BusyError extends HttpError {
  constructor(message: string, retryAfter: number) {
    super(503, message, { "Retry-After": String(retryAfter) });
  }
}

export class UriTooLongError extends HttpError {
  constructor(limit: number) {
    super(414, `request path is longer than ${limit} characters`);
  }
}

/**
 * The store failed or could not be reached. Rendered as 503 so that the gateway,
 * which retries 5xx but never 4xx, tries again instead of failing the plugin.
 */
export class StoreUnavailableError extends HttpError {
  constructor(message: string, options?: { cause?: unknown; retryAfter?: number }) {
    super(503, message, { "Retry-After": String(options?.retryAfter ?? 1) });
    if (options?.cause !== undefined) this.cause = options.cause;
  }

  /** What anonymous clients are told: the bucket, prefix and endpoint stay in the log. */
  override get publicMessage(): string {
    return "the plugin store is unavailable right now; try again shortly";
  }
}

/**
 * The store's configuration is wrong (a bucket that does not exist): a 503 like any store failure,
 * but not retried and not counted against the store's health, since asking again cannot help.
 */
export class StoreMisconfiguredError extends HttpError {
  constructor(message: string) {
    super(503, message, { "Retry-After": "30" });
  }

  override get publicMessage(): string {
    return "the plugin store is unavailable right now; try again shortly";
  }
}
