// Recording a run around a piece of work: a "running" row before it starts, the result after.
import { ERRORS } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { oneLineError } from "../util/redact.ts";
import type { Catalog } from "./catalog.ts";
import type { FinishInfo, RunMeta } from "./catalog-types.ts";

export interface RunHandle {
  readonly id: number | undefined;
  /** Set by the work: the bytes written (backup size) or read. */
  bytes: number | undefined;
  /** Set by the work: facts shown with the run (backup id, LSNs…); never secrets. */
  details: Record<string, unknown> | undefined;
  /** Set by the work when decided during the run: the donor node, full or incremental. */
  node: string | undefined;
  kind: string | undefined;
  /** Set by the work when this run turned out not worth keeping (an idle poll): its row is removed. */
  discard?: boolean;
}

export interface RecordRunOptions<T> {
  /** Derives bytes and details from the work's result when the handle was not set. */
  summarize?: (result: T) => { bytes?: number; details?: Record<string, unknown> };
  /** A catalog that cannot be written must not stop a backup: the error goes here instead. */
  onCatalogError?: (error: unknown) => void;
}

/** True for a run stopped on purpose (a signal, an operator); a timeout is a failure. */
export function isAbort(error: unknown): boolean {
  if (error instanceof StrongboxError) return error.code === "ABORTED";
  if (!(error instanceof Error) || error.name !== "AbortError") return false;
  // An AbortError caused by AbortSignal.timeout() is a time limit that was hit.
  return (error.cause as { name?: unknown } | undefined)?.name !== "TimeoutError";
}

/** True for an error that says the command was given wrongly (exit status 64). */
export function isUsageError(error: unknown): boolean {
  return error instanceof StrongboxError && error.exitCode === ERRORS.USAGE.exit;
}

function defaultCatalogError(error: unknown): void {
  process.emitWarning(`the run catalog could not be written: ${oneLineError(error)}`, "StrongboxCatalog");
}

/**
 * Records `fn` as a run: the row is written before it starts, and finished as ok, failed or aborted
 * (with the one-line, redacted error) when it ends. The work's own result or error passes through.
 */
export async function recordRun<T>(
  catalog: Catalog,
  meta: RunMeta,
  fn: (run: RunHandle) => Promise<T> | T,
  options: RecordRunOptions<T> = {},
): Promise<T> {
  const onCatalogError = options.onCatalogError ?? defaultCatalogError;
  let id: number | undefined;
  try {
    id = catalog.startRun(meta);
  } catch (e) {
    onCatalogError(e);
  }
  const handle: RunHandle = { id, bytes: undefined, details: undefined, node: undefined, kind: undefined };
  const finish = (info: FinishInfo) => {
    if (id === undefined) return;
    try {
      catalog.finishRun(id, info);
    } catch (e) {
      onCatalogError(e);
    }
  };
  const forget = () => {
    if (id === undefined) return;
    try {
      catalog.deleteRun(id);
    } catch (err) {
      onCatalogError(err);
    }
  };
  let result: T;
  try {
    result = await fn(handle);
  } catch (e) {
    if (handle.discard) {
      forget();
      throw e;
    }
    if (isUsageError(e)) {
      // A mistake on the command line (exit 64) is not a run that failed: nothing was attempted,
      // so nothing is recorded and no alert fires.
      forget();
      throw e;
    }
    finish({
      result: isAbort(e) ? "aborted" : "failed",
      error: oneLineError(e),
      bytes: handle.bytes,
      details: handle.details,
      node: handle.node,
      kind: handle.kind,
    });
    throw e;
  }
  if (handle.discard) {
    forget();
    return result;
  }
  let summary: { bytes?: number; details?: Record<string, unknown> } = {};
  try {
    summary = options.summarize?.(result) ?? {};
  } catch (e) {
    onCatalogError(e);
  }
  finish({
    result: "ok",
    bytes: handle.bytes ?? summary.bytes,
    details: handle.details ?? summary.details,
    node: handle.node,
    kind: handle.kind,
  });
  return result;
}
