// binlog archive [--follow] [--node N] [--repo R]
import { archiveFollow, archiveOnce, gapError } from "../binlog/archive.ts";
import { clusterNodes, clusterTls, credentialsFor, recipientsOf, signingKeyOf } from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { errorMessage, UsageError } from "../errors.ts";
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
    const base = {
      repo,
      nodes,
      creds,
      tls: clusterTls(loaded),
      preferNode,
      writerNode: loaded.config.cluster.writerNode,
      recipients: (await recipientsOf(loaded)).age,
      signing,
      log: (m: string) => out.log(m),
      signal: abort.signal,
    };
    if (!o.follow) {
      const r = await archiveOnce({ ...base, flush: true });
      out.result(
        r,
        () =>
          `${r.node}: ${r.archived.length} file(s) archived, ${r.skipped.length} already covered; archive ends at ${r.lastGtid ?? "(empty)"}`,
      );
      if (r.gaps.length > 0) throw gapError(r.gaps);
      return { exitCode: 0, result: r };
    }
    const flushIntervalMs = o.flushIntervalMs ?? parseDuration(cfg?.flushInterval ?? "5m");
    out.note(
      `archiving binlogs; the open file is flushed every ${Math.round(flushIntervalMs / 1000)} s (SIGTERM stops)`,
    );
    const gaps = await archiveFollow({
      ...base,
      signal: abort.signal,
      flushIntervalMs,
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
