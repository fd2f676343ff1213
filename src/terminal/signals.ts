// SIGTERM/SIGINT for long commands: the first signal aborts the work so it cleans up (desync off,
// nothing half-committed, scratch servers stopped); a second signal, or cleanup that takes longer
// than the grace period, ends the process.
import { StrongboxError } from "../errors.ts";
import { isAbortError } from "../util/error-kinds.ts";

const GRACE_MS = 120_000;

export interface Interruptible {
  signal: AbortSignal;
  dispose(): void;
}

export function interruptible(describe: (sig: NodeJS.Signals) => string): Interruptible {
  const abort = new AbortController();
  const onSignal = (sig: NodeJS.Signals) => {
    if (abort.signal.aborted) {
      process.stderr.write(`strongbox: second ${sig}: exiting without waiting for cleanup\n`);
      process.exit(130);
    }
    abort.abort(new StrongboxError("ABORTED", describe(sig)));
    setTimeout(() => {
      process.stderr.write("strongbox: cleanup did not finish in time; exiting\n");
      process.exit(130);
    }, GRACE_MS).unref();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  return {
    signal: abort.signal,
    dispose: () => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    },
  };
}

/**
 * Node's AbortError (from a child process or a pipeline given the signal) carries the reason the
 * command was aborted with, ABORTED "… by SIGTERM": that is the error to report, not a bug.
 */
export function abortReason(error: unknown): unknown {
  const cause = (error as Error | undefined)?.cause;
  return isAbortError(error) && cause instanceof StrongboxError ? cause : error;
}
