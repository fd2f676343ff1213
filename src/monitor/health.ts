// The logic of `status`: per repository the last backup, verify, restore-test and copy with their
// ages, and one overall level with Nagios exit codes. The levels come from the same rules that
// send alerts (rules.ts), so `status` and the alerts never disagree:
//   CRITICAL (2): a failed or killed backup, verify or restore-test as the latest run of its
//                 command; no successful backup (or copy into the repository) within maxBackupAge.
//   WARNING  (1): no passing verify / restore-test / copy within its max age; a run unusually long
//                 (finished, or still going); a backup of unusual size; a failed copy or prune.
//   OK       (0): none of these.
//   UNKNOWN  (3): the catalog cannot be read (unknownHealth).
import { errorMessage } from "../errors.ts";
import { formatDuration } from "../util/duration.ts";
import type { Catalog } from "./catalog.ts";
import { RUN_COMMANDS, type Run, type Severity } from "./catalog-types.ts";
import { pitrStatus } from "./pitr.ts";
import { evaluateRules, type Finding, humanDuration } from "./rules.ts";
import type { RuleSettings } from "./settings.ts";

export type HealthLevel = "OK" | "WARNING" | "CRITICAL" | "UNKNOWN";

export const NAGIOS_EXIT_CODES: Readonly<Record<HealthLevel, 0 | 1 | 2 | 3>> = {
  OK: 0,
  WARNING: 1,
  CRITICAL: 2,
  UNKNOWN: 3,
};

const RANK: Record<HealthLevel, number> = { OK: 0, WARNING: 1, CRITICAL: 2, UNKNOWN: 3 };

function worst(levels: HealthLevel[]): HealthLevel {
  return levels.reduce<HealthLevel>((a, b) => (RANK[b] > RANK[a] ? b : a), "OK");
}

function levelOf(severity: Severity): HealthLevel {
  return severity === "critical" ? "CRITICAL" : "WARNING";
}

export interface RunSummary {
  id: number;
  command: string;
  kind: string | null;
  node: string | null;
  host: string;
  result: Run["result"];
  startedAt: string;
  endedAt: string | null;
  /** Seconds since it ended (or started, while running). */
  ageSeconds: number;
  durationSeconds: number | null;
  bytes: number | null;
  error: string | null;
}

export const CHECKED_COMMANDS = ["backup", "verify", "restore-test", "copy"] as const;
export type CheckedCommand = (typeof CHECKED_COMMANDS)[number];

export interface CheckStatus {
  command: CheckedCommand;
  level: HealthLevel;
  lastRun: RunSummary | null;
  lastSuccess: RunSummary | null;
  /** The configured age limit, null when the check is off. */
  maxAgeSeconds: number | null;
  problems: string[];
}

/** Point-in-time recovery of a repository, from its binlog archive passes. */
export interface PitrHealth {
  /** Earliest and latest second a point-in-time restore can reach (ISO), and the backup it starts from. */
  window: { from: string; to: string; backupId: string } | null;
  archiveEnd: { gtid: string; at: string | null } | null;
  lagSeconds: number | null;
  openGaps: { after: string; before: string; archivedAt: string }[];
  lastPass: RunSummary;
}

export interface RepositoryHealth {
  repository: string;
  level: HealthLevel;
  checks: Record<CheckedCommand, CheckStatus>;
  /** The newest finished run of each other recorded command (restore, prune, key-rotate, binlog-archive). */
  otherRuns: RunSummary[];
  /** null when the repository has no binlog archive passes. */
  pitr: PitrHealth | null;
  running: RunSummary[];
  problems: Finding[];
}

export interface HealthReport {
  level: HealthLevel;
  exitCode: 0 | 1 | 2 | 3;
  checkedAt: string;
  /** The Nagios plugin line: "STRONGBOX CRITICAL - …". */
  summary: string;
  repositories: RepositoryHealth[];
}

function summarize(run: Run, now: number): RunSummary {
  return {
    id: run.id,
    command: run.command,
    kind: run.kind,
    node: run.node,
    host: run.host,
    result: run.result,
    startedAt: new Date(run.startedAt).toISOString(),
    endedAt: run.endedAt === null ? null : new Date(run.endedAt).toISOString(),
    ageSeconds: Math.max(0, Math.round((now - (run.endedAt ?? run.startedAt)) / 1000)),
    durationSeconds: run.durationMs === null ? null : run.durationMs / 1000,
    bytes: run.bytes,
    error: run.error,
  };
}

