// Point-in-time recovery: apply archived binlogs on top of a restored, prepared data directory.
//
// The backup's manifest.gtid says which transactions the data already holds. Archived files are
// chained by GTID from there (files of different nodes may overlap: each file is replayed with
// --start-position=<last applied GTID>, which is exclusive, so nothing is applied twice) up to the
// target: a GTID (inclusive) or a time. A time target follows mariadb-binlog's --stop-datetime
// rule with the binlog's one-second resolution: replay stops before the first transaction whose
// event time is at or after T rounded down to the second. Planning is in plan.ts, the per-file
// work in apply.ts; this file runs the steps in order.

import { join } from "node:path";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import { writeGrastate } from "../mariadb/grastate.ts";
import { formatGtid, type Gtid, gtidInList, parseGtid } from "../mariadb/gtid.ts";
import { startScratchServer } from "../mariadb/scratch.ts";
import { type BinlogEntry, readTrustedIndex } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { applyFile, fetchDecrypted } from "./apply.ts";
import {
  archiveCompleteAt,
  checkTarget,
  describeEnd,
  findStop,
  type PlannedFile,
  type PointTarget,
  planReplay,
} from "./plan.ts";
import { type GtidEvent, scanBinlogFile } from "./scan.ts";

export interface RestoreToPointOptions {
  repo: Repository;
  identities: AgeIdentity[];
  /** The key the index entries must be signed with. */
  trustedPublicKey: string | readonly string[];
  /** A restored and prepared data directory (restorePhysical). */
  targetDir: string;
  /** The GTID position of the restored backup (manifest.gtid, e.g. "1-1-194"). */
  fromGtid: string;
  toTime?: Date | undefined;
  toGtid?: string | undefined;
  /** Where the decrypted binlogs and the scratch server's files go (default: the system temp dir). */
  workDir?: string | undefined;
  bufferPool?: string | undefined;
  mariadbBinlog?: string | undefined;
  mariadb?: string | undefined;
  log?: (message: string) => void;
  signal?: AbortSignal | undefined;
}

/** What the archive is asked before a restore: where the backup ends and the target. */
export type ArchiveQuestion = Pick<
  RestoreToPointOptions,
  "repo" | "trustedPublicKey" | "fromGtid" | "toTime" | "toGtid"
>;

export interface RestoreToPointResult {
  targetDir: string;
  fromGtid: string;
  /** The last transaction applied (fromGtid when nothing was). */
  lastGtid: string;
  lastEventAt: string | null;
  transactions: number;
  files: { node: string; file: string; from: string; to: string }[];
  /** Why replay stopped: the target was reached (time or GTID). */
  stoppedBy: "time" | "gtid";
}

interface Start {
  entries: BinlogEntry[];
  domain: number;
  from: Gtid;
  stopGtid: Gtid | undefined;
  stopAtMs: number | undefined;
}

interface FetchedFile {
  f: PlannedFile;
  path: string;
  events: GtidEvent[];
}

/** The trusted index, the cluster's GTID domain, where the backup's data ends and the target. */
async function startingPoint(o: ArchiveQuestion): Promise<Start> {
  const entries = await readTrustedIndex(o.repo, o.trustedPublicKey);
  const domain = entries.find((e) => e.kind === "file")?.domain;
  if (domain === undefined) {
    throw new StrongboxError("PITR_NO_BINLOGS", `repository ${o.repo.name} has no archived binlogs`, {
      hint: "run `strongbox binlog archive` (or --follow) on the backup host",
    });
  }
  const from = gtidInList(o.fromGtid, domain);
  if (!from) {
    throw new StrongboxError(
      "PITR_NO_START",
      `the backup's GTID position "${o.fromGtid}" has nothing for domain ${domain}`,
    );
  }
  const stopGtid = o.toGtid ? parseGtid(o.toGtid) : undefined;
  if (stopGtid && stopGtid.domain !== domain) {
    throw new StrongboxError(
      "PITR_TARGET",
      `--to-gtid ${o.toGtid} is not in the cluster's GTID domain ${domain}`,
    );
  }
  if (stopGtid && stopGtid.seq < from.seq) {
    throw new StrongboxError(
      "PITR_TARGET",
      `--to-gtid ${o.toGtid} is before the backup (${formatGtid(from)})`,
      { hint: "choose an older backup (chooseBackupFor)" },
    );
  }
  // Header times have whole seconds: stop at the first transaction at or after T's second.
  const stopAtMs = o.toTime ? Math.floor(o.toTime.getTime() / 1000) * 1000 : undefined;
  return { entries, domain, from, stopGtid, stopAtMs };
}

/** Decrypts (hash-checked) and reads every planned file: event times decide where a time target cuts. */
async function fetchAll(
  o: RestoreToPointOptions,
  plan: PlannedFile[],
  domain: number,
  dir: string,
): Promise<FetchedFile[]> {
  const log = o.log ?? (() => {});
  const local: FetchedFile[] = [];
  for (const [i, f] of plan.entries()) {
    const path = join(dir, `${String(i).padStart(4, "0")}-${f.entry.file}`);
    log(`fetching ${f.entry.node}/${f.entry.file} (${f.entry.gtidFirst} … ${f.entry.gtidLast})`);
    await fetchDecrypted(o.repo, f.entry, o.identities, path, o.signal);
    const scan = await scanBinlogFile(path, domain, { mariadbBinlog: o.mariadbBinlog, signal: o.signal });
    local.push({ f, path, events: scan.events });
  }
  return local;
}

