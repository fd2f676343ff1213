// /metrics: the catalog as Prometheus text. A fresh Registry per scrape, filled from the catalog:
// the numbers live in SQLite (written by whichever process ran the command), not in this process,
// and nothing lands in prom-client's global default registry.
import { Counter, Gauge, Registry } from "prom-client";
import type { Catalog } from "./catalog.ts";
import { RUN_RESULTS } from "./catalog-types.ts";
import { pitrStatus } from "./pitr.ts";

export const METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

const RUN_LABELS = ["repository", "command", "kind"] as const;
const FINISHED_RESULTS = RUN_RESULTS.filter((r) => r !== "running");

const seconds = (ms: number) => ms / 1000;

export interface MetricsOptions {
  /** Epoch ms; defaults to the catalog's clock. */
  now?: number;
  /** Repositories to report; default: every repository in the catalog. Configured ones get zeros. */
  repositories?: readonly string[];
}

/** Builds the registry (exported for the dashboard server, which may add its own metrics). */
export function buildRegistry(catalog: Catalog, o: MetricsOptions = {}): Registry {
  const now = o.now ?? catalog.now();
  const registry = new Registry();
  const registers = [registry];
  const gauge = <T extends string>(name: string, help: string, labelNames: readonly T[]) =>
    new Gauge<T>({ name, help, labelNames, registers });

  const lastSuccess = gauge(
    "strongbox_last_success_timestamp_seconds",
    "End of the last successful run (Unix time)",
    RUN_LABELS,
  );
  const lastRunTime = gauge(
    "strongbox_last_run_timestamp_seconds",
    "End of the last finished run, whatever its result (Unix time)",
    RUN_LABELS,
  );
  const lastDuration = gauge(
    "strongbox_last_duration_seconds",
    "Duration of the last finished run",
    RUN_LABELS,
  );
  const lastSuccessDuration = gauge(
    "strongbox_last_success_duration_seconds",
    "Duration of the last successful run",
    RUN_LABELS,
  );
  const lastSize = gauge(
    "strongbox_last_size_bytes",
    "Bytes of the last successful run that reported a size (a backup's stored size)",
    RUN_LABELS,
  );
  const lastOk = gauge(
    "strongbox_last_run_success",
    "1 when the last finished run succeeded, else 0",
    RUN_LABELS,
  );
  const lastResult = gauge(
    "strongbox_last_result",
    "1 for the result of the last finished run, 0 for the other results",
    [...RUN_LABELS, "result"],
  );
  const inProgress = gauge("strongbox_run_in_progress", "1 while a run is in progress, else 0", RUN_LABELS);
  const inProgressSeconds = gauge(
    "strongbox_run_in_progress_seconds",
    "How long the run in progress has been going",
    RUN_LABELS,
  );
  const runsTotal = new Counter({
    name: "strongbox_runs_total",
    help: "Runs recorded in the catalog, by result",
    labelNames: ["repository", "command", "result"] as const,
    registers,
  });
  const openIncidents = gauge("strongbox_open_incidents", "Open alert incidents by severity", [
    "repository",
    "severity",
  ]);
  const incidentOpen = gauge(
    "strongbox_incident_open",
    "1 for each open alert incident (value is constant; labels say which)",
    ["repository", "rule", "subject", "severity"],
  );
  const undelivered = gauge(
    "strongbox_alert_notifications_failed",
    "Alert notifications whose delivery failed (retried for a day)",
    ["channel"],
  );

  const wanted = o.repositories ? new Set(o.repositories) : undefined;
  const subjects = catalog.subjects().filter((s) => !wanted || wanted.has(s.repository));
  const running = catalog.runningRuns();
  for (const s of subjects) {
    const labels = { repository: s.repository, command: s.command, kind: s.kind ?? "" };
    const recent = catalog.history(s.command, s.repository, 50, { kind: s.kind });
    const finished = recent.find((r) => r.result !== "running");
    const ok = catalog.lastRun(s.command, s.repository, { result: "ok", kind: s.kind });
    const sized = catalog
      .history(s.command, s.repository, 50, { result: "ok", kind: s.kind })
      .find((r) => r.bytes !== null);
    if (ok) {
      lastSuccess.set(labels, seconds(ok.endedAt ?? ok.startedAt));
      if (ok.durationMs !== null) lastSuccessDuration.set(labels, seconds(ok.durationMs));
    }
    if (sized) lastSize.set(labels, sized.bytes!);
    if (finished) {
      lastRunTime.set(labels, seconds(finished.endedAt ?? finished.startedAt));
      if (finished.durationMs !== null) lastDuration.set(labels, seconds(finished.durationMs));
      lastOk.set(labels, finished.result === "ok" ? 1 : 0);
      for (const r of FINISHED_RESULTS)
        lastResult.set({ ...labels, result: r }, finished.result === r ? 1 : 0);
    }
    const live = running.find(
      (r) => r.repository === s.repository && r.command === s.command && r.kind === s.kind,
    );
    inProgress.set(labels, live ? 1 : 0);
    if (live) inProgressSeconds.set(labels, seconds(Math.max(0, now - live.startedAt)));
  }
  for (const c of catalog.runCounts()) {
    if (wanted && !wanted.has(c.repository)) continue;
    runsTotal.inc({ repository: c.repository, command: c.command, result: c.result }, c.count);
  }
  const incidents = catalog.openIncidents().filter((i) => !wanted || wanted.has(i.repository));
  const repos = new Set([
    ...(o.repositories ?? []),
    ...subjects.map((s) => s.repository),
    ...incidents.map((i) => i.repository),
  ]);
  for (const repository of repos) {
    for (const severity of ["warning", "critical"] as const) {
      openIncidents.set(
        { repository, severity },
        incidents.filter((i) => i.repository === repository && i.severity === severity).length,
      );
    }
  }
  for (const i of incidents) {
    incidentOpen.set({ repository: i.repository, rule: i.rule, subject: i.subject, severity: i.severity }, 1);
  }
  addRecoveryMetrics(catalog, [...repos], gauge, now);
  const failed = new Map<string, number>();
  for (const n of catalog.unsentNotifications(now - 86_400_000)) {
    if (n.status === "failed") failed.set(n.channel, (failed.get(n.channel) ?? 0) + 1);
  }
  for (const [channel, count] of failed) undelivered.set({ channel }, count);
  return registry;
}

