// Retention: which backups to keep, and why. Pure arithmetic, tested on its own.
//
// Policies count calendar periods in the operator's time zone (default UTC): keep-daily 7 keeps
// the newest backup of each of the 7 most recent days that have backups, like restic and borg.
// Periods are computed from the local calendar date (Intl), so DST changes and month ends do not
// shift a backup into the wrong bucket.

export interface RetentionPolicy {
  keepLast?: number;
  keepDaily?: number;
  keepWeekly?: number;
  keepMonthly?: number;
  keepYearly?: number;
  /** Milliseconds: keep everything newer than now − keepWithin. */
  keepWithin?: number;
  timeZone?: string;
}

export interface RetentionItem {
  id: string;
  time: Date;
  parent: string | null;
  /** Pinned (repository/pins.ts): kept whatever the policy says, with its chain. */
  pinned?: boolean;
}

export interface RetentionDecision {
  keep: Map<string, string[]>;
  remove: string[];
}

function parts(time: Date, timeZone: string): { y: number; m: number; d: number } {
  const f = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" });
  const [y, m, d] = f.format(time).split("-").map(Number);
  return { y: y!, m: m!, d: d! };
}

export function dayKey(time: Date, timeZone = "UTC"): string {
  const { y, m, d } = parts(time, timeZone);
  return `${y}-${String(m).padStart(2, "0")}-${String(d).padStart(2, "0")}`;
}

export function monthKey(time: Date, timeZone = "UTC"): string {
  const { y, m } = parts(time, timeZone);
  return `${y}-${String(m).padStart(2, "0")}`;
}

export function yearKey(time: Date, timeZone = "UTC"): string {
  return String(parts(time, timeZone).y);
}

/** ISO 8601 week of the local calendar date, e.g. "2026-W48". */
export function weekKey(time: Date, timeZone = "UTC"): string {
  const { y, m, d } = parts(time, timeZone);
  const date = new Date(Date.UTC(y, m - 1, d));
  const weekday = date.getUTCDay() || 7;
  date.setUTCDate(date.getUTCDate() + 4 - weekday);
  const yearStart = new Date(Date.UTC(date.getUTCFullYear(), 0, 1));
  const week = Math.ceil(((date.getTime() - yearStart.getTime()) / 86_400_000 + 1) / 7);
  return `${date.getUTCFullYear()}-W${String(week).padStart(2, "0")}`;
}

export function applyRetention(
  items: RetentionItem[],
  policy: RetentionPolicy,
  now = new Date(),
): RetentionDecision {
  const tz = policy.timeZone ?? "UTC";
  const newestFirst = [...items].sort(
    (a, b) => b.time.getTime() - a.time.getTime() || (a.id < b.id ? 1 : -1),
  );
  const keep = new Map<string, string[]>();
  const why = (id: string, reason: string) => keep.set(id, [...(keep.get(id) ?? []), reason]);

  newestFirst.slice(0, policy.keepLast ?? 0).forEach((it, i) => {
    why(it.id, `keep-last ${i + 1}/${policy.keepLast}`);
  });
  const bucketed = (n: number | undefined, key: (t: Date) => string, label: string) => {
    if (!n) return;
    const seen = new Set<string>();
    for (const it of newestFirst) {
      const k = key(it.time);
      if (seen.has(k)) continue;
      seen.add(k);
      if (seen.size > n) break;
      why(it.id, `${label} ${k}`);
    }
  };
  bucketed(policy.keepDaily, (t) => dayKey(t, tz), "keep-daily");
  bucketed(policy.keepWeekly, (t) => weekKey(t, tz), "keep-weekly");
  bucketed(policy.keepMonthly, (t) => monthKey(t, tz), "keep-monthly");
  bucketed(policy.keepYearly, (t) => yearKey(t, tz), "keep-yearly");
  if (policy.keepWithin !== undefined) {
    for (const it of newestFirst) {
      if (now.getTime() - it.time.getTime() <= policy.keepWithin) why(it.id, "keep-within");
    }
  }
  for (const it of newestFirst) if (it.pinned) why(it.id, "pinned");
  // An incremental is useless without its chain: keep every ancestor of a kept backup.
  const byId = new Map(items.map((i) => [i.id, i]));
  for (const id of [...keep.keys()]) {
    let parent = byId.get(id)?.parent ?? null;
    const child = id;
    while (parent) {
      why(parent, `needed by kept ${child}`);
      parent = byId.get(parent)?.parent ?? null;
    }
  }
  const remove = newestFirst.filter((it) => !keep.has(it.id)).map((it) => it.id);
  return { keep, remove };
}
