// The daemon's jobs, from the config's `schedule` section: each is a cron expression and the CLI
// invocations it runs, one after the other. A job whose command this version does not have is
// accepted and reported as unavailable when due; it is never faked.
import { Cron } from "croner";
import type { LoadedConfig } from "../config/load.ts";
import type { ScheduleConfig } from "../config/schema.ts";
import { ConfigError } from "../errors.ts";

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

export function jobsFromConfig(loaded: LoadedConfig): JobSpec[] {
  const c = loaded.config;
  const schedule: ScheduleConfig = c.schedule ?? {};
  const problems: string[] = [];
  const jobs: JobSpec[] = [];
  const defaultRepo = c.defaultRepository ?? c.repositories[0]?.name;
  if (schedule.timeZone !== undefined && cronProblem("0 0 * * *", schedule.timeZone)) {
    problems.push(`schedule.timeZone: unknown time zone "${schedule.timeZone}"`);
  }
  for (const name of JOB_NAMES) {
    const cron = schedule[name];
    if (cron === undefined) continue;
    const bad = cronProblem(cron, problems.length ? undefined : schedule.timeZone);
    if (bad) {
      problems.push(`schedule.${name}: "${cron}" is not a valid cron expression (${bad})`);
      continue;
    }
    switch (name) {
      case "full":
        jobs.push({ name, cron, steps: [["backup", "--full"]] });
        break;
      case "incremental":
        jobs.push({ name, cron, steps: [["backup", "--incremental"]] });
        break;
      case "verify":
        jobs.push({ name, cron, steps: c.repositories.map((r) => ["verify", "--repo", r.name]) });
        break;
      case "restoreTest":
        jobs.push({ name, cron, steps: [["restore-test", ...(defaultRepo ? ["--repo", defaultRepo] : [])]] });
        break;
      case "copy":
        if (c.backup.copyTo.length === 0)
          problems.push("schedule.copy: nothing to copy to; list the destinations in backup.copyTo");
        jobs.push({ name, cron, steps: c.backup.copyTo.map((to) => ["copy", "--missing", "--to", to]) });
        break;
      case "prune": {
        const withPolicy = c.repositories.filter((r) => r.retention && !r.appendOnly);
        if (withPolicy.length === 0)
          problems.push("schedule.prune: no repository has a retention policy (repositories[].retention)");
        jobs.push({ name, cron, steps: withPolicy.map((r) => ["prune", "--repo", r.name]) });
        break;
      }
      case "binlog":
        // One archiving pass per tick: closed files promptly, the open one flushed at binlog.flushInterval.
        jobs.push({ name, cron, steps: [["binlog", "archive"]] });
        break;
    }
  }
  if (problems.length > 0)
    throw new ConfigError(`${loaded.path}: the schedule has ${problems.length} problem(s)`, problems);
  if (jobs.length === 0) {
    throw new ConfigError(`${loaded.path} schedules no jobs`, [], {
      hint: 'add a schedule section, e.g. schedule: { full: "0 2 * * 0", incremental: "0 2 * * 1-6", verify: "0 6 * * *" }',
    });
  }
  return jobs;
}
