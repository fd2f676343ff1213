// What kind of failure an error is, asked the same way everywhere: an abort, a network error, a
// failure of the destination of a pipeline.

/** errno codes of a connection that failed or dropped: worth another try, or a node to skip. */
export const NETWORK_ERRNO: ReadonlySet<string> = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
]);

/** The errno code (or any string code) an error carries. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "string" ? code : undefined;
}

export function isNetworkError(error: unknown): boolean {
  return NETWORK_ERRNO.has(errnoOf(error) ?? "");
}

export function isAbortError(error: unknown): boolean {
  return error instanceof Error && error.name === "AbortError";
}

export function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** Marks an error of the destination (as opposed to the caller's source stream) in a pipeline. */
export class WriteFailure extends Error {
  constructor(cause: unknown) {
    super("write failed", { cause });
  }
}
