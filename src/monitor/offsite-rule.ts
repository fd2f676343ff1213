// The offsite rule of `status` and the alerts (practice 4): the repository backups are taken into
// must have an offsite copy configured, and the newest copy into each offsite repository must be
// recent. Copies are recorded as "copy" runs of the repository they went into (the destination),
// so the finding is about the primary repository but reads the destinations' history.
//   WARNING: no offsite repository in backup.copyTo;
//   WARNING: backups exist but none was ever copied into an offsite repository;
//   WARNING: the newest successful copy into it is older than maxCopyAge (else maxBackupAge).
import { formatDuration } from "../util/duration.ts";
import type { Catalog } from "./catalog.ts";
import type { Finding } from "./rules.ts";
import type { RuleSettings } from "./settings.ts";

export function offsiteFindings(
  catalog: Catalog,
  repository: string,
  rules: RuleSettings,
  now: number,
): Finding[] {
  const offsite = rules.offsite;
  if (!offsite || offsite.primary !== repository) return [];
  const base = {
    rule: "offsite-missing" as const,
    repository,
    subject: "copy",
    severity: "warning" as const,
  };
  if (offsite.targets.length === 0) {
    return [
      {
        ...base,
        message: `repository "${repository}" has no offsite copy configured: add a repository on other storage (sftp, s3) to backup.copyTo`,
        details: { targets: [] },
      },
    ];
  }
  const backup = catalog.lastRun("backup", repository, { result: "ok" });
  if (!backup) return []; // nothing to copy yet
  const limitMs = rules.maxCopyAgeMs ?? rules.maxBackupAgeMs;
  const out: Finding[] = [];
  for (const target of offsite.targets) {
    const copy = catalog.lastRun("copy", target, { result: "ok" });
    if (!copy) {
      out.push({
        ...base,
        message: `backups of repository "${repository}" have never been copied to its offsite repository "${target}"`,
        details: { target, lastCopyRunId: null },
      });
      continue;
    }
    const at = copy.endedAt ?? copy.startedAt;
    if (now - at > limitMs) {
      out.push({
        ...base,
        message: `the newest copy of repository "${repository}" to "${target}" finished ${formatDuration(now - at)} ago (at ${new Date(at).toISOString()}); the limit is ${formatDuration(limitMs)}`,
        details: { target, lastCopyRunId: copy.id, ageMs: now - at, maxAgeMs: limitMs },
      });
    }
  }
  return out;
}