type GaugeMaker = (name: string, help: string, labelNames: readonly "repository"[]) => Gauge<"repository">;

/** Point-in-time recovery, time to restore and offsite freshness, per repository. */
function addRecoveryMetrics(catalog: Catalog, repos: string[], gauge: GaugeMaker, now: number): void {
  const lag = gauge(
    "strongbox_binlog_archive_lag_seconds",
    "Seconds between the newest binlog event on the cluster and the newest archived one (last measuring pass)",
    ["repository"],
  );
  const gaps = gauge(
    "strongbox_binlog_archive_gaps",
    "Gaps in the binlog archive that no later backup bridges (point-in-time recovery cannot cross them)",
    ["repository"],
  );
  const lastEvent = gauge(
    "strongbox_binlog_archive_last_event_timestamp_seconds",
    "Event time of the newest archived transaction (Unix time)",
    ["repository"],
  );
  const windowStart = gauge(
    "strongbox_pitr_window_start_timestamp_seconds",
    "Earliest second a point-in-time restore can reach (Unix time)",
    ["repository"],
  );
  const windowEnd = gauge(
    "strongbox_pitr_window_end_timestamp_seconds",
    "Latest second a point-in-time restore can reach (Unix time)",
    ["repository"],
  );
  const rto = gauge(
    "strongbox_restore_test_rto_seconds",
    "Time to restore (RTO) measured by the last passing restore-test",
    ["repository"],
  );
  const copyAge = gauge(
    "strongbox_offsite_copy_age_seconds",
    "Seconds since the newest successful copy into this repository ended",
    ["repository"],
  );
  for (const repository of repos) {
    const labels = { repository };
    const p = pitrStatus(catalog, repository);
    if (p) {
      if (p.lagSeconds !== null) lag.set(labels, p.lagSeconds);
      gaps.set(labels, p.openGaps.length);
      if (p.archiveEnd?.at) lastEvent.set(labels, seconds(Date.parse(p.archiveEnd.at)));
      if (p.window) {
        windowStart.set(labels, seconds(Date.parse(p.window.from)));
        windowEnd.set(labels, seconds(Date.parse(p.window.to)));
      }
    }
    const test = catalog
      .history("restore-test", repository, 50, { result: "ok" })
      .find((r) => typeof r.details?.rtoSeconds === "number");
    if (test) rto.set(labels, test.details!.rtoSeconds as number);
    const copy = catalog.lastRun("copy", repository, { result: "ok" });
    if (copy) copyAge.set(labels, Math.max(0, seconds(now - (copy.endedAt ?? copy.startedAt))));
  }
}

/** The Prometheus text exposition of the catalog. */
export async function renderMetrics(catalog: Catalog, o: MetricsOptions = {}): Promise<string> {
  return buildRegistry(catalog, o).metrics();
}
