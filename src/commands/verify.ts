// verify [ID|--all] [--read-data] [--sample P%]

import { verifyBinlogArchive } from "../binlog/verify.ts";
import { identitiesOf, stateDirOf, trustedKeysOf } from "../config/context.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { type BackupVerdict, verifyBackups } from "../restore/verify.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { openConfiguredRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

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
        const trusted = await trustedKeysOf(loaded);
        const verifier = await verifierFor(loaded, repo, { full: true, keys: trusted });
        const committed = (await repo.scan()).committed;
        const set = o.id ? undefined : await verifier.inventory(committed);
        const ids = o.id ? [o.id] : committed;
        const identities = o.readData ? await identitiesOf(loaded, o.identity) : undefined;
        const verdicts = await verifyBackups({
          repo,
          trust: verifier,
          ids,
          identities,
          sample: o.sample ? parsePercent(o.sample) : undefined,
          stateDir: stateDirOf(loaded),
        });
        const unverified = new Set((set?.unverified ?? []).map((u) => u.id));
        const missing = set?.missing ?? verifier.missingFrom(committed).filter((m) => m.id === o.id);
        for (const m of missing) {
          verdicts.push({
            id: m.id,
            type: "?",
            ok: false,
            partsChecked: 0,
            partsTotal: 0,
            dataRead: false,
            problems: [{ code: m.code, message: m.message }],
          });
        }
        const evidenceProblems = verifier.evidence.problems;
        const failed = verdicts.filter((v) => !v.ok);
        // Only a single-backup check skips the binlog archive (signatures, hashes, GTID continuity).
        const binlogs = o.id ? undefined : await verifyBinlogArchive(repo, trusted);
        const binlogsUsed = binlogs && (binlogs.ranges.length > 0 || binlogs.problems.length > 0);
        const result = {
          repository: repo.name,
          ok: failed.length === 0 && evidenceProblems.length === 0 && (binlogs?.ok ?? true),
          backups: verdicts,
          unverified: set?.unverified ?? [],
          missing,
          evidence: {
            entries: verifier.evidence.entries,
            newest: verifier.evidence.tail?.seq ?? null,
            problems: evidenceProblems,
          },
          binlogs,
        };
        const label = (v: BackupVerdict) =>
          v.problems[0]?.code === "BACKUP_MISSING"
            ? "MISSING   "
            : unverified.has(v.id)
              ? "UNVERIFIED"
              : "FAILED    ";
        out.result(result, () => {
          const lines = verdicts.map((v) =>
            v.ok
              ? `ok         ${v.id} ${v.type}: signature, evidence, chain, ${v.partsChecked}/${v.partsTotal} part(s) checked${v.dataRead ? ", data decrypted and parsed to the end" : ""}`
              : `${label(v)} ${v.id}${v.type === "?" ? "" : ` ${v.type}`}: ${v.problems.map((p) => p.message).join("; ")}`,
          );
          lines.push(
            verdicts.length === 0
              ? `repository ${repo.name}: no backups to verify`
              : `${verdicts.length - failed.length} of ${verdicts.length} backup(s) verified${failed.length ? `, ${failed.length} FAILED` : ""}`,
          );
          for (const p of evidenceProblems) lines.push(`FAILED     evidence log: ${p}`);
          if (evidenceProblems.length === 0 && verifier.evidence.tail) {
            lines.push(
              `ok         evidence log: ${verifier.evidence.entries} entr${verifier.evidence.entries === 1 ? "y" : "ies"} chained and signed, every recorded backup present`,
            );
          }
          if (binlogs && binlogsUsed) {
            lines.push(
              binlogs.ok
                ? `ok         binlog archive: ${binlogs.ranges.length} GTID range(s), signatures and hashes checked, no gaps`
                : `FAILED     binlog archive: ${binlogs.problems.join("; ")}`,
            );
          }
          return lines.join("\n");
        });
        run.details = { backups: verdicts.length, failed: failed.map((v) => v.id) };
        if (evidenceProblems.length > 0 && failed.length === 0) {
          throw new StrongboxError("VERIFY_FAILED", `evidence log: ${evidenceProblems[0]}`, {
            details: { evidence: evidenceProblems },
          });
        }
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