function maxAgeMs(rules: RuleSettings, command: CheckedCommand): number | undefined {
  switch (command) {
    case "backup":
      return rules.maxBackupAgeMs;
    case "verify":
      return rules.maxVerifyAgeMs;
    case "restore-test":
      return rules.maxRestoreTestAgeMs;
    case "copy":
      return rules.maxCopyAgeMs;
  }
}

function commandOfSubject(subject: string): string {
  const slash = subject.indexOf("/");
  return slash < 0 ? subject : subject.slice(0, slash);
}

export interface HealthOptions {
  repositories: readonly string[];
  rules: RuleSettings;
  now?: number;
}

export function computeHealth(catalog: Catalog, o: HealthOptions): HealthReport {
  const now = o.now ?? catalog.now();
  const findings = evaluateRules(catalog, { repositories: o.repositories, rules: o.rules, now });
  const running = catalog.runningRuns();
  const repositories: RepositoryHealth[] = o.repositories.map((repository) => {
    const mine = findings.filter((f) => f.repository === repository);
    const checks = {} as Record<CheckedCommand, CheckStatus>;
    for (const command of CHECKED_COMMANDS) {
      const lastRun = catalog.history(command, repository, 50).find((r) => r.result !== "running");
      const lastSuccess = catalog.lastRun(command, repository, { result: "ok" });
      const problems = mine.filter((f) => commandOfSubject(f.subject) === command);
      const limit = maxAgeMs(o.rules, command);
      checks[command] = {
        command,
        level: worst(problems.map((p) => levelOf(p.severity))),
        lastRun: lastRun ? summarize(lastRun, now) : null,
        lastSuccess: lastSuccess ? summarize(lastSuccess, now) : null,
        maxAgeSeconds: limit === undefined ? null : limit / 1000,
        problems: problems.map((p) => p.message),
      };
    }
    const otherRuns = RUN_COMMANDS.filter((c) => !(CHECKED_COMMANDS as readonly string[]).includes(c))
      .map((c) => catalog.history(c, repository, 50).find((r) => r.result !== "running"))
      .filter((r) => r !== undefined)
      .map((r) => summarize(r, now));
    const p = pitrStatus(catalog, repository);
    return {
      repository,
      level: worst(mine.map((f) => levelOf(f.severity))),
      checks,
      otherRuns,
      pitr: p
        ? {
            window: p.window,
            archiveEnd: p.archiveEnd,
            lagSeconds: p.lagSeconds,
            openGaps: p.openGaps,
            lastPass: summarize(p.lastPass, now),
          }
        : null,
      running: running.filter((r) => r.repository === repository).map((r) => summarize(r, now)),
      problems: mine,
    };
  });
  const level = worst(repositories.map((r) => r.level));
  return {
    level,
    exitCode: NAGIOS_EXIT_CODES[level],
    checkedAt: new Date(now).toISOString(),
    summary: nagiosLine(level, repositories),
    repositories,
  };
}

function nagiosLine(level: HealthLevel, repos: RepositoryHealth[]): string {
  const problems = repos.flatMap((r) => r.problems);
  const ranked = [...problems].sort((a, b) => RANK[levelOf(b.severity)] - RANK[levelOf(a.severity)]);
  let text: string;
  if (ranked.length === 0) {
    text = `${repos.length} ${repos.length === 1 ? "repository" : "repositories"} healthy`;
  } else {
    text = ranked[0]!.message;
    if (ranked.length > 1) text += `; ${ranked.length - 1} more problem(s)`;
  }
  // Performance data: the age of the last successful backup per repository, for graphs in Nagios.
  const perf = repos
    .map((r) => {
      const s = r.checks.backup.lastSuccess;
      const crit = r.checks.backup.maxAgeSeconds;
      return s ? `'${r.repository}_backup_age'=${s.ageSeconds}s;;${crit ?? ""}` : undefined;
    })
    .filter((p) => p !== undefined);
  for (const r of repos) {
    if (r.pitr?.lagSeconds !== null && r.pitr?.lagSeconds !== undefined)
      perf.push(`'${r.repository}_binlog_lag'=${r.pitr.lagSeconds}s`);
  }
  return `STRONGBOX ${level} - ${text.replace(/\|/g, "/")}${perf.length ? ` | ${perf.join(" ")}` : ""}`;
}

