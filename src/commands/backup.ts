// backup: lock the repository, take the backup, release — also on SIGTERM or SIGINT.
import { hostname } from "node:os";
import { runBackup } from "../backup/run.ts";
import type { GlobalOptions } from "../cli/args.ts";
import { emit, note } from "../cli/output.ts";
import { Progress } from "../cli/progress.ts";
import { interruptible } from "../cli/signals.ts";
import {
  clusterNodes,
  clusterTls,
  credentialsFor,
  recipientsOf,
  signingKeyOf,
  stateDirOf,
} from "../config/context.ts";
import { UsageError } from "../errors.ts";
import { repairAbandonedDesync } from "../galera/desync.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { acquireLock } from "../repository/lock.ts";
import type { BackupType } from "../repository/manifest.ts";
import { parseDuration } from "../util/duration.ts";
import { formatBytes } from "../util/size.ts";
import { copyInto } from "./offsite.ts";
import { openConfiguredRepository } from "./repo.ts";

export interface BackupCommandOptions {
  full?: boolean;
  incremental?: boolean;
  logical?: boolean;
  node?: string;
  repo?: string;
}

export async function backup(g: GlobalOptions, o: BackupCommandOptions): Promise<void> {
  const chosen = (["full", "incremental", "logical"] as const).filter((k) => o[k]);
  if (chosen.length > 1)
    throw new UsageError(`choose one of --full, --incremental, --logical (got ${chosen.join(", ")})`);
  const kind: BackupType | undefined = chosen[0];
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `backup aborted by ${sig}; nothing was committed`);
  try {
    const committed = await runMonitored(
      loaded,
      { command: "backup", repository: repo.name, kind },
      async (run) => {
        const signing = await signingKeyOf(loaded);
        repo.verifyInfo(signing.publicKey);
        const recipients = await recipientsOf(loaded);
        const backupCreds = (await credentialsFor(loaded, "backup"))!;
        const adminCreds = await credentialsFor(loaded, "admin");
        const ttlMs = parseDuration(loaded.config.backup.lockTtl);
        const lock = await acquireLock(repo.storage, {
          holder: { host: hostname(), pid: process.pid, command: `backup${kind ? ` --${kind}` : ""}` },
          ttlMs,
        });
        const stopHeartbeat = lock.startHeartbeat(Math.max(1000, Math.min(60_000, ttlMs / 4)));
        const progress = new Progress(!g.json && process.stderr.isTTY);
        let housekeeping: Promise<readonly string[] | undefined> | undefined;
        try {
          // Leftovers of runs that crashed (kill -9) before their commit: safe to remove under the lock.
          // We hold the writer lock, so every temp object is a dead writer's. The scan's committed ids
          // stay valid under the lock: runBackup reads the manifests it needs from them. All of this
          // runs while the nodes are asked (and a full backup's tool starts); the first object of
          // this backup is created only after it, so it is never taken for a dead run's.
          housekeeping = (async () => {
            const [temps, scan] = await Promise.all([
              repo.storage.cleanupTemp?.(0),
              repo.storage.capabilities.appendOnly ? undefined : repo.scan(),
            ]);
            if (temps) progress.note(`removed ${temps} temporary file(s) of unfinished writes`, true);
            for (const id of scan?.orphans ?? []) {
              const n = await repo.removeUncommitted(id);
              progress.note(`removed ${n} object(s) of unfinished backup ${id}`, true);
            }
            return scan?.committed;
          })();
          housekeeping.catch(() => {});
          const stateDir = stateDirOf(loaded);
          // Before the nodes are probed: a node this host left desynced would not look Synced.
          await repairAbandonedDesync(stateDir, clusterNodes(loaded), adminCreds, {
            tls: clusterTls(loaded),
            log: (msg) => progress.note(msg, !g.json),
          });
          const timeout = AbortSignal.timeout(parseDuration(loaded.config.backup.timeout));
          const m = await runBackup(
            {
              config: loaded.config,
              repo,
              nodes: clusterNodes(loaded),
              backupCreds,
              adminCreds,
              tls: clusterTls(loaded),
              recipients,
              signing,
              stateDir,
              committed: housekeeping,
              log: (msg) => progress.note(msg, true),
            },
            {
              kind,
              node: o.node,
              signal: AbortSignal.any([abort.signal, timeout]),
              // Only a terminal shows progress: else no size estimate (a connection and a query
              // on the donor) and no polling.
              ...(progress.enabled
                ? {
                    onProgress: (b: number) => progress.update(b),
                    onEstimate: (n: number) => {
                      progress.total = n;
                    },
                  }
                : {}),
            },
          );
          progress.done();
          run.kind = m.type;
          run.node = m.donor;
          run.bytes = m.bytes.stored;
          run.details = { backupId: m.id, raw: m.bytes.raw, seconds: m.durations.total };
          emit(g, m, () =>
            [
              `backup ${m.id} committed: ${m.type}${m.parent ? ` (parent ${m.parent})` : ""} from ${m.donor}`,
              `  ${formatBytes(m.bytes.raw)} read, ${formatBytes(m.bytes.compressed)} compressed, ${formatBytes(m.bytes.stored)} stored in ${m.parts.length} part(s), ${m.durations.total?.toFixed(1)} s`,
              `  GTID ${m.gtid ?? "-"}, Galera ${m.cluster.uuid ?? "-"}:${m.cluster.seqno ?? "-"}${m.lsn ? `, LSN ${m.lsn.from}..${m.lsn.to}` : ""}`,
            ].join("\n"),
          );
          return m;
        } finally {
          progress.done();
          // Nothing is removed from the repository once the lock is released.
          await housekeeping?.catch(() => {});
          stopHeartbeat();
          await lock.release().catch(() => {});
        }
      },
    );
    // Offsite right away (backup.copyTo): each copy is its own recorded run of the destination.
    for (const to of loaded.config.backup.copyTo) {
      const r = await copyInto(loaded, repo.name, to, committed.id, () => {});
      note(`copied ${committed.id} to ${to} (${r.parts} part(s) sent, hashes checked on arrival)`);
    }
  } finally {
    abort.dispose();
    await close();
  }
}
