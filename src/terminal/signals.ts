// SIGTERM/SIGINT for long commands: the first signal aborts the work so it cleans up (desync off,
// nothing half-committed, scratch servers stopped); a second signal, or cleanup that takes longer
// than the grace period, ends the process.
import { StrongboxError } from "../errors.ts";

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