/**
 * The report with findings made outside the catalog added (status checks each repository's
 * trust: untrusted manifests, missing backups, a tampered evidence log), levels recomputed.
 */
export function withFindings(report: HealthReport, extra: Finding[]): HealthReport {
  if (extra.length === 0) return report;
  const repositories = report.repositories.map((r) => {
    const mine = extra.filter((f) => f.repository === r.repository);
    const problems = [...r.problems, ...mine];
    return { ...r, problems, level: worst([r.level, ...mine.map((f) => levelOf(f.severity))]) };
  });
  const level = worst([report.level, ...repositories.map((r) => r.level)]);
  return {
    ...report,
    level,
    exitCode: NAGIOS_EXIT_CODES[level],
    summary: nagiosLine(level, repositories),
    repositories,
  };
}

/** For a catalog that cannot be opened or read: UNKNOWN, exit code 3. */
export function unknownHealth(error: unknown, now = Date.now()): HealthReport {
  return {
    level: "UNKNOWN",
    exitCode: 3,
    checkedAt: new Date(now).toISOString(),
    summary: `STRONGBOX UNKNOWN - ${errorMessage(error).replace(/\|/g, "/")}`,
    repositories: [],
  };
}

function describe(c: CheckStatus): string {
  const last = c.lastRun;
  if (!last) return "never run";
  const when = `${formatDuration(last.ageSeconds * 1000)} ago`;
  const what = [last.kind, last.node].filter(Boolean).join(", ");
  let line = `${last.result} ${when} (run ${last.id}${what ? `, ${what}` : ""}`;
  if (last.durationSeconds !== null) line += `, took ${humanDuration(last.durationSeconds * 1000)}`;
  line += ")";
  if (last.result !== "ok") {
    line += c.lastSuccess
      ? `; last success ${formatDuration(c.lastSuccess.ageSeconds * 1000)} ago`
      : "; never succeeded";
  }
  return line;
}

/** The recoverable window in one line, for `status` and `list`. */
export function pitrLine(p: Pick<PitrHealth, "window" | "lagSeconds" | "openGaps">): string {
  const w = p.window
    ? `point-in-time window ${p.window.from.replace(/\.\d+Z$/, "Z")} .. ${p.window.to.replace(/\.\d+Z$/, "Z")} (from backup ${p.window.backupId})`
    : "point-in-time window: none (no backup with an unbroken binlog archive after it)";
  const lag = p.lagSeconds === null ? "" : `; archive lag ${humanDuration(p.lagSeconds * 1000)}`;
  const gaps = p.openGaps.length ? `; ${p.openGaps.length} GAP(s) in the archive` : "";
  return `${w}${lag}${gaps}`;
}

/** The report for people: one block per repository. */
export function formatHealth(report: HealthReport): string {
  const lines = [report.summary, ""];
  for (const r of report.repositories) {
    lines.push(`repository ${r.repository}: ${r.level}`);
    for (const command of CHECKED_COMMANDS) {
      const c = r.checks[command];
      const mark = c.level === "OK" ? "  " : c.level === "WARNING" ? "! " : "!!";
      lines.push(`  ${mark} ${command.padEnd(13)}${describe(c)}`);
    }
    for (const run of r.otherRuns) {
      const mark = run.result === "ok" ? "  " : "! ";
      lines.push(
        `  ${mark} ${run.command.padEnd(14)} ${run.result} ${formatDuration(run.ageSeconds * 1000)} ago (run ${run.id}${run.kind ? `, ${run.kind}` : ""}${run.durationSeconds === null ? "" : `, took ${humanDuration(run.durationSeconds * 1000)}`})`,
      );
    }
    if (r.pitr) lines.push(`     ${pitrLine(r.pitr)}`);
    for (const run of r.running) {
      lines.push(
        `  ▶  ${run.command}${run.kind ? `/${run.kind}` : ""} running for ${formatDuration(run.ageSeconds * 1000)} (run ${run.id} on ${run.host})`,
      );
    }
    for (const p of r.problems) lines.push(`  ${p.severity.toUpperCase()}: ${p.message}`);
    lines.push("");
  }
  return lines.join("\n");
}
