// daemon: runs the schedule until SIGTERM or SIGINT, then lets running jobs clean up and exits 0.

import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { jobsFromConfig } from "../config/schedule.ts";
import { createLogger, type LogSink } from "../daemon/log.ts";
import { childRunner, type StepRunner } from "../daemon/runner.ts";
import { Scheduler } from "../daemon/scheduler.ts";
import { checkAndAlertConfigured, openMonitorCatalog } from "../monitor/monitor.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";

export interface DaemonCommandOptions {
  checkInterval?: number;
  /** Tests: where log lines go (default stdout), and a runner instead of child processes. */
  sink?: LogSink;
  run?: StepRunner;
  /** Resolves when the daemon should stop (default: the first SIGTERM or SIGINT). */
  until?: Promise<unknown>;
}

export async function daemon(
  g: GlobalOptions,
  o: DaemonCommandOptions,
  _out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const jobs = jobsFromConfig(loaded);
  const log = createLogger(o.sink ? { sink: o.sink, human: false } : {});
  const scheduler = new Scheduler({
    jobs,
    log,
    run: o.run ?? childRunner({ configPath: loaded.path }),
    timeZone: loaded.config.schedule?.timeZone,
    checkIntervalMs: (o.checkInterval ?? 60) * 1000,
    check: async (signal) => {
      const catalog = openMonitorCatalog(monitorSettingsOf(loaded));
      try {
        const r = await checkAndAlertConfigured(monitorSettingsOf(loaded), catalog, { signal });
        return {
          opened: r.opened.map((i) => `${i.repository} ${i.subject}: ${i.message}`),
          resolved: r.resolved.map((i) => `${i.repository} ${i.subject}`),
          undelivered: r.deliveries.filter((d) => !d.ok).map((d) => `${d.channel}: ${d.error}`),
        };
      } finally {
        catalog.close();
      }
    },
  });

  let signals = 0;
  let onSignal: ((sig: NodeJS.Signals) => void) | undefined;
  const stopRequested = new Promise<string>((resolve) => {
    onSignal = (sig) => {
      signals++;
      if (signals > 1) {
        log.warn(
          { event: "signal", signal: sig },
          `${sig}: still waiting for ${scheduler.running().join(", ") || "nothing"}`,
        );
        return;
      }
      resolve(sig);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
  try {
    scheduler.start();
    const reason = await Promise.race([
      stopRequested,
      (o.until ?? new Promise<never>(() => {})).then(() => "stop requested"),
    ]);
    await scheduler.stop(reason);
  } finally {
    if (onSignal) {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    }
  }
  return { exitCode: 0 };
}
