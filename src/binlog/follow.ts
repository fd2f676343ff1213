// binlog archive --follow: continuous archiving. One Synced node streams its binlog events to us
// (stream.ts); every maxDelay/2 the complete transactions received are sealed into a segment
// (segment.ts) and made durable in order, so a committed transaction is in the repository, object
// and signed index entry, within binlog.maxDelay.
//
// Continuity is by GTID. The stream starts after the newest archived GTID (`--start-position`):
// after a restart, a kill -9, or on another node when the streaming one fails, the server sends
// exactly the transactions after it: no gap, no duplicate. When no Synced node has that GTID any
// more (purged), the stream starts at the oldest binlog of the preferred node and a gap entry is
// recorded before the first transaction found.
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode } from "../galera/connection.ts";
import { connectNode, queryRows } from "../galera/connection.ts";
import { isEligible, probeNode, rankDonors } from "../galera/health.ts";
import { formatGtid, type Gtid, gtidInList, parseGtid } from "../mariadb/gtid.ts";
import { type BinlogEntry, readTrustedIndex } from "../repository/binlog-index.ts";
import { sleep } from "../util/proc.ts";
import {
  type ArchiveOptions,
  type ArchiveResult,
  clusterDomain,
  gapError,
  lastArchived,
  listBinaryLogs,
} from "./archive.ts";
import { Rollup, type RollupLimits } from "./rollup.ts";
import { checkpointEntry, gapEntry, type Sealed, sealChunk, spoolFullError, UploadQueue } from "./segment.ts";
import { type BinlogStream, SpoolReader, spoolDirectory, startStream, streamFailure } from "./stream.ts";

export interface StreamFollowOptions
  extends Pick<
    ArchiveOptions,
    | "repo"
    | "nodes"
    | "creds"
    | "tls"
    | "preferNode"
    | "writerNode"
    | "recipients"
    | "recipientNames"
    | "signing"
    | "log"
  > {
  /** binlog.maxDelay: a committed transaction is durable within it (ms). */
  maxDelayMs: number;
  /** binlog.spoolMax: sealed bytes waiting for the storage before receiving pauses. */
  spoolMaxBytes: number;
  /** How often an idle, caught-up archive records a checkpoint, and each run is recorded (ms). */
  checkpointMs: number;
  /** When segments are compacted into one object (default 32 MiB of binlog or 15 minutes). */
  rollup?: RollupLimits | undefined;
  /** Where the spool directory is made (default /dev/shm, else the temp dir). */
  spoolParent?: string | undefined;
  mariadbBinlog?: string | undefined;
  onError?: (e: unknown) => void;
  onDurable?: (e: BinlogEntry) => void;
  /** Every checkpointMs: what became durable since the last call (recorded as a pass). */
  onPass?: (r: ArchiveResult) => Promise<void> | void;
  signal: AbortSignal;
}

interface Current {
  node: ClusterNode;
  stream: BinlogStream;
  reader: SpoolReader;
  dir: string;
  /** Set when the child has exited: its stderr. */
  ended?: { code: number | null; stderr: string };
  /** We stopped it (node no longer Synced, spool full, shutdown): not a failure. */
  stopping: boolean;
}

const HEALTH_MS = 10_000;

