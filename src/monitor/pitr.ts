// Point-in-time recovery as monitoring sees it: each `binlog archive` pass is a run whose details
// hold the archive's end, its lag behind the cluster, its gaps and the recoverable window. The
// rules here judge the newest passes; status, /metrics and the dashboard show the same numbers.
import { formatDuration } from "../util/duration.ts";
import type { Catalog } from "./catalog.ts";
import type { Run, Severity } from "./catalog-types.ts";

export const BINLOG_COMMAND = "binlog-archive";

/** What a pass records in its details (binlog archive, commands/binlog.ts). */
export interface PassDetails {
  node?: string;
  /** GTID range archived by this pass. */
  gtidFirst?: string | null;
  gtidLast?: string | null;
  files?: number;
  /** Gaps found by this pass. */
  gaps?: { after: string; before: string }[];
  /** The archive after the pass. */
  archiveEnd?: { gtid: string; at: string | null } | null;
  /** Gaps no later backup has bridged yet: recovery past them is impossible. */
  openGaps?: { after: string; before: string; archivedAt: string }[];
  window?: { from: string; to: string; backupId: string } | null;
  /** Seconds between the newest transaction on the cluster and the newest archived one. */
  lagSeconds?: number | null;
}

export interface PitrStatus {
  /** The newest pass, whatever its result. */
  lastPass: Run;
  lastSuccess: Run | undefined;
  window: { from: string; to: string; backupId: string } | null;
  archiveEnd: { gtid: string; at: string | null } | null;
  /** From the newest pass that measured it (a flushing one). */
  lagSeconds: number | null;
  lagMeasuredAt: number | null;
  openGaps: { after: string; before: string; archivedAt: string }[];
}

function detailsOf(run: Run): PassDetails {
  return (run.details ?? {}) as PassDetails;
}

/** The PITR state of a repository from its binlog archive passes; undefined when it has none. */
export function pitrStatus(catalog: Catalog, repository: string): PitrStatus | undefined {
  const recent = catalog.history(BINLOG_COMMAND, repository, 200).filter((r) => r.result !== "running");
  const lastPass = recent[0];
  if (!lastPass) return undefined;
  const withState = recent.find((r) => detailsOf(r).archiveEnd !== undefined);
  const measured = recent.find((r) => typeof detailsOf(r).lagSeconds === "number");
  const d = withState ? detailsOf(withState) : {};
  return {
    lastPass,
    lastSuccess: catalog.lastRun(BINLOG_COMMAND, repository, { result: "ok" }),
    window: d.window ?? null,
    archiveEnd: d.archiveEnd ?? null,
    lagSeconds: measured ? (detailsOf(measured).lagSeconds as number) : null,
    lagMeasuredAt: measured ? (measured.endedAt ?? measured.startedAt) : null,
    openGaps: d.openGaps ?? [],
  };
}

export interface PitrFinding {
  rule: "binlog-lag" | "binlog-gap";
  repository: string;
  subject: string;
  severity: Severity;
  message: string;
  details: Record<string, unknown>;
}

/**
 * binlog-lag: the measured lag passed the limit, or no pass succeeded for longer than the limit
 * (then the lag is unknown and may be anything). binlog-gap: transactions are on no node any more
 * and no backup taken since bridges them. Repositories without any pass are not judged.
 */
export function pitrFindings(
  catalog: Catalog,
  repository: string,
  lagMaxMs: number | undefined,
  now: number,
): PitrFinding[] {
  const s = pitrStatus(catalog, repository);
  if (!s) return [];
  const out: PitrFinding[] = [];
  const base = { repository, subject: BINLOG_COMMAND };
  if (lagMaxMs !== undefined) {
    const limit = formatDuration(lagMaxMs);
    // Never succeeded: the time counts from the first pass, as for a new repository's backups.
    const lastOkAt = s.lastSuccess
      ? (s.lastSuccess.endedAt ?? s.lastSuccess.startedAt)
      : catalog.firstRun(BINLOG_COMMAND, repository)!.startedAt;
    if (now - lastOkAt > lagMaxMs) {
      const since = `${formatDuration(now - lastOkAt)}${s.lastSuccess ? "" : " (none ever)"}`;
      out.push({
        ...base,
        rule: "binlog-lag",
        severity: "critical",
        message: `binlog archive of repository "${repository}": no successful pass for ${since}; the lag limit is ${limit}`,
        details: { lastSuccessRunId: s.lastSuccess?.id ?? null, lagMaxMs },
      });
    } else if (s.lagSeconds !== null && s.lagSeconds * 1000 > lagMaxMs) {
      out.push({
        ...base,
        rule: "binlog-lag",
        severity: "critical",
        message: `binlog archive of repository "${repository}" is ${formatDuration(s.lagSeconds * 1000)} behind the cluster (newest archived ${s.archiveEnd?.gtid ?? "-"}); the limit is ${limit}`,
        details: { lagSeconds: s.lagSeconds, lagMaxMs, archiveEnd: s.archiveEnd },
      });
    }
  }
  if (s.openGaps.length > 0) {
    const g = s.openGaps[s.openGaps.length - 1]!;
    out.push({
      ...base,
      rule: "binlog-gap",
      severity: "critical",
      message: `binlog archive of repository "${repository}" has a gap after ${g.after} up to ${g.before}: those transactions are on no node any more; take a full backup`,
      details: { gaps: s.openGaps },
    });
  }
  return out;
}
