// verify [ID|--all] [--read-data] [--sample P%]

import { verifyBinlogArchive } from "../binlog/verify.ts";
import { identitiesOf, stateDirOf } from "../config/context.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { verifyBackups } from "../restore/verify.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { openConfiguredRepository, trustedPublicKey } from "./repo.ts";

export function parsePercent(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*%?\s*$/.exec(text);
  const n = m ? Number(m[1]) : Number.NaN;
  if (!(n > 0 && n <= 100))
    throw new UsageError(`--sample must be a percentage between 0 and 100 (got "${text}")`);
  return n / 100;
}

export async function verify(
  g: GlobalOptions,
  o: { id?: string; all?: boolean; readData?: boolean; sample?: string; identity?: string; repo?: string },
  out: Output,
): Promise<CommandResult> {
  if (o.id && o.all) throw new UsageError("give a backup ID or --all, not both");
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  try {
    return await runMonitored(
      monitorSettingsOf(loaded),
      { command: "verify", repository: repo.name, kind: o.readData ? "read-data" : "hashes" },
      async (run) => {
        const trusted = await trustedPublicKey(loaded);
        repo.verifyInfo(trusted);
        const ids = o.id ? [o.id] : (await repo.scan()).committed;
        const identities = o.readData ? await identitiesOf(loaded, o.identity) : undefined;
        const verdicts = await verifyBackups({
          repo,
          trustedPublicKey: trusted,
          ids,
          identities,
          sample: o.sample ? parsePercent(o.sample) : undefined,
          stateDir: stateDirOf(loaded),
        });
        const failed = verdicts.filter((v) => !v.ok);
        // Only a single-backup check skips the binlog archive (signatures, hashes, GTID continuity).
        const binlogs = o.id ? undefined : await verifyBinlogArchive(repo, trusted);
        const binlogsUsed = binlogs && (binlogs.ranges.length > 0 || binlogs.problems.length > 0);
        const result = {
          repository: repo.name,
          ok: failed.length === 0 && (binlogs?.ok ?? true),
          backups: verdicts,
          binlogs,
        };
        out.result(result, () => {
          const lines = verdicts.map((v) =>
            v.ok
              ? `ok      ${v.id} ${v.type}: signature, chain, ${v.partsChecked}/${v.partsTotal} part(s) checked${v.dataRead ? ", data decrypted and parsed to the end" : ""}`
              : `FAILED  ${v.id} ${v.type}: ${v.problems.map((p) => p.message).join("; ")}`,
          );
          lines.push(
            verdicts.length === 0
              ? `repository ${repo.name}: no backups to verify`
              : `${verdicts.length - failed.length} of ${verdicts.length} backup(s) verified${failed.length ? `, ${failed.length} FAILED` : ""}`,
          );
          if (binlogs && binlogsUsed) {
            lines.push(
              binlogs.ok
                ? `ok      binlog archive: ${binlogs.ranges.length} GTID range(s), signatures and hashes checked, no gaps`
                : `FAILED  binlog archive: ${binlogs.problems.join("; ")}`,
            );
          }
          return lines.join("\n");
        });
        run.details = { backups: verdicts.length, failed: failed.map((v) => v.id) };
        if (binlogs && !binlogs.ok && failed.length === 0) {
          throw new StrongboxError("VERIFY_FAILED", `binlog archive: ${binlogs.problems[0] ?? "gap"}`);
        }
        if (failed.length > 0) {
          const first = failed[0]!;
          const problem = first.problems[0]?.message ?? "failed";
          throw new StrongboxError(
            "VERIFY_FAILED",
            problem.includes(`backup ${first.id}`) ? problem : `backup ${first.id}: ${problem}`,
            {
              details: { failed: failed.map((v) => v.id) },
            },
          );
        }
        return { exitCode: 0, result };
      },
    );
  } finally {
    await close();
  }
}
