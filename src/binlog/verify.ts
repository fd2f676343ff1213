// verify for the binlog archive: every index entry signed by the trusted key, every archived
// file present with the size and SHA-256 the index records, and the GTIDs continuous.
import type { StrongboxError } from "../errors.ts";
import { parseGtid } from "../mariadb/gtid.ts";
import { type BinlogEntry, readBinlogChecked, readIndex } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";

export interface BinlogArchiveVerdict {
  ok: boolean;
  entries: number;
  files: number;
  storedBytes: number;
  /** The GTID range the archive covers without a hole, per domain. */
  ranges: { domain: number; first: number; last: number }[];
  gaps: { domain: number; after: number; before: number; recorded: boolean }[];
  problems: string[];
}

/** GTID holes among stored files (skipped entries store nothing and do not count). */
export function continuity(entries: BinlogEntry[]): Pick<BinlogArchiveVerdict, "ranges" | "gaps"> {
  const byDomain = new Map<number, { first: number; last: number }[]>();
  for (const e of entries) {
    if (e.kind !== "file" || !e.gtidFirst || !e.gtidLast) continue;
    const list = byDomain.get(e.domain) ?? [];
    list.push({ first: parseGtid(e.gtidFirst).seq, last: parseGtid(e.gtidLast).seq });
    byDomain.set(e.domain, list);
  }
  const recorded = entries.filter((e) => e.kind === "gap" && e.gap);
  const ranges: BinlogArchiveVerdict["ranges"] = [];
  const gaps: BinlogArchiveVerdict["gaps"] = [];
  for (const [domain, list] of byDomain) {
    list.sort((a, b) => a.first - b.first);
    let first = list[0]!.first;
    let last = list[0]!.last;
    for (const r of list.slice(1)) {
      if (r.first > last + 1) {
        const isRecorded = recorded.some((g) => parseGtid(g.gap!.after).seq === last && g.domain === domain);
        gaps.push({ domain, after: last, before: r.first, recorded: isRecorded });
        ranges.push({ domain, first, last });
        first = r.first;
      }
      last = Math.max(last, r.last);
    }
    ranges.push({ domain, first, last });
  }
  return { ranges, gaps };
}

export async function verifyBinlogArchive(
  repo: Repository,
  trustedPublicKey: string | readonly string[],
): Promise<BinlogArchiveVerdict> {
  const idx = await readIndex(repo, trustedPublicKey);
  const problems = idx.bad.map((b) => `${b.key}: ${b.reason}`);
  let files = 0;
  let storedBytes = 0;
  for (const e of idx.entries) {
    if (e.kind !== "file") continue;
    files++;
    if (!e.key) {
      problems.push(`index entry ${e.seq} (${e.node}/${e.file}) has no object key`);
      continue;
    }
    const key = e.key;
    try {
      const stored = await readBinlogChecked(repo, { ...e, key }, undefined, { verifyFirst: false });
      for await (const c of stored) storedBytes += (c as Buffer).length;
    } catch (err) {
      problems.push(
        (err as StrongboxError).code === "BINLOG_CORRUPT"
          ? (err as Error).message
          : `${key}: ${(err as Error).message}`,
      );
    }
  }
  const c = continuity(idx.entries);
  for (const g of c.gaps) {
    problems.push(
      `GTID gap in domain ${g.domain}: after ${g.after} the next archived is ${g.before}${g.recorded ? " (recorded by binlog archive)" : ""}`,
    );
  }
  return { ok: problems.length === 0, entries: idx.entries.length, files, storedBytes, ...c, problems };
}
