// Point-in-time recovery: apply archived binlogs on top of a restored, prepared data directory.
//
// The backup's manifest.gtid says which transactions the data already holds. Archived files are
// chained by GTID from there (files of different nodes may overlap: each file is replayed with
// --start-position=<last applied GTID>, which is exclusive, so nothing is applied twice) up to the
// target: a GTID (inclusive) or a time. A time target follows mariadb-binlog's --stop-datetime
// rule with the binlog's one-second resolution: replay stops before the first transaction whose
// event time is at or after T rounded down to the second.

import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { readdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { createZstdDecompress } from "node:zlib";
import { type AgeIdentity, createDecryptStream } from "../crypto/age.ts";
import { StrongboxError } from "../errors.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { startScratchServer } from "../restore/scratch.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { TailBuffer } from "../util/proc.ts";
import { type BinlogEntry, readTrustedIndex } from "./index.ts";
import { formatGtid, type Gtid, type GtidEvent, gtidInList, parseGtid, scanBinlogFile } from "./scan.ts";

export interface PointTarget {
  toTime?: Date | undefined;
  toGtid?: string | undefined;
}

function checkTarget(t: PointTarget): void {
  if ((t.toTime === undefined) === (t.toGtid === undefined)) {
    throw new StrongboxError("PITR_TARGET", "give exactly one of --to-time and --to-gtid", { exitCode: 64 });
  }
  if (t.toTime && Number.isNaN(t.toTime.getTime())) {
    throw new StrongboxError("PITR_TARGET", "--to-time is not a valid time", {
      exitCode: 64,
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

interface PlannedFile {
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
 * archivedAt of any file or skipped entry (each was closed by a flush just before), unless a
 * gap was recorded after the plan's end. 0 when it is not known.
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
    at = Math.max(at, Date.parse(e.archivedAt));
  }
  return planEnd >= end ? at : 0;
}

async function fetchDecrypted(
  repo: Repository,
  e: BinlogEntry,
  identities: AgeIdentity[],
  path: string,
  signal?: AbortSignal,
): Promise<void> {
  const hash = createHash("sha256");
  let size = 0;
  const tap = new Transform({
    transform(chunk: Buffer, _enc, cb) {
      hash.update(chunk);
      size += chunk.length;
      cb(null, chunk);
    },
  });
  try {
    await pipeline(
      await repo.storage.get(e.key!, { signal }),
      tap,
      createDecryptStream(identities),
      createZstdDecompress(),
      createWriteStream(path, { mode: 0o600 }),
      { signal },
    );
  } catch (err) {
    if (err instanceof StrongboxError) throw err;
    throw new StrongboxError(
      "BINLOG_CORRUPT",
      `archived binlog ${e.key} cannot be read: ${(err as Error).message}`,
      {
        stage: "binlog-fetch",
        cause: err,
      },
    );
  }
  const sha = hash.digest("hex");
  if (size !== e.size || sha !== e.sha256) {
    throw new StrongboxError(
      "BINLOG_CORRUPT",
      `archived binlog ${e.key}: stored bytes do not match the index (size ${size} vs ${e.size}, sha256 ${sha.slice(0, 12)}… vs ${e.sha256?.slice(0, 12)}…)`,
      { stage: "binlog-fetch", hint: "the object was damaged or replaced; use an offsite copy" },
    );
  }
}

/** mariadb-binlog FILE | mariadb: both children supervised, stderr tails kept for the error. */
async function applyFile(
  file: string,
  args: string[],
  socket: string,
  o: { mariadbBinlog?: string | undefined; mariadb?: string | undefined; signal?: AbortSignal | undefined },
): Promise<void> {
  const dump = spawn(o.mariadbBinlog ?? "mariadb-binlog", ["--no-defaults", ...args, file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TZ: "UTC" },
    signal: o.signal,
  });
  const client = spawn(
    o.mariadb ?? "mariadb",
    ["--no-defaults", `--socket=${socket}`, "--user=root", "--binary-mode", "--batch"],
    { stdio: ["pipe", "ignore", "pipe"], signal: o.signal },
  );
  const dumpErr = new TailBuffer();
  const clientErr = new TailBuffer();
  dump.stderr.on("data", (c: Buffer) => dumpErr.push(c));
  client.stderr.on("data", (c: Buffer) => clientErr.push(c));
  const exit = (c: ReturnType<typeof spawn>) =>
    new Promise<number | null>((resolve, reject) => {
      c.once("error", reject);
      c.once("close", (code) => resolve(code));
    });
  const [, dumpCode, clientCode] = await Promise.all([
    pipeline(dump.stdout, client.stdin).catch(() => {}),
    exit(dump),
    exit(client),
  ]);
  if (clientCode !== 0) {
    throw new StrongboxError(
      "PITR_APPLY_FAILED",
      `applying ${file} failed in the mariadb client: ${clientErr.lastLines() || `exit ${clientCode}`}`,
      { stage: "binlog-apply" },
    );
  }
  if (dumpCode !== 0) {
    throw new StrongboxError(
      "PITR_APPLY_FAILED",
      `mariadb-binlog failed on ${file}: ${dumpErr.lastLines() || `exit ${dumpCode}`}`,
      { stage: "mariadb-binlog" },
    );
  }
}

export interface RestoreToPointOptions {
  repo: Repository;
  identities: AgeIdentity[];
  /** The key the index entries must be signed with. */
  trustedPublicKey: string;
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

const ZERO_UUID = "00000000-0000-0000-0000-000000000000";

/**
 * Applies archived binlogs to a prepared data directory up to the target, on a throw-away server
 * (wsrep off, binlog off). Afterwards grastate.dat says "position unknown": the data has left the
 * history of the cluster it came from, so it must bootstrap a NEW cluster (docs/pitr.md).
 */
export async function restoreToPoint(o: RestoreToPointOptions): Promise<RestoreToPointResult> {
  checkTarget(o);
  const log = o.log ?? (() => {});
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
      { exitCode: 64 },
    );
  }
  if (stopGtid && stopGtid.seq < from.seq) {
    throw new StrongboxError(
      "PITR_TARGET",
      `--to-gtid ${o.toGtid} is before the backup (${formatGtid(from)})`,
      {
        exitCode: 64,
        hint: "choose an older backup (chooseBackupFor)",
      },
    );
  }
  // Header times have whole seconds: stop at the first transaction at or after T's second.
  const stopAtMs = o.toTime ? Math.floor(o.toTime.getTime() / 1000) * 1000 : undefined;
  const plan = planReplay(entries, domain, from.seq, { stopSeq: stopGtid?.seq, stopAtMs });
  const work = await privateTempDir("strongbox-pitr-", o.workDir);
  try {
    // Decrypt (hash-checked) and read every planned file: event times decide where a time target cuts.
    const local: { f: PlannedFile; path: string; events: GtidEvent[] }[] = [];
    for (const [i, f] of plan.entries()) {
      const path = join(work.path, `${String(i).padStart(4, "0")}-${f.entry.file}`);
      log(`fetching ${f.entry.node}/${f.entry.file} (${f.entry.gtidFirst} … ${f.entry.gtidLast})`);
      await fetchDecrypted(o.repo, f.entry, o.identities, path, o.signal);
      const scan = await scanBinlogFile(path, domain, { mariadbBinlog: o.mariadbBinlog, signal: o.signal });
      local.push({ f, path, events: scan.events });
    }
    // The last transaction to apply, and proof the archive reaches the target.
    let stop: Gtid | undefined;
    let seen = from.seq;
    let reached = false;
    let lastAt: number | null = null;
    outer: for (const l of local) {
      for (const ev of l.events) {
        if (ev.gtid.seq <= seen) continue;
        if (stopAtMs !== undefined && ev.at >= stopAtMs) {
          reached = true;
          break outer;
        }
        if (stopGtid && ev.gtid.seq > stopGtid.seq) {
          reached = true;
          break outer;
        }
        stop = ev.gtid;
        lastAt = ev.at;
        seen = ev.gtid.seq;
        if (stopGtid && ev.gtid.seq === stopGtid.seq) {
          reached = true;
          break outer;
        }
      }
    }
    if (
      !reached &&
      o.toTime &&
      archiveCompleteAt(entries, domain, plan, from.seq) >= o.toTime.getTime() + 1000
    ) {
      // An idle cluster writes nothing after T, so no later event proves coverage; a binlog
      // flushed and archived a second or more after T does (Galera commits cluster-wide).
      reached = true;
    }
    if (!reached) {
      const end = stop ? formatGtid(stop) : formatGtid(from);
      throw new StrongboxError(
        "PITR_NOT_COVERED",
        `the binlog archive ends at ${end}${lastAt ? ` (${new Date(lastAt).toISOString()})` : ""}, before the target ${o.toGtid ?? o.toTime?.toISOString()}`,
        {
          hint: "run `strongbox binlog archive` (it flushes and archives the open binlog) and restore again",
          details: { archiveEnd: end },
        },
      );
    }
    const files: RestoreToPointResult["files"] = [];
    let transactions = 0;
    if (stop) {
      try {
        await applyAll(from, stop);
      } catch (e) {
        // Half rolled forward looks usable and is not: empty the directory, as restore does.
        for (const f of await readdir(o.targetDir).catch(() => [])) {
          await rm(join(o.targetDir, f), { recursive: true, force: true });
        }
        throw e;
      }
    }
    async function applyAll(start: Gtid, end: Gtid): Promise<void> {
      const server = await startScratchServer(o.targetDir, join(work.path, "server"), {
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
    }
    await writeFile(
      join(o.targetDir, "grastate.dat"),
      `# GALERA saved state\nversion: 2.1\nuuid:    ${ZERO_UUID}\nseqno:   -1\nsafe_to_bootstrap: 1\n`,
      { mode: 0o600 },
    );
    return {
      targetDir: o.targetDir,
      fromGtid: formatGtid(from),
      lastGtid: formatGtid(stop ?? from),
      lastEventAt: lastAt === null ? null : new Date(lastAt).toISOString(),
      transactions,
      files,
      stoppedBy: o.toGtid ? "gtid" : "time",
    };
  } finally {
    await work.remove();
  }
}
