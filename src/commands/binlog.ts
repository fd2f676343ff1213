// binlog archive [--follow] [--node N] [--repo R]
import { type ArchiveResult, archiveFollow, archiveOnce, gapError } from "../binlog/archive.ts";
import { archiveLag, readArchiveState } from "../binlog/state.ts";
import { clusterNodes, clusterTls, credentialsFor, recipientsOf, signingKeyOf } from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { errorMessage, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { BINLOG_COMMAND, type PassDetails } from "../monitor/pitr.ts";
import type { Repository } from "../repository/repository.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { parseDuration } from "../util/duration.ts";
import { openConfiguredRepository } from "./repo.ts";

export interface BinlogArchiveCommandOptions {
  follow?: boolean;
  node?: string;
  repo?: string;
  /** Tests: override binlog.flushInterval (ms). */
  flushIntervalMs?: number;
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
    const flushIntervalMs = o.flushIntervalMs ?? parseDuration(cfg?.flushInterval ?? "5m");
    out.note(
      `archiving binlogs; the open file is flushed every ${Math.round(flushIntervalMs / 1000)} s (SIGTERM stops)`,
    );
    // Recorded: every flushing pass, every pass that archived something or found a gap, and the
    // first failure after a success; quiet polls in between (every few seconds) are not.
    let failing = false;
    const gaps = await archiveFollow({
      ...base,
      signal: abort.signal,
      flushIntervalMs,
      runPass: (flush, pass) =>
        recordedPass(flush, pass, (r) => {
          const keep = r
            ? flush || r.archived.length + r.skipped.length + r.gaps.length > 0 || failing
            : flush || !failing;
          failing = r === undefined;
          return keep;
        }),
      onError: (e) => out.note(`strongbox: binlog archive: ${errorMessage(e)}`),
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
