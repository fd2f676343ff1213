// What the binlog archive makes possible, for monitoring, `list` and `status`: where it ends, the
// gaps in it, and the recoverable window (earliest and latest second a point-in-time restore can
// reach). Computed from the signed index and the signed manifests only.
import { formatGtid, gtidInList, parseGtid } from "../mariadb/gtid.ts";
import { type BinlogEntry, readTrustedIndex } from "../repository/binlog-index.ts";
import { type Manifest, verifyManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { planReplay } from "./plan.ts";

export interface ArchiveState {
  /** The cluster's GTID domain the archive follows (null: nothing archived yet). */
  domain: number | null;
  /** The newest archived transaction and its event time (UTC, whole seconds). */
  end: { gtid: string; at: string | null } | null;
  gaps: { after: string; before: string; archivedAt: string }[];
  /**
   * The recoverable window: from the end of the oldest backup from which the archive runs without
   * a gap to its end, up to the newest archived transaction. null without such a backup.
   */
  window: { from: string; to: string; backupId: string } | null;
}

/** The domain of the newest archived entry: the one archiving follows now. */
function archiveDomain(entries: readonly BinlogEntry[]): number | null {
  let newest: BinlogEntry | undefined;
  for (const e of entries) if (!newest || e.seq > newest.seq) newest = e;
  return newest ? newest.domain : null;
}

export function archiveState(entries: readonly BinlogEntry[], manifests: readonly Manifest[]): ArchiveState {
  const domain = archiveDomain(entries);
  const state: ArchiveState = { domain, end: null, gaps: [], window: null };
  if (domain === null) return state;
  let endSeq = -1;
  for (const e of entries) {
    if (e.domain !== domain) continue;
    if (e.kind === "gap" && e.gap) {
      state.gaps.push({ after: e.gap.after, before: e.gap.before, archivedAt: e.archivedAt });
      continue;
    }
    if (!e.gtidLast) continue;
    const last = parseGtid(e.gtidLast);
    if (last.seq > endSeq || (last.seq === endSeq && state.end?.at === null && e.lastEventAt)) {
      endSeq = last.seq;
      state.end = { gtid: formatGtid(last), at: e.lastEventAt };
    }
  }
  const physical = manifests
    .filter((m) => m.type !== "logical" && m.gtid && gtidInList(m.gtid, domain))
    .sort((a, b) => Date.parse(a.finishedAt) - Date.parse(b.finishedAt));
  for (const m of physical) {
    const from = gtidInList(m.gtid!, domain)!.seq;
    // A gap recorded after this backup's position cuts the way from it to the end.
    if (state.gaps.some((g) => parseGtid(g.after).seq >= from)) continue;
    let to = m.finishedAt;
    try {
      const plan = planReplay([...entries], domain, from, {});
      const lastAt = plan[plan.length - 1]?.entry.lastEventAt;
      if (lastAt && Date.parse(lastAt) > Date.parse(to)) to = lastAt;
    } catch {
      continue; // a hole between this backup and the end
    }
    state.window = { from: m.finishedAt, to, backupId: m.id };
    break;
  }
  return state;
}

/**
 * The state of a repository's archive, read from its signed index; manifests whose signature does
 * not verify are left out (verify reports them). null when nothing was ever archived.
 */
export async function readArchiveState(
  repo: Repository,
  trustedPublicKey: string | readonly string[],
  manifests?: Manifest[],
): Promise<{ state: ArchiveState; entries: BinlogEntry[] } | null> {
  const entries = await readTrustedIndex(repo, trustedPublicKey);
  if (entries.length === 0) return null;
  const signed = (manifests ?? (await repo.list())).filter((m) => {
    try {
      verifyManifest(m, trustedPublicKey);
      return true;
    } catch {
      return false;
    }
  });
  return { state: archiveState(entries, signed), entries };
}

/**
 * Seconds between the newest transaction on the cluster (`head`, measured by a flushing pass)
 * and the newest archived one: 0 when the archive holds it, null when it was not measured.
 */
export function archiveLag(
  state: ArchiveState,
  head: { gtid: string | null; at: string | null } | undefined,
): number | null {
  if (!head) return null;
  if (head.gtid === null) return 0;
  if (state.end && parseGtid(state.end.gtid).seq >= parseGtid(head.gtid).seq) return 0;
  if (head.at === null || !state.end?.at) return null;
  return Math.max(0, Math.round((Date.parse(head.at) - Date.parse(state.end.at)) / 1000));
}
