// The alert rules, evaluated against the catalog. Every rule describes the *current* state ("the
// last backup failed", "the last full backup took unusually long"), so a problem is reported while
// it lasts and disappears when a later run is healthy; alerts.ts turns appearing and disappearing
// findings into one alert per incident and a recovery notice.
import { formatDuration } from "../util/duration.ts";
import type { Catalog } from "./catalog.ts";
import type { Run, Severity } from "./catalog-types.ts";
import { offsiteFindings } from "./offsite-rule.ts";
import { pitrFindings } from "./pitr.ts";
import type { LongRunSettings, RuleSettings } from "./settings.ts";
import { longRunThreshold, median, sizeAnomaly } from "./stats.ts";

export const RULES = [
  "run-failed",
  "backup-too-old",
  "verify-too-old",
  "restore-test-too-old",
  "copy-too-old",
  "offsite-missing",
  "long-run",
  "size-anomaly",
  "binlog-lag",
  "binlog-gap",
  "repository-integrity",
] as const;
export type RuleId = (typeof RULES)[number];

export interface Finding {
  rule: RuleId;
  repository: string;
  /** What within the repository: a command ("backup") or command/kind ("backup/full"). */
  subject: string;
  severity: Severity;
  /** One line for people. */
  message: string;
  details: Record<string, unknown>;
}

/** A failure of these is CRITICAL: the data may be missing or unrestorable. */
const CRITICAL_FAILURES = new Set(["backup", "verify", "restore-test"]);

