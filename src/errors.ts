// Named errors with a stable code. The CLI's top-level handler turns them into one line for people,
// JSON for --json, and an exit code; anything else is reported as a bug. The codes, and the exit
// status of each, are declared in error-codes.ts.
import { ERRORS, type ErrorCode } from "./error-codes.ts";

export interface StrongboxErrorOptions {
  /** The stage that failed (e.g. "connect", "mariabackup", "upload"). */
  stage?: string;
  /** A hint that tells the operator how to fix it. */
  hint?: string;
  cause?: unknown;
  /** Extra structured facts for --json output (never secrets). */
  details?: Record<string, unknown>;
}

export class StrongboxError extends Error {
  readonly code: ErrorCode;
  readonly stage: string | undefined;
  readonly hint: string | undefined;
  readonly exitCode: number;
  readonly details: Record<string, unknown> | undefined;

  constructor(code: ErrorCode, message: string, options: StrongboxErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = "StrongboxError";
    this.code = code;
    this.stage = options.stage;
    this.hint = options.hint;
    this.exitCode = ERRORS[code].exit;
    this.details = options.details;
  }

  /** One line for people: message, then the fix. */
  oneLine(): string {
    return this.hint ? `${this.message} (${this.hint})` : this.message;
  }
}

export class ConfigError extends StrongboxError {
  readonly problems: string[];
  constructor(message: string, problems: string[] = [], options: StrongboxErrorOptions = {}) {
    super("CONFIG_INVALID", message, options);
    this.name = "ConfigError";
    this.problems = problems;
  }
  override oneLine(): string {
    if (this.problems.length === 0) return super.oneLine();
    return `${this.message}: ${this.problems.join("; ")}`;
  }
}

export class UsageError extends StrongboxError {
  constructor(message: string, options: StrongboxErrorOptions = {}) {
    super("USAGE", message, options);
    this.name = "UsageError";
  }
}

export function isStrongboxError(error: unknown): error is StrongboxError {
  return error instanceof StrongboxError;
}

export function errorMessage(error: unknown): string {
  if (error instanceof StrongboxError) return error.oneLine();
  if (error instanceof Error) return error.message;
  return String(error);
}
