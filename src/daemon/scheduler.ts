// Runs jobs on their cron schedules. A job never overlaps itself: when it is due while its previous
// run is still going, this run is skipped and logged. Alert rules are checked on an interval, so
// "no backup for 26 h" fires even when nothing runs. stop() stops scheduling, aborts the running
// jobs (their children get SIGTERM and clean up) and waits for them.
import { Cron } from "croner";
import { oneLineError } from "../util/redact.ts";
import type { JobSpec } from "./jobs.ts";
import type { Logger } from "./log.ts";
import type { StepOutcome, StepRunner } from "./runner.ts";

export interface SchedulerOptions {
  jobs: readonly JobSpec[];
  run: StepRunner;
  log: Logger;
  /** Evaluate alert rules and deliver alerts (checkAndAlertConfigured). */
  check?: (signal: AbortSignal) => Promise<Record<string, unknown> | undefined>;
  checkIntervalMs?: number;
  timeZone?: string | undefined;
}

export interface JobResult {
  job: string;
  result: "ok" | "failed" | "aborted";
  durationMs: number;
  steps: StepOutcome[];
}

export class Scheduler {
  readonly #o: SchedulerOptions;
  readonly #crons: Cron[] = [];
  readonly #running = new Map<string, { since: number; done: Promise<JobResult> }>();
  readonly #abort = new AbortController();
  #checking: Promise<void> | undefined;
  #checkTimer: NodeJS.Timeout | undefined;
  #stopping: Promise<void> | undefined;

  constructor(o: SchedulerOptions) {
    this.#o = o;
  }

  get stopped(): boolean {
    return this.#stopping !== undefined;
  }

  /** Names of the jobs running now. */
  running(): string[] {
    return [...this.#running.keys()];
  }

  start(): void {
    const tz = this.#o.timeZone;
    for (const job of this.#o.jobs) {
      const cron = new Cron(
        job.cron,
        { ...(tz ? { timezone: tz } : {}), name: `strongbox-${job.name}` },
        () => {
          void this.trigger(job);
        },
      );
      this.#crons.push(cron);
    }
    this.#o.log.info(
      {
        event: "daemon-start",
        jobs: this.#o.jobs.map((j, i) => ({
          job: j.name,
          cron: j.cron,
          next: this.#crons[i]?.nextRun()?.toISOString() ?? null,
          ...(j.unavailable ? { unavailable: j.unavailable } : {}),
        })),
      },
      "daemon started",
    );
    if (this.#o.check) {
      void this.checkNow();
      this.#checkTimer = setInterval(() => void this.checkNow(), this.#o.checkIntervalMs ?? 60_000);
    }
  }

  /** Runs a job now unless it is already running (then the run is skipped). Resolves when it ends. */
  async trigger(job: JobSpec): Promise<JobResult | undefined> {
    const log = this.#o.log;
    if (this.stopped) return undefined;
    if (job.unavailable) {
      log.warn(
        { event: "job-unavailable", job: job.name, reason: job.unavailable },
        `${job.name}: not available in this version`,
      );
      return undefined;
    }
    const current = this.#running.get(job.name);
    if (current) {
      log.warn(
        {
          event: "job-skip",
          job: job.name,
          reason: "previous run still going",
          runningForMs: Date.now() - current.since,
        },
        `${job.name}: skipped, the previous run is still going`,
      );
      return undefined;
    }
    const since = Date.now();
    const done = this.#execute(job, since);
    this.#running.set(job.name, { since, done });
    try {
      return await done;
    } finally {
      this.#running.delete(job.name);
    }
  }

  async #execute(job: JobSpec, since: number): Promise<JobResult> {
    const log = this.#o.log;
    const signal = this.#abort.signal;
    log.info(
      { event: "job-start", job: job.name, steps: job.steps.map((s) => s.join(" ")) },
      `${job.name}: start`,
    );
    const steps: StepOutcome[] = [];
    for (const args of job.steps) {
      if (signal.aborted) break;
      let outcome: StepOutcome;
      try {
        outcome = await this.#o.run(args, signal);
      } catch (e) {
        outcome = { result: "failed", exitCode: null, signal: null, durationMs: 0, error: oneLineError(e) };
      }
      steps.push(outcome);
      if (outcome.result !== "ok" && args[0] !== "verify" && args[0] !== "copy" && args[0] !== "prune") break;
    }
    const failed = steps.find((s) => s.result !== "ok");
    const result: JobResult["result"] =
      failed?.result ?? (signal.aborted && steps.length < job.steps.length ? "aborted" : "ok");
    const durationMs = Date.now() - since;
    const fields = {
      event: "job-end",
      job: job.name,
      result,
      durationMs,
      ...(failed ? { exitCode: failed.exitCode, error: failed.error } : {}),
      ...(job.steps.length > 1
        ? { steps: steps.map((s, i) => ({ args: job.steps[i]?.join(" "), result: s.result })) }
        : {}),
    };
    const msg = `${job.name}: ${result} in ${(durationMs / 1000).toFixed(1)} s`;
    if (result === "ok") log.info(fields, msg);
    else if (result === "aborted") log.warn(fields, msg);
    else log.error(fields, msg);
    return { job: job.name, result, durationMs, steps };
  }

  /** Evaluates the alert rules once (skipped while the previous check is still going). */
  checkNow(): Promise<void> {
    const check = this.#o.check;
    if (!check || this.stopped) return Promise.resolve();
    if (this.#checking) return this.#checking;
    this.#checking = (async () => {
      try {
        const report = await check(this.#abort.signal);
        if (report) this.#o.log.debug({ event: "check", ...report }, "alert rules checked");
      } catch (e) {
        this.#o.log.warn(
          { event: "check-failed", error: oneLineError(e) },
          "alert rules could not be checked",
        );
      } finally {
        this.#checking = undefined;
      }
    })();
    return this.#checking;
  }

  /** Stops scheduling, aborts running jobs (SIGTERM to their processes) and waits for them. */
  stop(reason = "stop requested"): Promise<void> {
    this.#stopping ??= (async () => {
      for (const c of this.#crons) c.stop();
      if (this.#checkTimer) clearInterval(this.#checkTimer);
      const running = [...this.#running.entries()];
      this.#o.log.info(
        { event: "daemon-stopping", reason, waitingFor: running.map(([name]) => name) },
        running.length ? `stopping: waiting for ${running.map(([n]) => n).join(", ")}` : "stopping",
      );
      this.#abort.abort();
      await Promise.allSettled([...running.map(([, r]) => r.done), this.#checking]);
      this.#o.log.info({ event: "daemon-stop" }, "daemon stopped");
    })();
    return this.#stopping;
  }
}