/** Archives continuously until the signal aborts; resolves with the gaps recorded. */
export async function streamFollow(o: StreamFollowOptions): Promise<BinlogEntry[]> {
  const log = o.log ?? (() => {});
  const entries = await readTrustedIndex(o.repo, o.signing.publicKey);
  let domain: number | null = entries.length > 0 ? entries[entries.length - 1]!.domain : null;
  let last: Gtid | null = domain === null ? null : lastArchived(entries, domain);
  const gaps: BinlogEntry[] = [];
  let durableSince: BinlogEntry[] = [];
  const queue = new UploadQueue({
    repo: o.repo,
    signing: o.signing,
    nextSeq: entries.reduce((m, e) => Math.max(m, e.seq), 0) + 1,
    signal: o.signal,
    onStorageError: (e) =>
      o.onError?.(
        new StrongboxError(
          "BINLOG_STORAGE",
          `binlog archive: the repository does not take segments (${(e as Error).message}); holding them in memory and retrying`,
          { stage: "binlog-store", cause: e },
        ),
      ),
    onStorageBack: () => log("the repository takes segments again"),
    onDurable: (e) => {
      durableSince.push(e);
      if (e.kind === "gap") gaps.push(e);
      o.onDurable?.(e);
    },
  });
  const spool = await spoolDirectory(o.spoolParent);
  const sealDelay = Math.max(100, Math.floor(o.maxDelayMs / 2));
  const tick = Math.max(50, Math.min(250, Math.floor(o.maxDelayMs / 10)));
  let cur: Current | undefined;
  let streams = 0;
  let paused = false;
  let pendingSince: number | undefined;
  /** Nodes that no longer have the GTID after `last` (cleared when `last` moves). */
  const purgedOn = new Set<string>();
  const avoidUntil = new Map<string, number>();
  let lastHealth = Date.now();
  let lastPass = Date.now();
  let behindAt: number | null = null;

  let rollup: Rollup | undefined;
  const rollupLimits = o.rollup ?? { maxBytes: 32 * 1024 * 1024, maxAgeMs: 15 * 60_000 };
  const finishRollup = async () => {
    const r = rollup;
    rollup = undefined;
    const s = await r?.finish();
    if (s) queue.push(s);
  };

  const push = (s: Sealed) => {
    queue.push(s);
    if (s.entry.kind === "gap") o.onError?.(gapError([{ ...s.entry, seq: 0 } as BinlogEntry]));
  };

  /**
   * Seals what the spool holds complete. On a tick one segment per file read (what arrived while
   * sealing waits for the next one); `drain` (the stream is over) takes everything.
   */
  const sealAll = async (c: Current, drain = false) => {
    let previous: string | undefined;
    for (;;) {
      // Not aborted by the signal: a cut takes milliseconds, and at shutdown it must still run.
      const chunk = await c.reader.take(drain ? undefined : previous);
      if (!chunk || domain === null) return;
      previous = chunk.file;
      const sealed = await sealChunk(chunk, {
        node: c.node.name,
        domain,
        after: last,
        recipients: o.recipients,
        recipientNames: o.recipientNames,
      });
      if (!sealed) continue;
      const s = sealed.sealed;
      const first = parseGtid(s.entry.gtidFirst!);
      const gap = last && first.seq > last.seq + 1;
      if (gap || (rollup && (rollup.node !== c.node.name || rollup.file !== chunk.file)))
        await finishRollup();
      if (last && gap) {
        log(`GAP: transactions after ${formatGtid(last)} up to ${formatGtid(first)} are on no node any more`);
        push(gapEntry(c.node.name, domain, last, first));
      }
      push(s);
      rollup ??= new Rollup(c.node.name, chunk.file, o.recipients);
      rollup.add(s, sealed.raw, chunk.headerLength);
      if (rollup.full(rollupLimits)) await finishRollup();
      last = parseGtid(s.entry.gtidLast!);
      purgedOn.clear();
    }
  };

  const stopCurrent = async () => {
    if (!cur) return;
    const c = cur;
    c.stopping = true;
    await c.stream.stop();
    // Also at shutdown: what arrived complete is sealed and stored before we exit.
    await sealAll(c, true).catch((e) => o.onError?.(e));
    cur = undefined;
    // What is left (an incomplete transaction) is received again from the next stream.
    await rm(c.dir, { recursive: true, force: true });
  };

  const open = async (): Promise<Current> => {
    const health = await Promise.all(o.nodes.map((n) => probeNode(n, o.creds, { tls: o.tls })));
    const ranked = rankDonors(health, { backupNode: o.preferNode, writerNode: o.writerNode }).map(
      (h) => h.node as ClusterNode,
    );
    const now = Date.now();
    const usable = ranked.filter((n) => (avoidUntil.get(n.name) ?? 0) <= now);
    let node = usable.find((n) => !purgedOn.has(n.name));
    // Every Synced node has purged what follows `last`: read the preferred one from its start.
    const fromStart = !node && usable.length > 0 && ranked.every((n) => purgedOn.has(n.name));
    if (fromStart) node = usable[0];
    if (!node) {
      throw new StrongboxError("NO_SYNCED_NODE", "no Synced node to stream binlogs from right now", {
        stage: "binlog-stream",
      });
    }
    const conn = await connectNode(node, o.creds, { tls: o.tls });
    let first: string;
    try {
      const d = await clusterDomain(conn);
      if (domain === null) domain = d;
      const logs = await listBinaryLogs(conn);
      if (!logs[0]) throw new StrongboxError("BINLOG_NOT_ENABLED", `${node.name} has no binary logs`);
      first = logs[0].name;
    } finally {
      await conn.end().catch(() => {});
    }
    const dir = join(spool.path, `s${++streams}`);
    const after = last && !fromStart ? formatGtid(last) : undefined;
    const stream = await startStream({
      node,
      creds: o.creds,
      tls: o.tls,
      afterGtid: after,
      file: first,
      dir,
      mariadbBinlog: o.mariadbBinlog,
    });
    log(`${node.name}: receiving binlog events ${after ? `after ${after}` : `from ${first}`}`);
    const c: Current = {
      node,
      stream,
      reader: new SpoolReader(dir, { mariadbBinlog: o.mariadbBinlog }),
      dir,
      stopping: false,
    };
    void stream.exited.then((r) => {
      c.ended = r;
    });
    return c;
  };

  /** The stream ended by itself: take what arrived, then decide where to go next. */
  const ended = async (c: Current) => {
    await sealAll(c, true);
    cur = undefined;
    await rm(c.dir, { recursive: true, force: true });
    const why = c.ended?.stderr ?? "";
    const kind = streamFailure(why);
    if (kind === "denied") {
      throw new StrongboxError(
        "BACKUP_PRIVILEGES",
        `${c.node.name}: the binlog dump was refused to ${o.creds.user}: ${why}`,
        {
          stage: "binlog-stream",
          hint: `GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO the archiving account (strongbox user grants --method binlog)`,
        },
      );
    }
    if (kind === "purged") {
      purgedOn.add(c.node.name);
      log(`${c.node.name} no longer has the transactions after ${last ? formatGtid(last) : "the start"}`);
      return;
    }
    avoidUntil.set(c.node.name, Date.now() + (kind === "missing" ? 1000 : o.maxDelayMs));
    o.onError?.(
      new StrongboxError(
        "BINLOG_STREAM",
        `${c.node.name}: the binlog stream ended: ${why || `exit ${c.ended?.code}`}`,
        {
          stage: "binlog-stream",
          hint: "archiving continues on another Synced node from the next GTID",
        },
      ),
    );
  };

  /** Periodically: is the node still Synced, is the stream keeping up, is a checkpoint due. */
  const watch = async (c: Current) => {
    const now = Date.now();
    if (now - lastHealth >= HEALTH_MS) {
      lastHealth = now;
      const h = await probeNode(c.node, o.creds, { tls: o.tls });
      if (!isEligible(h)) {
        log(`${c.node.name} is no longer Synced: moving on`);
        await stopCurrent();
        return;
      }
    }
    if (rollup?.full(rollupLimits)) await finishRollup();
    if (now - lastPass < o.checkpointMs || domain === null) return;
    lastPass = now;
    const at = new Date();
    const conn = await connectNode(c.node, o.creds, { tls: o.tls });
    let head: Gtid | undefined;
    try {
      const [row] = await queryRows<{ pos: string | null }>(conn, "SELECT @@global.gtid_binlog_pos AS pos");
      head = gtidInList(row?.pos ?? "", domain);
    } finally {
      await conn.end().catch(() => {});
    }
    const caughtUp = !head || (last !== null && head.seq <= last.seq);
    if (caughtUp && last && queue.length === 0 && (await c.reader.pendingBytes()) === 0) {
      queue.push(checkpointEntry(c.node.name, domain, last, at));
    }
    // Behind for a whole interval without moving: the connection is stuck; reconnect.
    if (!caughtUp && behindAt !== null && last !== null && last.seq <= behindAt) {
      log(`${c.node.name}: the stream stalled behind ${head ? formatGtid(head) : "?"}; reconnecting`);
      await stopCurrent();
    }
    behindAt = caughtUp ? null : (last?.seq ?? -1);
    const done = durableSince;
    durableSince = [];
    await o.onPass?.({
      node: c.node.name,
      archived: done.filter((e) => e.kind === "file"),
      skipped: done.filter((e) => e.kind === "skipped"),
      gaps: done.filter((e) => e.kind === "gap"),
      lastGtid: last ? formatGtid(last) : null,
      head: { gtid: head ? formatGtid(head) : null, at: caughtUp ? null : at.toISOString() },
    });
  };

  let backoff = 1000;
  try {
    while (!o.signal.aborted) {
      if (queue.error) throw queue.error;
      if (!cur && !paused) {
        try {
          cur = await open();
          backoff = 1000;
        } catch (e) {
          o.onError?.(e);
          await sleep(backoff, o.signal).catch(() => {});
          backoff = Math.min(backoff * 2, 15_000);
          continue;
        }
      }
      const nap = sleep(tick, o.signal).catch(() => {});
      await (cur ? Promise.race([nap, cur.stream.exited]) : nap);
      if (o.signal.aborted) break;
      try {
        if (cur) {
          const c = cur;
          const pending = await c.reader.pendingBytes();
          if (pending === 0) pendingSince = undefined;
          else pendingSince ??= Date.now();
          if (c.ended && !c.stopping) await ended(c);
          else if (pendingSince !== undefined && Date.now() - pendingSince >= sealDelay) {
            await sealAll(c);
            pendingSince = (await c.reader.pendingBytes()) > 0 ? Date.now() : undefined;
          }
          if (cur) await watch(cur);
        }
        if (!paused && queue.queuedBytes > o.spoolMaxBytes) {
          paused = true;
          o.onError?.(spoolFullError(o.spoolMaxBytes));
          await stopCurrent();
        } else if (paused && queue.queuedBytes <= o.spoolMaxBytes / 2) {
          paused = false;
          log("the storage caught up: receiving binlog events again");
        }
      } catch (e) {
        if (o.signal.aborted) break;
        if ((e as StrongboxError).code === "BACKUP_PRIVILEGES") throw e;
        o.onError?.(e);
        await stopCurrent().catch(() => {});
      }
    }
  } finally {
    await stopCurrent().catch(() => {});
    await finishRollup().catch(() => rollup?.abandon());
    await queue.flushed();
    await spool.remove();
  }
  if (durableSince.length > 0) {
    await o.onPass?.({
      node: cur?.node.name ?? durableSince[0]!.node,
      archived: durableSince.filter((e) => e.kind === "file"),
      skipped: durableSince.filter((e) => e.kind === "skipped"),
      gaps: durableSince.filter((e) => e.kind === "gap"),
      lastGtid: last ? formatGtid(last) : null,
    });
  }
  if (queue.error && !o.signal.aborted) throw queue.error;
  return gaps;
}
