// history [--command C] [--repo R] [--result R] [--since T] [--limit N]: the run catalog, newest first.

import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { UsageError } from "../errors.ts";
import { RUN_COMMANDS, RUN_RESULTS, type Run, type RunResult } from "../monitor/catalog-types.ts";
import { openMonitorCatalog } from "../monitor/monitor.ts";
import { humanBytes, humanDuration } from "../monitor/rules.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { table } from "../terminal/table.ts";

export interface HistoryOptions {
  command?: string;
  repo?: string;
  result?: string;
  since?: string;
  limit?: number;
}

/** "binlog archive" and "key rotate" are accepted as written on the command line. */
function commandName(text: string): string {
  const name = text.trim().replace(/\s+/g, "-");
  if (!(RUN_COMMANDS as readonly string[]).includes(name)) {
    throw new UsageError(`--command must be one of ${RUN_COMMANDS.join(", ")} (got "${text}")`);
  }
  return name;
}

function sinceOf(text: string, now: number): number {
  const rel = /^(\d+)\s*([mhd])$/.exec(text.trim());
  if (rel)
    return now - Number(rel[1]) * { m: 60_000, h: 3_600_000, d: 86_400_000 }[rel[2] as "m" | "h" | "d"];
  const t = Date.parse(text);
  if (Number.isNaN(t)) {
    throw new UsageError(
      `--since must be a time (2026-12-01T00:00:00Z) or an age (90m, 12h, 7d) (got "${text}")`,
    );
  }
  return t;
}

/** What a run did, in a few words: the error of a failed one, else its details. */
export function runSummary(r: Run): string {
  if (r.result !== "ok" && r.result !== "running") return r.error ?? r.result;
  const d = r.details ?? {};
  const parts: string[] = [];
  if (typeof d.backupId === "string") parts.push(d.backupId);
  if (typeof d.gtidFirst === "string" || typeof d.gtidLast === "string")
    parts.push(`GTID ${d.gtidFirst ?? "?"}..${d.gtidLast ?? "?"}`);
  else if (r.command === "binlog-archive") parts.push("nothing new");
  if (Array.isArray(d.gaps) && d.gaps.length > 0) parts.push(`${d.gaps.length} GAP(s)`);
  if (typeof d.lagSeconds === "number") parts.push(`lag ${d.lagSeconds} s`);
  if (typeof d.rtoSeconds === "number") parts.push(`RTO ${d.rtoSeconds.toFixed(1)} s`);
  if (typeof d.from === "string") parts.push(`from ${d.from}`);
  if (Array.isArray(d.copied)) parts.push(`${d.copied.length} copied`);
  if (typeof d.backups === "number") parts.push(`${d.backups} backup(s)`);
  return parts.join(", ");
}

export async function history(g: GlobalOptions, o: HistoryOptions, out: Output): Promise<CommandResult> {
  const command = o.command === undefined ? undefined : commandName(o.command);
  if (o.result !== undefined && !(RUN_RESULTS as readonly string[]).includes(o.result)) {
    throw new UsageError(`--result must be one of ${RUN_RESULTS.join(", ")} (got "${o.result}")`);
  }
  if (o.limit !== undefined && (o.limit < 1 || o.limit > 100_000)) {
    throw new UsageError(`--limit must be from 1 to 100000 (got ${o.limit})`);
  }
  const loaded = await loadConfig(g.config);
  const settings = monitorSettingsOf(loaded);
  const catalog = openMonitorCatalog(settings);
  try {
    if (
      o.repo !== undefined &&
      !settings.repositories.includes(o.repo) &&
      !catalog.subjects().some((s) => s.repository === o.repo)
    ) {
      throw new UsageError(
        `no repository named "${o.repo}" in the configuration or the run history (configured: ${settings.repositories.join(", ")})`,
      );
    }
    catalog.markStaleRuns();
    const runs = catalog.runs({
      ...(o.since === undefined ? {} : { since: sinceOf(o.since, catalog.now()) }),
      limit: o.limit ?? 50,
      ...(o.repo === undefined ? {} : { repository: o.repo }),
      ...(command === undefined ? {} : { command }),
      ...(o.result === undefined ? {} : { result: o.result as RunResult }),
    });
    return reply(out, { runs }, () =>
      runs.length === 0
        ? "no runs recorded that match"
        : table([
            ["id", "started", "command", "kind", "repository", "node", "result", "took", "bytes", "what"],
            ...runs.map((r) => [
              String(r.id),
              new Date(r.startedAt).toISOString().replace(/\.\d+Z$/, "Z"),
              r.command,
              r.kind ?? "-",
              r.repository,
              r.node ?? "-",
              r.result,
              r.durationMs === null ? "-" : humanDuration(r.durationMs),
              r.bytes === null ? "-" : humanBytes(r.bytes),
              runSummary(r),
            ]),
          ]),
    );
  } finally {
    catalog.close();
  }
}