export function subjectOf(command: string, kind: string | null): string {
  return kind ? `${command}/${kind}` : command;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function finishedAt(run: Run): number {
  return run.endedAt ?? run.startedAt;
}

/** Durations (ms) of the successful runs of a subject started before `before`, newest first. */
export function durationHistory(
  catalog: Catalog,
  run: Pick<Run, "command" | "repository" | "kind" | "startedAt" | "id">,
  window: number,
): number[] {
  // Read a little more than the window: rows after `run` (none, usually) are skipped.
  return catalog
    .history(run.command, run.repository, window + 10, { result: "ok", kind: run.kind })
    .filter((r) => r.id !== run.id && r.startedAt <= run.startedAt && r.durationMs !== null)
    .slice(0, window)
    .map((r) => r.durationMs!);
}

export interface WatchdogVerdict {
  /** True when the run has already taken unusually long, although it has not finished. */
  overdue: boolean;
  elapsedMs: number;
  /** Undefined while the history is shorter than minHistory. */
  thresholdMs: number | undefined;
  medianMs: number | undefined;
  /** Epoch ms at which the run becomes overdue (for a timer), when judged. */
  deadline: number | undefined;
  historyCount: number;
}

/**
 * The long-run watchdog: judges a run that is still going against the durations of its own past
 * successful runs (same command, repository and kind). The daemon calls it on a timer, or sets a
 * timer for `deadline`.
 */
export function watchRun(
  run: Pick<Run, "startedAt">,
  historyMs: readonly number[],
  settings: LongRunSettings,
  now: number,
): WatchdogVerdict {
  const t = longRunThreshold(historyMs, {
    k: settings.k,
    minHistory: settings.minHistory,
    minRelativeSpread: settings.minRelativeSpread,
    minSpread: settings.minSpreadMs,
  });
  const elapsedMs = Math.max(0, now - run.startedAt);
  return {
    overdue: t !== undefined && elapsedMs > t.threshold,
    elapsedMs,
    thresholdMs: t?.threshold,
    medianMs: t?.median,
    deadline: t === undefined ? undefined : run.startedAt + Math.ceil(t.threshold),
    historyCount: historyMs.length,
  };
}

/** watchRun with the history read from the catalog. */
export function watchRunInCatalog(
  catalog: Catalog,
  run: Run,
  settings: LongRunSettings,
  now = catalog.now(),
): WatchdogVerdict {
  return watchRun(run, durationHistory(catalog, run, settings.window), settings, now);
}

function failureFindings(catalog: Catalog, repository: string, commands: string[]): Finding[] {
  const out: Finding[] = [];
  for (const command of commands) {
    // The newest run that has ended; an "aborted" run (a signal, an operator) is not a failure,
    // but it is no success either, so the age rules still notice when runs keep being aborted.
    const last = catalog.history(command, repository, 50).find((r) => r.result !== "running");
    if (!last || (last.result !== "failed" && last.result !== "killed")) continue;
    const what = last.result === "killed" ? "was killed" : "failed";
    out.push({
      rule: "run-failed",
      repository,
      subject: command,
      severity: CRITICAL_FAILURES.has(command) ? "critical" : "warning",
      message:
        `${command}${last.kind ? ` (${last.kind})` : ""} of repository "${repository}" ${what}` +
        `${last.node ? ` on ${last.node}` : ""} at ${iso(last.startedAt)}: ${last.error ?? last.result}`,
      details: { runId: last.id, result: last.result, error: last.error, node: last.node, kind: last.kind },
    });
  }
  return out;
}

function newestSuccess(catalog: Catalog, repository: string, commands: string[]): Run | undefined {
  let best: Run | undefined;
  for (const c of commands) {
    const r = catalog.lastRun(c, repository, { result: "ok" });
    if (r && (!best || finishedAt(r) > finishedAt(best))) best = r;
  }
  return best;
}

function oldestRun(catalog: Catalog, repository: string, command: string, okOnly: boolean): Run | undefined {
  return catalog.firstRun(command, repository, okOnly ? { result: "ok" } : {});
}

/** Durations for messages: milliseconds matter for short runs, not for long ones. */
export function humanDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)}s`;
  return formatDuration(ms);
}

export function humanBytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return i === 0 ? `${n} B` : `${v.toFixed(1)} ${units[i]}`;
}

interface AgeCheck {
  rule: RuleId;
  label: string;
  commands: string[];
  maxAgeMs: number;
  severity: Severity;
  /** When nothing ever succeeded: the time from which the age counts, or undefined for "not yet due". */
  graceFrom: () => number | undefined;
  /** Whether a repository with no history at all is already a problem. */
  requiredFromStart: boolean;
}

function ageFindings(catalog: Catalog, repository: string, rules: RuleSettings, now: number): Finding[] {
  const firstBackup = () => {
    const b = [oldestRun(catalog, repository, "backup", true), oldestRun(catalog, repository, "copy", true)]
      .filter((r) => r !== undefined)
      .map(finishedAt);
    return b.length ? Math.min(...b) : undefined;
  };
  const checks: AgeCheck[] = [
    {
      rule: "backup-too-old",
      label: "backup",
      commands: ["backup", "copy"],
      maxAgeMs: rules.maxBackupAgeMs,
      severity: "critical",
      graceFrom: () => catalog.firstRunAt(repository),
      requiredFromStart: true,
    },
  ];
  if (rules.maxVerifyAgeMs !== undefined) {
    checks.push({
      rule: "verify-too-old",
      label: "verify",
      commands: ["verify"],
      maxAgeMs: rules.maxVerifyAgeMs,
      severity: "warning",
      graceFrom: firstBackup,
      requiredFromStart: false,
    });
  }
  if (rules.maxRestoreTestAgeMs !== undefined) {
    checks.push({
      rule: "restore-test-too-old",
      label: "restore-test",
      commands: ["restore-test"],
      maxAgeMs: rules.maxRestoreTestAgeMs,
      severity: "warning",
      graceFrom: firstBackup,
      requiredFromStart: false,
    });
  }
  if (rules.maxCopyAgeMs !== undefined) {
    checks.push({
      rule: "copy-too-old",
      label: "copy",
      commands: ["copy"],
      maxAgeMs: rules.maxCopyAgeMs,
      severity: "warning",
      // Only repositories that receive copies are expected to keep receiving them.
      graceFrom: () => oldestRun(catalog, repository, "copy", false)?.startedAt,
      requiredFromStart: false,
    });
  }
  const out: Finding[] = [];
  for (const c of checks) {
    const last = newestSuccess(catalog, repository, c.commands);
    const subject = c.commands[0]!;
    const base = { rule: c.rule, repository, subject, severity: c.severity };
    const limit = formatDuration(c.maxAgeMs);
    if (last) {
      const age = now - finishedAt(last);
      if (age > c.maxAgeMs) {
        out.push({
          ...base,
          message: `last successful ${c.label} of repository "${repository}" finished ${formatDuration(age)} ago (at ${iso(finishedAt(last))}); the limit is ${limit}`,
          details: {
            lastSuccessRunId: last.id,
            lastSuccessAt: iso(finishedAt(last)),
            ageMs: age,
            maxAgeMs: c.maxAgeMs,
          },
        });
      }
      continue;
    }
    const from = c.graceFrom();
    if (from === undefined) {
      if (c.requiredFromStart) {
        out.push({
          ...base,
          message: `no ${c.label} of repository "${repository}" has been recorded`,
          details: { lastSuccessRunId: null, maxAgeMs: c.maxAgeMs },
        });
      }
      continue;
    }
    if (now - from > c.maxAgeMs) {
      out.push({
        ...base,
        message: `no successful ${c.label} of repository "${repository}" since ${iso(from)} (${formatDuration(now - from)}); the limit is ${limit}`,
        details: { lastSuccessRunId: null, since: iso(from), ageMs: now - from, maxAgeMs: c.maxAgeMs },
      });
    }
  }
  return out;
}

function longRunFindings(
  catalog: Catalog,
  repository: string,
  subjects: { command: string; kind: string | null }[],
  settings: LongRunSettings,
  now: number,
): Finding[] {
  const out: Finding[] = [];
  for (const s of subjects) {
    // The newest run that is going or went well: a failure in between neither proves nor clears
    // slowness, so a long-run incident stays open until a run of normal length.
    const latest = catalog
      .history(s.command, repository, 50, { kind: s.kind })
      .find((r) => r.result === "ok" || r.result === "running");
    if (!latest) continue;
    const history = durationHistory(catalog, latest, settings.window);
    const running = latest.result === "running";
    const v = watchRun(
      latest,
      history,
      settings,
      running ? now : latest.startedAt + (latest.durationMs ?? 0),
    );
    if (!v.overdue) continue;
    const subject = subjectOf(s.command, s.kind);
    const usual = `usually ${humanDuration(v.medianMs!)}, limit ${humanDuration(v.thresholdMs!)} from the last ${history.length} successful runs`;
    out.push({
      rule: "long-run",
      repository,
      subject,
      severity: "warning",
      message: running
        ? `${subject} of repository "${repository}" (run ${latest.id}) is still running after ${humanDuration(v.elapsedMs)}; ${usual}`
        : `${subject} of repository "${repository}" (run ${latest.id}) took ${humanDuration(v.elapsedMs)}; ${usual}`,
      details: {
        runId: latest.id,
        running,
        durationMs: v.elapsedMs,
        medianMs: v.medianMs,
        thresholdMs: v.thresholdMs,
        historyCount: history.length,
      },
    });
  }
  return out;
}

function sizeFindings(
  catalog: Catalog,
  repository: string,
  kinds: (string | null)[],
  rules: RuleSettings,
): Finding[] {
  const out: Finding[] = [];
  const o = rules.size;
  for (const kind of kinds) {
    const ok = catalog
      .history("backup", repository, o.window + 1, { result: "ok", kind })
      .filter((r) => r.bytes !== null);
    const [latest, ...before] = ok;
    if (!latest) continue;
    const anomaly = sizeAnomaly(
      before.map((r) => r.bytes!),
      latest.bytes!,
      o,
    );
    // An incremental holds what changed since its base: a small one is a quiet day, not a problem.
    if (!anomaly || (anomaly === "small" && kind === "incremental")) continue;
    const usual = median(before.map((r) => r.bytes!));
    const subject = subjectOf("backup", kind);
    out.push({
      rule: "size-anomaly",
      repository,
      subject,
      severity: "warning",
      message:
        `${subject} of repository "${repository}" (run ${latest.id}) is unusually ${anomaly}: ` +
        `${humanBytes(latest.bytes!)}, usually about ${humanBytes(usual)} (limits ${o.lowFactor}× to ${o.highFactor}× the median of ${before.length})`,
      details: {
        runId: latest.id,
        bytes: latest.bytes,
        medianBytes: usual,
        anomaly,
        historyCount: before.length,
      },
    });
  }
  return out;
}

export interface EvaluateOptions {
  /** The repositories to judge (the configured ones). */
  repositories: readonly string[];
  rules: RuleSettings;
  /** Epoch ms; defaults to the catalog's clock. */
  now?: number;
}

/** Every current problem of the given repositories. */
export function evaluateRules(catalog: Catalog, o: EvaluateOptions): Finding[] {
  const now = o.now ?? catalog.now();
  const subjects = catalog.subjects();
  const out: Finding[] = [];
  for (const repository of o.repositories) {
    const mine = subjects.filter((s) => s.repository === repository);
    const commands = [...new Set(mine.map((s) => s.command))];
    out.push(...failureFindings(catalog, repository, commands));
    if (!o.rules.ageRepositories || o.rules.ageRepositories.includes(repository)) {
      out.push(...ageFindings(catalog, repository, o.rules, now));
      out.push(...offsiteFindings(catalog, repository, o.rules, now));
    }
    out.push(...longRunFindings(catalog, repository, mine, o.rules.longRun, now));
    out.push(
      ...sizeFindings(
        catalog,
        repository,
        mine.filter((s) => s.command === "backup").map((s) => s.kind),
        o.rules,
      ),
    );
    out.push(...pitrFindings(catalog, repository, o.rules.binlogLagMaxMs, now));
  }
  return out;
}

export function findingKey(f: { rule: string; repository: string; subject: string }): string {
  return `${f.rule}\u0000${f.repository}\u0000${f.subject}`;
}
