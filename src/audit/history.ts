// What the run catalog says happened: copies to each offsite repository, verify and restore-test,
// and whether anyone would hear about a failure (alerts, schedule, the dashboard's exposure).
import { existsSync } from "node:fs";
import type { LoadedConfig } from "../config/load.ts";
import { catalogPathOf, monitoringConfigOf, ruleSettings } from "../config/monitoring.ts";
import type { Catalog } from "../monitor/catalog.ts";
import { openCatalog } from "../monitor/catalog.ts";
import type { Run } from "../monitor/catalog-types.ts";
import { parseDuration } from "../util/duration.ts";
import { isLoopbackBind } from "../util/loopback.ts";
import { offsiteRepositories } from "./repositories.ts";
import { type AuditFinding, ageText } from "./types.ts";

const DEFAULT_CHECK_AGE_MS = parseDuration("8d");

function newest(catalog: Catalog, command: string, repos: string[], ok: boolean): Run | undefined {
  let best: Run | undefined;
  for (const r of repos) {
    const run = catalog.lastRun(command, r, ok ? { result: "ok" } : {});
    if (run && run.result !== "running" && (!best || run.startedAt > best.startedAt)) best = run;
  }
  return best;
}

function lastFinished(catalog: Catalog, command: string, repos: string[]): Run | undefined {
  let best: Run | undefined;
  for (const r of repos) {
    for (const run of catalog.history(command, r, 5)) {
      if (run.result === "running") continue;
      if (!best || run.startedAt > best.startedAt) best = run;
      break;
    }
  }
  return best;
}

interface CheckSpec {
  command: "verify" | "restore-test";
  maxAgeMs: number;
  noRecord: AuditFinding["severity"];
  what: string;
  fix: string;
}

function checkFindings(
  catalog: Catalog | undefined,
  spec: CheckSpec,
  repos: string[],
  now: number,
  where: string,
): AuditFinding[] {
  const practice = "verification" as const;
  const ok = catalog ? newest(catalog, spec.command, repos, true) : undefined;
  const last = catalog ? lastFinished(catalog, spec.command, repos) : undefined;
  if (!ok) {
    return [
      {
        id: `${spec.command}-no-record`,
        severity: spec.noRecord,
        practice,
        title: `no record of a passing ${spec.command}: ${spec.what}`,
        evidence: catalog
          ? `the run catalog ${where} has no successful ${spec.command}${last ? ` (last one ${last.result}: ${last.error ?? ""})` : ""}`
          : `no run catalog at ${where}: no run history exists yet`,
        fix: spec.fix,
      },
    ];
  }
  const findings: AuditFinding[] = [];
  const age = now - (ok.endedAt ?? ok.startedAt);
  if (age > spec.maxAgeMs) {
    findings.push({
      id: `${spec.command}-stale`,
      severity: "medium",
      practice,
      title: `the last passing ${spec.command} is ${ageText(age)} old`,
      evidence: `repository ${ok.repository}, ${new Date(ok.startedAt).toISOString()}; limit ${ageText(spec.maxAgeMs)}`,
      fix: spec.fix,
    });
  }
  if (last && last.result !== "ok") {
    findings.push({
      id: `${spec.command}-failing`,
      severity: "high",
      practice,
      title: `the last ${spec.command} did not pass`,
      evidence: `repository ${last.repository}, ${new Date(last.startedAt).toISOString()}: ${last.result}${last.error ? ` — ${last.error}` : ""}`,
      fix: `look at the error (strongbox status), fix it and run strongbox ${spec.command} again`,
    });
  }
  return findings;
}