/** Replays the fetched files from `start` (exclusive) to `end` (inclusive) on a scratch server. */
async function applyAll(
  o: RestoreToPointOptions,
  local: FetchedFile[],
  start: Gtid,
  end: Gtid,
  serverDir: string,
): Promise<{ files: RestoreToPointResult["files"]; transactions: number }> {
  const log = o.log ?? (() => {});
  const files: RestoreToPointResult["files"] = [];
  let transactions = 0;
  const server = await startScratchServer(o.targetDir, serverDir, {
    bufferPool: o.bufferPool,
    signal: o.signal,
  });
  try {
    let applied = start;
    for (const l of local) {
      const todo = l.events.filter((e) => e.gtid.seq > applied.seq && e.gtid.seq <= end.seq);
      if (todo.length === 0) continue;
      const lastHere = todo[todo.length - 1]!.gtid;
      const args = [`--start-position=${formatGtid(applied)}`];
      if (lastHere.seq === end.seq && l.events[l.events.length - 1]!.gtid.seq > end.seq) {
        args.push(`--stop-position=${formatGtid(end)}`);
      }
      log(
        `applying ${l.f.entry.node}/${l.f.entry.file}: ${formatGtid(todo[0]!.gtid)} … ${formatGtid(lastHere)}`,
      );
      await applyFile(l.path, args, server.socket, o);
      files.push({
        node: l.f.entry.node,
        file: l.f.entry.file,
        from: formatGtid(todo[0]!.gtid),
        to: formatGtid(lastHere),
      });
      transactions += todo.length;
      applied = lastHere;
    }
  } finally {
    await server.stop();
  }
  return { files, transactions };
}

function notCovered(t: PointTarget, end: string, lastAt: number | null): StrongboxError {
  return new StrongboxError(
    "PITR_NOT_COVERED",
    `the binlog archive ends at ${end}${lastAt ? ` (${new Date(lastAt).toISOString()})` : ""}, before the target ${t.toGtid ?? t.toTime?.toISOString()}`,
    {
      hint: "run `strongbox binlog archive` (it flushes and archives the open binlog) and restore again",
      details: { archiveEnd: end },
    },
  );
}

/**
 * Whether the archive can reach the target from the backup, from the signed index alone (nothing
 * fetched), so that a point-in-time restore the archive cannot serve fails in seconds, not after
 * restoring and preparing the backup. It asks what restoreToPoint asks of the events (an event
 * at or after the target, or an archive complete past it), from the index entries' last event
 * times. Throws what restoreToPoint would (PITR_NO_BINLOGS, PITR_GAP, PITR_NOT_COVERED, PITR_TARGET).
 */
export async function checkRecoverable(o: ArchiveQuestion): Promise<void> {
  checkTarget(o);
  const { entries, domain, from, stopGtid, stopAtMs } = await startingPoint(o);
  const plan = planReplay(entries, domain, from.seq, { stopSeq: stopGtid?.seq, stopAtMs });
  const last = plan[plan.length - 1];
  const end = last ? last.entry.gtidLast! : formatGtid(from);
  const lastAt = last?.entry.lastEventAt ? Date.parse(last.entry.lastEventAt) : null;
  if (stopGtid) {
    if ((last?.last ?? from.seq) < stopGtid.seq) throw notCovered(o, end, lastAt);
    return;
  }
  const reached =
    (lastAt !== null && stopAtMs !== undefined && lastAt >= stopAtMs) ||
    archiveCompleteAt(entries, domain, plan, from.seq) >= o.toTime!.getTime() + 1000;
  if (!reached) throw notCovered(o, end, lastAt);
}

/**
 * Applies archived binlogs to a prepared data directory up to the target, on a throw-away server
 * (wsrep off, binlog off). Afterwards grastate.dat says "position unknown": the data has left the
 * history of the cluster it came from, so it must bootstrap a NEW cluster (docs/pitr.md). On
 * failure the directory is left as it is: the caller empties it (restore) or throws it away
 * (restore-test).
 */
export async function restoreToPoint(o: RestoreToPointOptions): Promise<RestoreToPointResult> {
  checkTarget(o);
  const { entries, domain, from, stopGtid, stopAtMs } = await startingPoint(o);
  const plan = planReplay(entries, domain, from.seq, { stopSeq: stopGtid?.seq, stopAtMs });
  const work = await privateTempDir("strongbox-pitr-", o.workDir);
  try {
    const local = await fetchAll(o, plan, domain, work.path);
    const found = findStop(local, from, { stopGtid, stopAtMs });
    // An idle cluster writes nothing after T, so no later event proves coverage; a binlog
    // flushed and archived a second or more after T does (Galera commits cluster-wide).
    const reached =
      found.reached ||
      (!!o.toTime && archiveCompleteAt(entries, domain, plan, from.seq) >= o.toTime.getTime() + 1000);
    if (!reached) throw notCovered(o, describeEnd(found, from), found.lastAt);
    let applied: Awaited<ReturnType<typeof applyAll>> = { files: [], transactions: 0 };
    if (found.stop) applied = await applyAll(o, local, from, found.stop, join(work.path, "server"));
    await writeGrastate(o.targetDir, null);
    return {
      targetDir: o.targetDir,
      fromGtid: formatGtid(from),
      lastGtid: formatGtid(found.stop ?? from),
      lastEventAt: found.lastAt === null ? null : new Date(found.lastAt).toISOString(),
      transactions: applied.transactions,
      files: applied.files,
      stoppedBy: o.toGtid ? "gtid" : "time",
    };
  } finally {
    await work.remove();
  }
}
