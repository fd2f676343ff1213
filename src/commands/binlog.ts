// binlog archive [--follow] [--node N] [--repo R]
import { type ArchiveResult, archiveOnce, gapError } from "../binlog/archive.ts";
import { streamFollow } from "../binlog/follow.ts";
import { archiveLag, readArchiveState } from "../binlog/state.ts";
import { clusterNodes, clusterTls, credentialsFor, recipientsOf, signingKeyOf } from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { BINLOG_COMMAND, type PassDetails } from "../monitor/pitr.ts";
import type { BinlogEntry } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { parseDuration } from "../util/duration.ts";
import { parseSize } from "../util/size.ts";
import { openConfiguredRepository } from "./repo.ts";

export interface BinlogArchiveCommandOptions {
  follow?: boolean;
  node?: string;
  repo?: string;
  /** Tests and the benchmark: override binlog.maxDelay, checkpointInterval, spoolMax (ms, bytes). */
  maxDelayMs?: number;
  checkpointMs?: number;
  spoolMaxBytes?: number;
  /** Where the spool directory is made (default /dev/shm). */
  spoolParent?: string;
  /** Each segment, gap or checkpoint as its index entry is written. */
  onDurable?: (e: BinlogEntry) => void;
}

export async function binlogArchive(
  g: GlobalOptions,
  o: BinlogArchiveCommandOptions,
  out: Output,
): Promise<CommandResult> {
  const cfg = (await loadConfig(g.config)).config.binlog;
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo ?? cfg?.repository);
  const abort = interruptible((sig) => `binlog archive stopped by ${sig}`);
  try {
    const signing = await signingKeyOf(loaded);
    repo.verifyInfo(signing.publicKey);
    const nodes = clusterNodes(loaded);
    const preferNode = o.node ?? cfg?.node ?? loaded.config.cluster.backupNode;
    if (o.node && !nodes.some((n) => n.name === o.node)) {
      throw new UsageError(`no node named "${o.node}" in the configuration`);
    }
    // Reading binlogs over the replication protocol needs REPLICATION SLAVE, and closing the open
    // file needs RELOAD: the admin account when there is one (docs/pitr.md lists the grants).
    const creds = (await credentialsFor(loaded, "admin")) ?? (await credentialsFor(loaded, "backup"))!;
    const recipients = await recipientsOf(loaded);
    const base = {
      repo,
      nodes,
      creds,
      tls: clusterTls(loaded),
      preferNode,
      writerNode: loaded.config.cluster.writerNode,
      recipients: recipients.age,
      recipientNames: recipients.names,
      signing,
      log: (m: string) => out.log(m),
      signal: abort.signal,
    };
    const monitor = monitorSettingsOf(loaded);
    // Each pass is a run in the catalog, with the GTID range it archived, the gaps, the lag and
    // the recoverable window after it.
    const recordedPass = (
      flush: boolean,
      pass: () => Promise<ArchiveResult>,
      keep: (r?: ArchiveResult) => boolean,
    ) =>
      runMonitored(
        monitor,
        { command: BINLOG_COMMAND, repository: repo.name, kind: flush ? "flush" : "poll" },
        async (run) => {
          let r: ArchiveResult | undefined;
          try {
            r = await pass();
            const d = await passRecord(repo, signing.publicKey, r);
            run.node = r.node;
            run.bytes = d.bytes;
            run.details = d.details;
            if (r.gaps.length > 0) throw gapError(r.gaps);
            return r;
          } finally {
            run.discard = !keep(r);
          }
        },
      );
    if (!o.follow) {
      const r = await recordedPass(
        true,
        () => archiveOnce({ ...base, flush: true }),
        () => true,
      );
      out.result(
        r,
        () =>
          `${r.node}: ${r.archived.length} file(s) archived, ${r.skipped.length} already covered; archive ends at ${r.lastGtid ?? "(empty)"}`,
      );
      return { exitCode: 0, result: r };
    }
    const maxDelayMs = o.maxDelayMs ?? parseDuration(cfg?.maxDelay ?? "5s");
    const checkpointMs = o.checkpointMs ?? parseDuration(cfg?.checkpointInterval ?? "1m");
    out.note(
      `archiving binlogs continuously: every transaction durable within ${maxDelayMs / 1000} s (SIGTERM stops)`,
    );
    // Recorded: one run per checkpointInterval with what became durable, and failures.
    let failing = false;
    const gaps = await streamFollow({
      ...base,
      signal: abort.signal,
      maxDelayMs,
      checkpointMs,
      spoolMaxBytes: o.spoolMaxBytes ?? parseSize(cfg?.spoolMax ?? "64MiB"),
      spoolParent: o.spoolParent,
      onPass: async (r) => {
        failing = false;
        await recordedPass(
          false,
          async () => r,
          () => true,
        ).catch(() => {});
      },
      onDurable: o.onDurable,
      onError: (e) => {
        out.note(`strongbox: binlog archive: ${errorMessage(e)}`);
        // A failed run in the history (so the failure rule alerts): the first failure after a
        // good pass, and always a full spool. Gaps are recorded with the pass that stores them.
        const code = (e as { code?: string }).code;
        if (code === "BINLOG_GAP" || (failing && code !== "BINLOG_SPOOL_FULL")) return;
        failing = true;
        void recordedPass(
          false,
          async () => {
            throw e;
          },
          () => true,
        ).catch(() => {});
      },
    });
    const result = { stopped: true, gaps: gaps.map((x) => x.gap) };
    out.result(result, () => "binlog archiving stopped");
    if (gaps.length > 0) throw gapError(gaps);
    return { exitCode: 0, result };
  } finally {
    abort.dispose();
    await close();
  }
}

/** What a pass records: bytes stored, the GTID range, and the archive's state after it. */
async function passRecord(
  repo: Repository,
  trusted: string,
  r: ArchiveResult,
): Promise<{ bytes: number; details: PassDetails & Record<string, unknown> }> {
  const read = await readArchiveState(repo, trusted);
  const state = read?.state ?? { domain: null, end: null, gaps: [], window: null };
  const lagSeconds = archiveLag(state, r.head);
  return {
    bytes: r.archived.reduce((n, e) => n + e.size, 0),
    details: {
      node: r.node,
      files: r.archived.length,
      skipped: r.skipped.length,
      gtidFirst: r.archived[0]?.gtidFirst ?? null,
      gtidLast: r.archived[r.archived.length - 1]?.gtidLast ?? null,
      gaps: r.gaps.flatMap((g) => (g.gap ? [g.gap] : [])),
      archiveEnd: state.end,
      openGaps: state.window ? [] : state.gaps,
      window: state.window,
      lagSeconds,
      clusterHead: r.head?.gtid ?? null,
    },
  };
}