export function historyFindings(loaded: LoadedConfig, now = Date.now()): AuditFinding[] {
  const path = catalogPathOf(loaded);
  const catalog = existsSync(path) ? openCatalog(path) : undefined;
  try {
    const repos = loaded.config.repositories.map((r) => r.name);
    const rules = ruleSettings(loaded.config.monitoring);
    const findings: AuditFinding[] = [
      ...checkFindings(
        catalog,
        {
          command: "verify",
          maxAgeMs: rules.maxVerifyAgeMs ?? DEFAULT_CHECK_AGE_MS,
          noRecord: "medium",
          what: "sizes, hashes and signatures are not being checked",
          fix: "schedule strongbox verify (schedule.verify, or cron)",
        },
        repos,
        now,
        path,
      ),
      ...checkFindings(
        catalog,
        {
          command: "restore-test",
          maxAgeMs: rules.maxRestoreTestAgeMs ?? DEFAULT_CHECK_AGE_MS,
          noRecord: "high",
          what: "nobody knows whether the backups restore",
          fix: "schedule strongbox restore-test (schedule.restoreTest, or cron)",
        },
        repos,
        now,
        path,
      ),
    ];
    const copyLimit = rules.maxCopyAgeMs ?? rules.maxBackupAgeMs;
    for (const r of offsiteRepositories(loaded)) {
      const ok = catalog?.lastRun("copy", r.name, { result: "ok" });
      const last = catalog ? lastFinished(catalog, "copy", [r.name]) : undefined;
      if (!ok) {
        findings.push({
          id: "offsite-copy-no-record",
          severity: "medium",
          practice: "offsite",
          title: `no record of a copy to ${r.name}`,
          evidence: catalog
            ? `the run catalog has no successful copy to ${r.name}${last ? ` (last one ${last.result}: ${last.error ?? ""})` : ""}`
            : `no run catalog at ${path}: no copy history exists yet`,
          fix: `strongbox copy --to ${r.name}, and add it to backup.copyTo`,
          subject: r.name,
        });
        continue;
      }
      const age = now - (ok.endedAt ?? ok.startedAt);
      if (age > copyLimit) {
        findings.push({
          id: "offsite-copy-stale",
          severity: "medium",
          practice: "offsite",
          title: `the last copy to ${r.name} is ${ageText(age)} old`,
          evidence: `${new Date(ok.startedAt).toISOString()}; limit ${ageText(copyLimit)} (monitoring.rules.maxCopyAge, else maxBackupAge)`,
          fix: `check backup.copyTo and the copy job; strongbox copy --to ${r.name}`,
          subject: r.name,
        });
      }
      if (last && last.result !== "ok") {
        findings.push({
          id: "offsite-copy-failing",
          severity: "high",
          practice: "offsite",
          title: `the last copy to ${r.name} failed`,
          evidence: `${new Date(last.startedAt).toISOString()}: ${last.result}${last.error ? ` — ${last.error}` : ""}`,
          fix: `fix the error and run strongbox copy --to ${r.name}`,
          subject: r.name,
        });
      }
    }
    return findings;
  } finally {
    catalog?.close();
  }
}

export function monitoringFindings(loaded: LoadedConfig): AuditFinding[] {
  const findings: AuditFinding[] = [];
  const c = loaded.config;
  const alerts = monitoringConfigOf(c).alerts;
  if (!c.monitoring || (!alerts.webhook && !alerts.email)) {
    findings.push({
      id: "alerts-none",
      severity: "high",
      practice: "monitoring",
      title: "no alert channel: a failing or missing backup goes unnoticed",
      evidence: c.monitoring
        ? "monitoring.alerts has neither webhook nor email"
        : "the config has no monitoring section",
      fix: "configure monitoring.alerts.webhook or monitoring.alerts.email, then strongbox alert test",
    });
  } else if (
    alerts.webhook?.url.startsWith("http://") &&
    !isLoopbackBind(new URL(alerts.webhook.url).hostname)
  ) {
    findings.push({
      id: "alerts-webhook-plain-http",
      severity: "low",
      practice: "monitoring",
      title: "alerts (and the webhook token) are sent over plain HTTP",
      evidence: `monitoring.alerts.webhook.url: ${new URL(alerts.webhook.url).origin}/…`,
      fix: "use an https:// webhook URL",
    });
  }
  if (!c.schedule) {
    findings.push({
      id: "schedule-none",
      severity: "low",
      practice: "monitoring",
      title: "no schedule in the config",
      evidence: "the config has no schedule section for strongbox daemon",
      fix: "add schedule (full, incremental, verify, restoreTest, copy) and run strongbox daemon — or make sure cron/systemd timers run the commands",
    });
  }
  if (c.serve && !isLoopbackBind(c.serve.bind)) {
    findings.push({
      id: "dashboard-exposed",
      severity: "medium",
      practice: "monitoring",
      title: "the dashboard listens on a network address over plain HTTP",
      evidence: `serve.bind: ${c.serve.bind}, port ${c.serve.port}: its token crosses the network in clear`,
      fix: "bind it to 127.0.0.1 and put a TLS reverse proxy in front, or reach it through an SSH tunnel",
    });
  }
  return findings;
}
