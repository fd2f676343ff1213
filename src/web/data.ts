// What the dashboard and the JSON API show, read from the run catalog. The catalog is opened per
// request (SQLite in WAL mode: cheap, and a backup writing at the same time never blocks us).
import { UsageError } from "../errors.ts";
import type { Incident, Run, RunResult } from "../monitor/catalog-types.ts";
import { RUN_RESULTS } from "../monitor/catalog-types.ts";
import type { HealthReport } from "../monitor/health.ts";
import { openMonitorCatalog, statusOf } from "../monitor/monitor.ts";
import { BINLOG_COMMAND } from "../monitor/pitr.ts";
import type { MonitorSettings } from "../monitor/settings.ts";

export const MAX_RUNS = 5000;
export const DEFAULT_DAYS = 90;

export interface RunQuery {
  since?: number;
  limit?: number;
  command?: string;
  repository?: string;
  result?: RunResult;
}

/** Parses ?since= (ISO date or epoch milliseconds) &limit= &command= &repository= &result=. */
export function parseRunQuery(params: URLSearchParams): RunQuery {
  const q: RunQuery = {};
  const since = params.get("since");
  if (since !== null && since !== "") {
    const n = /^\d+$/.test(since) ? Number(since) : Date.parse(since);
    if (!Number.isFinite(n))
      throw new UsageError(`since must be an ISO date or epoch milliseconds (got "${since}")`);
    q.since = n;
  }
  const limit = params.get("limit");
  if (limit !== null && limit !== "") {
    const n = Number(limit);
    if (!Number.isInteger(n) || n < 1 || n > MAX_RUNS)
      throw new UsageError(`limit must be a whole number from 1 to ${MAX_RUNS} (got "${limit}")`);
    q.limit = n;
  }
  for (const key of ["command", "repository"] as const) {
    const v = params.get(key);
    if (v) q[key] = v;
  }
  const result = params.get("result");
  if (result) {
    if (!(RUN_RESULTS as readonly string[]).includes(result))
      throw new UsageError(`result must be one of ${RUN_RESULTS.join(", ")} (got "${result}")`);
    q.result = result as RunResult;
  }
  return q;
}

export function runsOf(monitor: MonitorSettings, q: RunQuery): Run[] {
  const catalog = openMonitorCatalog(monitor);
  try {
    return catalog.runs({ ...q, limit: q.limit ?? 500 });
  } finally {
    catalog.close();
  }
}

export function incidentsOf(
  monitor: MonitorSettings,
  q: { since?: number; limit?: number } = {},
): Incident[] {
  const catalog = openMonitorCatalog(monitor);
  try {
    return catalog.incidents({ limit: 200, ...q });
  } finally {
    catalog.close();
  }
}

/** Binlog archive passes shown at most (one every few minutes would crowd out everything else). */
export const MAX_BINLOG_PASSES = 300;

/** The runs of the window, oldest first: every other run, and the newest binlog archive passes. */
function windowRuns(monitor: MonitorSettings, since: number): Run[] {
  const catalog = openMonitorCatalog(monitor);
  try {
    const passes = catalog.runs({ since, limit: MAX_BINLOG_PASSES, command: BINLOG_COMMAND });
    const others = catalog.runs({ since, limit: MAX_RUNS, excludeCommand: BINLOG_COMMAND });
    return [...passes, ...others].sort((a, b) => a.startedAt - b.startedAt || a.id - b.id);
  } finally {
    catalog.close();
  }
}

export interface DashboardData {
  generatedAt: string;
  /** Start of the window shown (epoch ms). */
  since: number;
  status: HealthReport;
  /** Runs in the window, oldest first. */
  runs: Run[];
  incidents: Incident[];
  /** Set when the catalog could not be read. */
  error?: string;
}

export function dashboardData(monitor: MonitorSettings, now = Date.now()): DashboardData {
  const since = now - DEFAULT_DAYS * 86_400_000;
  const status = statusOf(monitor, { now });
  try {
    return {
      generatedAt: new Date(now).toISOString(),
      since,
      status,
      runs: windowRuns(monitor, since),
      incidents: incidentsOf(monitor, { since }),
    };
  } catch (e) {
    return {
      generatedAt: new Date(now).toISOString(),
      since,
      status,
      runs: [],
      incidents: [],
      error: e instanceof Error ? e.message : String(e),
    };
  }
}
