/** Typed uploader errors: each names what was wrong, so a failed plugin says why in one line. */
export class UploaderError extends Error {
  /** The CLI's exit code for it (see the usage text). */
  readonly exitCode: number = 1;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** Bad command line or configuration: exit code 2. */
export class UsageError extends UploaderError {}

/** The registry refused, failed or sent something that does not verify. */
export class RegistryError extends UploaderError {
  constructor(
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** The artifact is not a plugin we can publish (no wasm, invalid module, too large). */
export class ArtifactError extends UploaderError {}
