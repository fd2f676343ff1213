// The daemon's jobs: each is a cron expression and the CLI invocations it runs, one after the
// other (config/schedule.ts makes them from the config's `schedule` section). A job whose command
// this version does not have is accepted and reported as unavailable when due; it is never faked.
import { Cron } from "croner";

export const JOB_NAMES = ["full", "incremental", "verify", "restoreTest", "copy", "prune", "binlog"] as const;
export type JobName = (typeof JOB_NAMES)[number];

export interface JobSpec {
  name: string;
  cron: string;
  /** CLI arguments of each step (after the global --config/--json). */
  steps: string[][];
  /** Why it cannot run in this version; logged when due instead of running. */
  unavailable?: string;
}

/** Problems of a cron expression (empty when valid). */
export function cronProblem(expr: string, timeZone?: string): string | undefined {
  try {
    const c = new Cron(expr, { paused: true, ...(timeZone ? { timezone: timeZone } : {}) });
    if (!c.nextRun()) return "never runs";
    c.stop();
    return undefined;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}
