// Point-in-time recovery, the planning: which backup to start from, which archived files carry the
// transactions after it, and where a time or GTID target stops the replay.
import { StrongboxError } from "../errors.ts";
import { formatGtid, type Gtid, gtidInList, parseGtid } from "../mariadb/gtid.ts";
import type { BinlogEntry } from "../repository/binlog-index.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { GtidEvent } from "./scan.ts";

export interface PointTarget {
  toTime?: Date | undefined;
  toGtid?: string | undefined;
}

export function checkTarget(t: PointTarget): void {
  if ((t.toTime === undefined) === (t.toGtid === undefined)) {
    throw new StrongboxError("PITR_TARGET", "give exactly one of --to-time and --to-gtid");
  }
  if (t.toTime && Number.isNaN(t.toTime.getTime())) {
    throw new StrongboxError("PITR_TARGET", "--to-time is not a valid time", {
      hint: 'use ISO 8601 with a zone, e.g. "2026-11-26T15:01:00Z"',
    });
  }
  if (t.toGtid) parseGtid(t.toGtid);
}

/**
 * The newest physical backup whose data is entirely before the target: finished at or before
 * --to-time, or with a GTID at or before --to-gtid (same domain). Throws when there is none.
 */
export function chooseBackupFor(manifests: Manifest[], target: PointTarget): Manifest {
  checkTarget(target);
  const g = target.toGtid ? parseGtid(target.toGtid) : undefined;
  const fits = manifests.filter((m) => {
    if (m.type === "logical" || !m.gtid) return false;
    if (target.toTime) return Date.parse(m.finishedAt) <= target.toTime.getTime();
    const mg = gtidInList(m.gtid, g!.domain);
    return mg !== undefined && mg.seq <= g!.seq;
  });
  fits.sort((a, b) => Date.parse(b.finishedAt) - Date.parse(a.finishedAt));
  const best = fits[0];
  if (!best) {
    throw new StrongboxError(
      "PITR_NO_BACKUP",
      `no physical backup with a GTID position before ${target.toTime?.toISOString() ?? target.toGtid}`,
      { hint: "point-in-time recovery starts from a full or incremental backup taken before the target" },
    );
  }
  return best;
}

export interface PlannedFile {
  entry: BinlogEntry;
  first: number;
  last: number;
}

/**
 * Chooses the archived files that carry the transactions after `fromSeq`, by GTID, in order.
 * Stops at the target (GTID, or the first file reaching the target time) or at the end of the
 * archive; throws PITR_GAP when a transaction in between is in no archived file.
 */
export function planReplay(
  entries: BinlogEntry[],
  domain: number,
  fromSeq: number,
  target: { stopSeq?: number; stopAtMs?: number },
): PlannedFile[] {
  const files: PlannedFile[] = entries
    .filter((e) => e.kind === "file" && e.domain === domain && e.gtidFirst && e.gtidLast)
    .map((e) => ({ entry: e, first: parseGtid(e.gtidFirst!).seq, last: parseGtid(e.gtidLast!).seq }));
  const chosen: PlannedFile[] = [];
  let need = fromSeq + 1;
  for (;;) {
    if (target.stopSeq !== undefined && need > target.stopSeq) break;
    let pick: PlannedFile | undefined;
    for (const f of files) {
      if (f.first <= need && need <= f.last && (!pick || f.last > pick.last)) pick = f;
    }
    if (!pick) {
      const later = files.filter((f) => f.first > need).sort((a, b) => a.first - b.first)[0];
      if (later) {
        throw new StrongboxError(
          "PITR_GAP",
          `no archived binlog holds transaction ${domain}-*-${need} (the next archived one is ${later.entry.gtidFirst}): recovery cannot pass this point`,
          {
            hint: "choose a target before it, or a backup taken after it",
            details: { missingSeq: need, next: later.entry.gtidFirst },
          },
        );
      }
      break;
    }
    chosen.push(pick);
    need = pick.last + 1;
    if (
      target.stopAtMs !== undefined &&
      pick.entry.lastEventAt &&
      Date.parse(pick.entry.lastEventAt) >= target.stopAtMs
    ) {
      break;
    }
  }
  return chosen;
}

/**
 * Until when the archive is known complete (epoch ms), when `plan` runs to its end: the newest
 * archivedAt of any file or skipped entry (each was closed by a flush just before, or is a
 * checkpoint of the streaming archiver), or a streamed segment's last event, unless a gap was
 * recorded after the plan's end. 0 when it is not known.
 */
export function archiveCompleteAt(
  entries: BinlogEntry[],
  domain: number,
  plan: PlannedFile[],
  fromSeq: number,
): number {
  const planEnd = plan.length > 0 ? plan[plan.length - 1]!.last : fromSeq;
  let end = 0;
  let at = 0;
  for (const e of entries) {
    if (e.domain !== domain) continue;
    if (e.kind === "gap") {
      if (e.gap && parseGtid(e.gap.after).seq >= planEnd) return 0;
      continue;
    }
    if (e.gtidLast) end = Math.max(end, parseGtid(e.gtidLast).seq);
    // A streamed segment proves nothing after its last event (transactions may have been in
    // flight when it was sealed); a checkpoint or a flushed file proves up to archivedAt.
    const proven = e.streamed ? (e.lastEventAt ? Date.parse(e.lastEventAt) : 0) : Date.parse(e.archivedAt);
    at = Math.max(at, proven);
  }
  return planEnd >= end ? at : 0;
}

export interface ReplayStop {
  /** The last transaction to apply; undefined when none is after the backup. */
  stop: Gtid | undefined;
  /** Its event time (epoch ms). */
  lastAt: number | null;
  /** Whether the archive is proven to reach the target. */
  reached: boolean;
}

/** The last transaction before the target among the fetched files' events, and proof of coverage. */
export function findStop(
  files: { events: GtidEvent[] }[],
  from: Gtid,
  target: { stopGtid?: Gtid | undefined; stopAtMs?: number | undefined },
): ReplayStop {
  let stop: Gtid | undefined;
  let seen = from.seq;
  let lastAt: number | null = null;
  for (const l of files) {
    for (const ev of l.events) {
      if (ev.gtid.seq <= seen) continue;
      if (target.stopAtMs !== undefined && ev.at >= target.stopAtMs) return { stop, lastAt, reached: true };
      if (target.stopGtid && ev.gtid.seq > target.stopGtid.seq) return { stop, lastAt, reached: true };
      stop = ev.gtid;
      lastAt = ev.at;
      seen = ev.gtid.seq;
      if (target.stopGtid && ev.gtid.seq === target.stopGtid.seq) return { stop, lastAt, reached: true };
    }
  }
  return { stop, lastAt, reached: false };
}

export function describeEnd(r: ReplayStop, from: Gtid): string {
  return r.stop ? formatGtid(r.stop) : formatGtid(from);
}
