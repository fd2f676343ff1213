// The config's `schedule` section as the daemon's jobs; every bad entry is reported at once.
import { cronProblem, JOB_NAMES, type JobSpec } from "../daemon/jobs.ts";
import { ConfigError } from "../errors.ts";
import type { LoadedConfig } from "./load.ts";
import type { ScheduleConfig } from "./schema.ts";

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
