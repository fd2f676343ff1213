// What commands call: monitoring driven by MonitorSettings (config/monitoring.ts makes them). Monitoring must never be the
// reason a backup fails: a catalog that cannot be opened or an alert that cannot be delivered is
// a warning on stderr, and the command's own outcome passes through unchanged.

import { hostname } from "node:os";
import { oneLineError } from "../util/redact.ts";
import { type AlertReport, channelsFrom, formatAlert, processAlerts } from "./alerts.ts";
import { type Catalog, openCatalog } from "./catalog.ts";
import type { CatalogOptions, RunMeta } from "./catalog-types.ts";
import { type AlertChannel, withRetry } from "./channels.ts";
import { computeHealth, type HealthReport, unknownHealth } from "./health.ts";
import { type RunHandle, recordRun } from "./record-run.ts";
import { evaluateRules } from "./rules.ts";
import type { AlertSettings, MonitorSettings, RuleSettings } from "./settings.ts";

export type Warn = (message: string) => void;

const stderrWarn: Warn = (m) => process.stderr.write(`strongbox: warning: ${m}\n`);

export function openMonitorCatalog(settings: MonitorSettings, options: CatalogOptions = {}): Catalog {
  return openCatalog(settings.catalogPath, options);
}

export interface CheckOptions {
  repositories: readonly string[];
  rules: RuleSettings;
  channels: readonly AlertChannel[];
  attempts: number;
  backoffMs: number;
  now?: number;
  signal?: AbortSignal | undefined;
}

/** Marks dead runs, evaluates every rule, opens/closes incidents and delivers their alerts. */
export async function checkAndAlert(catalog: Catalog, o: CheckOptions): Promise<AlertReport> {
  catalog.markStaleRuns();
  const findings = evaluateRules(catalog, { repositories: o.repositories, rules: o.rules, now: o.now });
  return processAlerts(catalog, findings, {
    channels: o.channels,
    scope: o.repositories,
    attempts: o.attempts,
    backoffMs: o.backoffMs,
    signal: o.signal,
  });
}

/** checkAndAlert with the configured rules, repositories and channels (reads the secret files). */
export async function checkAndAlertConfigured(
  settings: MonitorSettings,
  catalog: Catalog,
  o: { signal?: AbortSignal; now?: number } = {},
): Promise<AlertReport> {
  const alerts: AlertSettings = await settings.alerts();
  return checkAndAlert(catalog, {
    repositories: settings.repositories,
    rules: settings.rules,
    channels: channelsFrom(alerts),
    attempts: alerts.attempts,
    backoffMs: alerts.backoffMs,
    signal: o.signal,
    now: o.now,
  });
}

export interface MonitoredOptions<T> {
  summarize?: (result: T) => { bytes?: number; details?: Record<string, unknown> };
  warn?: Warn;
  /** Limit for evaluating and delivering alerts after the run (default 2 min). */
  alertTimeoutMs?: number;
}

/**
 * Runs a command's work as a recorded run, then evaluates the rules and sends what changed.
 * Wrap the body of backup, verify, restore-test, copy and prune with it.
 */
export async function runMonitored<T>(
  settings: MonitorSettings,
  meta: RunMeta,
  fn: (run: RunHandle) => Promise<T> | T,
  o: MonitoredOptions<T> = {},
): Promise<T> {
  const warn = o.warn ?? stderrWarn;
  let catalog: Catalog | undefined;
  try {
    catalog = openMonitorCatalog(settings);
    catalog.markStaleRuns();
  } catch (e) {
    warn(`this run is not recorded: ${oneLineError(e)}`);
    catalog?.close();
    catalog = undefined;
  }
  if (!catalog)
    return fn({ id: undefined, bytes: undefined, details: undefined, node: undefined, kind: undefined });
  let handle: RunHandle | undefined;
  try {
    return await recordRun(
      catalog,
      meta,
      (run) => {
        handle = run;
        return fn(run);
      },
      {
        ...(o.summarize ? { summarize: o.summarize } : {}),
        onCatalogError: (e) => warn(`the run catalog could not be written: ${oneLineError(e)}`),
      },
    );
  } finally {
    // A discarded run (an idle poll) changed nothing worth judging.
    if (handle?.discard !== true) await alertAfterRun(settings, catalog, warn, o.alertTimeoutMs);
    catalog.close();
  }
}

async function alertAfterRun(settings: MonitorSettings, catalog: Catalog, warn: Warn, timeoutMs = 120_000) {
  try {
    const report = await checkAndAlertConfigured(settings, catalog, {
      signal: AbortSignal.timeout(timeoutMs),
    });
    for (const d of report.deliveries) {
      if (!d.ok) warn(`alert via ${d.channel} not delivered after ${d.attempts} attempt(s): ${d.error}`);
    }
  } catch (e) {
    warn(`alerts were not checked: ${oneLineError(e)}`);
  }
}

/** The `status` report; UNKNOWN (exit code 3) when the catalog cannot be read. */
export function statusOf(settings: MonitorSettings, o: { now?: number } = {}): HealthReport {
  let catalog: Catalog | undefined;
  try {
    catalog = openMonitorCatalog(settings);
    catalog.markStaleRuns();
    return computeHealth(catalog, {
      repositories: settings.repositories,
      rules: settings.rules,
      ...(o.now === undefined ? {} : { now: o.now }),
    });
  } catch (e) {
    return unknownHealth(e);
  } finally {
    catalog?.close();
  }
}

/** The /metrics body for the configured repositories. */
export async function metricsOf(settings: MonitorSettings): Promise<string> {
  const catalog = openMonitorCatalog(settings);
  try {
    catalog.markStaleRuns();
    // prom-client is loaded only where metrics are served, not on every backup's start-up.
    const { renderMetrics } = await import("./metrics.ts");
    return await renderMetrics(catalog, { repositories: settings.repositories });
  } finally {
    catalog.close();
  }
}

export interface TestDelivery {
  channel: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

/**
 * Sends a clearly marked test alert through every configured channel (for `alerts test`), with
 * the configured retries. Nothing is written to the catalog.
 */
export async function sendTestAlert(
  monitor: MonitorSettings,
  o: { signal?: AbortSignal } = {},
): Promise<TestDelivery[]> {
  const settings = await monitor.alerts();
  const now = Date.now();
  const message = formatAlert(
    {
      id: 0,
      rule: "test",
      repository: monitor.repositories[0] ?? "-",
      subject: "test",
      severity: "warning",
      message: `test alert from strongbox on ${hostname()}: if you read this, alerts reach you`,
      details: { test: true },
      openedAt: now,
      lastSeenAt: now,
      closedAt: null,
    },
    "open",
  );
  const out: TestDelivery[] = [];
  for (const channel of channelsFrom(settings)) {
    const r = await withRetry(() => channel.send(message, o.signal), {
      attempts: settings.attempts,
      backoffMs: settings.backoffMs,
      signal: o.signal,
    });
    out.push({
      channel: channel.name,
      ok: r.ok,
      attempts: r.attempts,
      ...(r.ok ? {} : { error: oneLineError(r.error) }),
    });
  }
  return out;
}
