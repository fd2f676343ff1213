// copy --from A --to B [ID|--missing] and prune [--repo R] [--dry-run]

import { repositoryConfig, signingKeyOf, trustedKeysOf } from "../config/context.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { type CopyResult, copyBackups } from "../repository/copy.ts";
import { prune as pruneRepo } from "../repository/prune.ts";
import { asWriter } from "../repository/writer.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { parseDuration } from "../util/duration.ts";
import { formatBytes } from "../util/size.ts";
import { openRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

/** Copies into `toName` under its lock; recorded as a "copy" run of the destination. */
export async function copyInto(
  loaded: LoadedConfig,
  fromName: string,
  toName: string,
  id: string | undefined,
  log: (m: string) => void,
): Promise<CopyResult> {
  if (fromName === toName) throw new UsageError("--from and --to name the same repository");
  const signing = await signingKeyOf(loaded);
  const keys = await trustedKeysOf(loaded);
  const from = await openRepository(loaded, fromName, { trusted: keys });
  try {
    const to = await openRepository(loaded, toName, { trusted: keys });
    try {
      return await runMonitored(
        monitorSettingsOf(loaded),
        { command: "copy", repository: toName },
        async (run) => {
          const r = await asWriter(
            to,
            { command: `copy from ${fromName}`, ttlMs: parseDuration(loaded.config.backup.lockTtl) },
            async () =>
              copyBackups({
                from: await verifierFor(loaded, from, { keys }),
                to: await verifierFor(loaded, to, { keys }),
                signing,
                id,
                log,
              }),
          );
          run.bytes = r.bytes;
          run.details = { from: fromName, copied: r.copied, unverified: r.unverified.map((u) => u.id) };
          return r;
        },
      );
    } finally {
      await to.storage.close();
    }
  } finally {
    await from.storage.close();
  }
}

export async function copy(
  g: GlobalOptions,
  o: { from?: string; to: string; id?: string; missing?: boolean },
  out: Output,
): Promise<CommandResult> {
  if (o.id && o.missing) throw new UsageError("give a backup ID or --missing, not both");
  const loaded = await loadConfig(g.config);
  const from = o.from ?? loaded.config.defaultRepository ?? loaded.config.repositories[0]!.name;
  const r = await copyInto(loaded, from, o.to, o.id, (m: string) => out.log(m));
  return reply(out, { from, to: o.to, ...r }, () =>
    [
      r.copied.length === 0
        ? `nothing to copy: ${o.to} already has ${o.id ?? "every verified backup of " + from}`
        : `copied ${r.copied.length} backup(s), ${r.parts} part(s), ${formatBytes(r.bytes)} from ${from} to ${o.to}; hashes checked on arrival`,
      ...r.unverified.map((u) => `UNVERIFIED ${u.id}: not copied (${u.message})`),
    ].join("\n"),
  );
}

export async function prune(
  g: GlobalOptions,
  o: { repo?: string; dryRun?: boolean },
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const rc = repositoryConfig(loaded, o.repo);
  const retention = rc.retention;
  if (rc.appendOnly) {
    throw new StrongboxError(
      "REPO_APPEND_ONLY",
      `repository ${rc.name} is append-only: prune refuses to delete there`,
      {
        hint: "run prune from a separate configuration (and credentials) that may delete, e.g. on the offsite host",
      },
    );
  }
  if (
    !retention ||
    [
      retention.keepLast,
      retention.keepDaily,
      retention.keepWeekly,
      retention.keepMonthly,
      retention.keepYearly,
      retention.keepWithin,
    ].every((v) => v === undefined)
  ) {
    throw new StrongboxError(
      "NO_RETENTION",
      `repository ${rc.name} has no retention policy; prune would delete everything`,
      {
        hint: `set repositories[].retention (e.g. keepDaily: 7, keepWeekly: 4, keepMonthly: 6) for ${rc.name}`,
      },
    );
  }
  const signing = await signingKeyOf(loaded);
  const keys = await trustedKeysOf(loaded);
  const repo = await openRepository(loaded, rc.name, { trusted: keys });
  try {
    const policy = {
      keepLast: retention.keepLast,
      keepDaily: retention.keepDaily,
      keepWeekly: retention.keepWeekly,
      keepMonthly: retention.keepMonthly,
      keepYearly: retention.keepYearly,
      keepWithin: retention.keepWithin ? parseDuration(retention.keepWithin) : undefined,
      timeZone: retention.timeZone,
    };
    const run = () =>
      asWriter(
        repo,
        {
          command: `prune${o.dryRun ? " --dry-run" : ""}`,
          ttlMs: parseDuration(loaded.config.backup.lockTtl),
        },
        async () =>
          pruneRepo({
            repo,
            verifier: await verifierFor(loaded, repo, { keys }),
            signing,
            policy,
            trustedPublicKey: signing.publicKey,
            dryRun: o.dryRun ?? false,
          }),
      );
    const r = o.dryRun
      ? await run()
      : await runMonitored(
          monitorSettingsOf(loaded),
          { command: "prune", repository: rc.name },
          async (h) => {
            const result = await run();
            h.details = {
              removed: result.removed,
              unverified: result.unverified.map((u) => u.id),
              missing: result.missing.map((u) => u.id),
            };
            return result;
          },
        );
    for (const u of r.unverified) out.note(`UNVERIFIED ${u.id}: ${u.message} (not counted, left in place)`);
    for (const u of r.missing) out.note(`MISSING ${u.id}: ${u.message}`);
    return reply(out, { repository: rc.name, ...r }, () =>
      [
        ...r.tamperedPins.map(
          (p) =>
            `WARNING: the pin of ${p.backup} (${p.key}) fails its check: ${p.why}; kept anyway, investigate`,
        ),
        ...r.kept.map((k) => `keep    ${k.id}  (${k.reasons.join("; ")})`),
        ...r.removed.map((id) => `${r.dryRun ? "would remove" : "removed"} ${id}  (no rule keeps it)`),
        ...r.orphans.map((id) => `${r.dryRun ? "would remove" : "removed"} ${id}  (unfinished: no manifest)`),
        ...r.binlogsRemoved.map(
          (f) => `${r.dryRun ? "would remove" : "removed"} binlog ${f}  (before the oldest kept backup)`,
        ),
        `${rc.name}: ${r.kept.length} kept, ${r.removed.length} ${r.dryRun ? "to remove" : "removed"}, ${r.orphans.length} unfinished${r.dryRun ? " (dry run: nothing deleted)" : `, ${r.objectsDeleted} object(s) deleted`}`,
      ].join("\n"),
    );
  } finally {
    await repo.storage.close();
  }
}
