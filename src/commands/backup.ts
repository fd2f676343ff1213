// backup: lock the repository, take the backup, release — also on SIGTERM or SIGINT.

import { type BackupSettings, runBackup } from "../backup/run.ts";
import {
  clusterNodes,
  clusterTls,
  credentialsFor,
  recipientsOf,
  signingKeyOf,
  stateDirOf,
  trustedKeysOf,
} from "../config/context.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import type { StrongboxConfig } from "../config/schema.ts";
import { UsageError } from "../errors.ts";
import { repairAbandonedDesync } from "../galera/desync.ts";
import { runMonitored } from "../monitor/monitor.ts";
import type { BackupType } from "../repository/manifest.ts";
import { asWriter } from "../repository/writer.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { parseDuration } from "../util/duration.ts";
import { formatBytes, parseSize } from "../util/size.ts";
import { copyInto } from "./offsite.ts";
import { openConfiguredRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

export interface BackupCommandOptions {
  full?: boolean;
  incremental?: boolean;
  logical?: boolean;
  node?: string;
  repo?: string;
}

export async function backup(g: GlobalOptions, o: BackupCommandOptions, out: Output): Promise<CommandResult> {
  const chosen = (["full", "incremental", "logical"] as const).filter((k) => o[k]);
  if (chosen.length > 1)
    throw new UsageError(`choose one of --full, --incremental, --logical (got ${chosen.join(", ")})`);
  const kind: BackupType | undefined = chosen[0];
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `backup aborted by ${sig}; nothing was committed`);
  try {
    const committed = await runMonitored(
      monitorSettingsOf(loaded),
      { command: "backup", repository: repo.name, kind },
      async (run) => {
        const signing = await signingKeyOf(loaded);
        repo.verifyInfo(await trustedKeysOf(loaded));
        const recipients = await recipientsOf(loaded);
        const backupCreds = (await credentialsFor(loaded, "backup"))!;
        const adminCreds = await credentialsFor(loaded, "admin");
        const progress = out.progress();
        try {
          // Leftovers of runs that crashed (kill -9) before their commit are removed under the lock
          // while the nodes are asked (and a full backup's tool starts); the first object of this
          // backup is created only after it, so it is never taken for a dead run's. The scan's
          // committed ids stay valid under the lock: runBackup reads the manifests it needs from them.
          const m = await asWriter(
            repo,
            {
              command: `backup${kind ? ` --${kind}` : ""}`,
              ttlMs: parseDuration(loaded.config.backup.lockTtl),
              housekeeping: true,
              log: (msg) => progress.note(msg, true),
            },
            async ({ housekeeping }) => {
              const stateDir = stateDirOf(loaded);
              // Under the lock: the evidence log's tail cannot move before this backup commits.
              const trust = await verifierFor(loaded, repo);
              // Before the nodes are probed: a node this host left desynced would not look Synced.
              await repairAbandonedDesync(stateDir, clusterNodes(loaded), adminCreds, {
                tls: clusterTls(loaded),
                log: (msg) => progress.note(msg, !out.json),
              });
              const timeout = AbortSignal.timeout(parseDuration(loaded.config.backup.timeout));
              return runBackup(
                {
                  settings: backupSettings(loaded.config),
                  repo,
                  nodes: clusterNodes(loaded),
                  backupCreds,
                  adminCreds,
                  tls: clusterTls(loaded),
                  recipients,
                  signing,
                  trust,
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
            },
          );
          progress.done();
          run.kind = m.type;
          run.node = m.donor;
          run.bytes = m.bytes.stored;
          run.details = { backupId: m.id, raw: m.bytes.raw, seconds: m.durations.total };
          out.result(m, () =>
            [
              `backup ${m.id} committed: ${m.type}${m.parent ? ` (parent ${m.parent})` : ""} from ${m.donor}`,
              `  ${formatBytes(m.bytes.raw)} read, ${formatBytes(m.bytes.compressed)} compressed, ${formatBytes(m.bytes.stored)} stored in ${m.parts.length} part(s), ${m.durations.total?.toFixed(1)} s`,
              `  GTID ${m.gtid ?? "-"}, Galera ${m.cluster.uuid ?? "-"}:${m.cluster.seqno ?? "-"}${m.lsn ? `, LSN ${m.lsn.from}..${m.lsn.to}` : ""}`,
            ].join("\n"),
          );
          return m;
        } finally {
          progress.done();
        }
      },
    );
    // Offsite right away (backup.copyTo): each copy is its own recorded run of the destination.
    for (const to of loaded.config.backup.copyTo) {
      const r = await copyInto(loaded, repo.name, to, committed.id, () => {});
      out.note(`copied ${committed.id} to ${to} (${r.parts} part(s) sent, hashes checked on arrival)`);
    }
    return { exitCode: 0, result: committed };
  } finally {
    abort.dispose();
    await close();
  }
}

/** The part of the configuration a backup run reads. */
function backupSettings(config: StrongboxConfig): BackupSettings {
  const { cluster, backup } = config;
  return {
    clusterName: cluster.name,
    backupNode: cluster.backupNode,
    writerNode: cluster.writerNode,
    desync: cluster.desync,
    retryOnNextNode: cluster.retryOnNextNode,
    fullEvery: backup.fullEvery,
    mariabackupPath: backup.mariabackupPath,
    mariadbDumpPath: backup.mariadbDumpPath,
    parallel: backup.parallel,
    exactCountMaxRows: backup.exactCountMaxRows,
    partSize: parseSize(backup.partSize),
    compressionLevel: backup.compressionLevel,
    compressionThreads: backup.compressionThreads,
    stallTimeoutMs: parseDuration(backup.stallTimeout),
  };
}
