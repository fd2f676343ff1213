// binlog archive: copies the closed binary logs of one Synced node into the repository, each file
// zstd-compressed and age-encrypted like backup parts, and records it in the signed index.
//
// Galera with wsrep_gtid_mode=ON gives every transaction the same GTID on every node, but each node
// has its own binlog files (names, sizes and positions differ). So continuity is tracked by GTID, not
// by file: when the archiving node fails, another node's files are read until the one that holds the
// GTID after the last archived one; earlier files are recorded as "skipped" (nothing new in them).
// Overlap is harmless (replay starts each file after the last applied GTID); a GTID that no node
// has any more is recorded as a "gap" entry and reported as an error.
import { createHash } from "node:crypto";
import { createReadStream } from "node:fs";
import { rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { pipeline } from "node:stream/promises";
import { createZstdCompress, constants as zlibConstants } from "node:zlib";
import { createEncryptStream } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode } from "../galera/connection.ts";
import {
  type Connection,
  type Credentials,
  connectNode,
  queryRows,
  type TlsOptions,
} from "../galera/connection.ts";
import { probeNode, rankDonors } from "../galera/health.ts";
import { formatGtid, type Gtid, gtidInList, parseGtid } from "../mariadb/gtid.ts";
import {
  appendEntry,
  type BinlogEntry,
  binlogObjectKey,
  readTrustedIndex,
  signEntry,
} from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import { OPTION_FILE, optionFileFd, privateTempDir } from "../util/optionfile.ts";
import { run, sleep } from "../util/proc.ts";
import { scanBinlogFile } from "./scan.ts";

export interface ArchiveOptions {
  repo: Repository;
  nodes: ClusterNode[];
  /** Needs REPLICATION SLAVE (binlog dump), BINLOG MONITOR (SHOW BINARY LOGS) and RELOAD (flush). */
  creds: Credentials;
  tls?: TlsOptions | undefined;
  /** Preferred node (binlog.node, else cluster.backupNode) and the writer, avoided. */
  preferNode?: string | undefined;
  writerNode?: string | undefined;
  recipients: AgeRecipient[];
  /** Their names, recorded in each file's index entry (key rotation skips what is current). */
  recipientNames?: string[];
  signing: { privateKeyPem: string; publicKey: string };
  /** FLUSH BINARY LOGS first, so the open file is closed and archived too. */
  flush?: boolean;
  mariadbBinlog?: string;
  log?: (message: string) => void;
  signal?: AbortSignal;
}

export interface ArchiveResult {
  node: string;
  archived: BinlogEntry[];
  skipped: BinlogEntry[];
  gaps: BinlogEntry[];
  /** The newest GTID of the cluster domain in the archive after this run. */
  lastGtid: string | null;
  /**
   * Measured after a flushing pass: the newest transaction on the archiving node and its event
   * time (null when the archive already holds it, or when it could not be read).
   */
  head?: { gtid: string | null; at: string | null } | undefined;
}

interface BinaryLog {
  name: string;
  size: number;
}

/** The cluster's GTID domain on a node: wsrep_gtid_domain_id with wsrep_gtid_mode, else gtid_domain_id. */
export async function clusterDomain(conn: Connection): Promise<number> {
  const [row] = await queryRows<{
    mode: string | number | null;
    wsrep: string | number | null;
    local: string | number;
  }>(
    conn,
    "SELECT @@global.gtid_domain_id AS local, " +
      "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'WSREP_GTID_MODE') AS mode, " +
      "(SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_VARIABLES WHERE VARIABLE_NAME = 'WSREP_GTID_DOMAIN_ID') AS wsrep",
  );
  if (row && String(row.mode) === "ON" && row.wsrep !== null) return Number(row.wsrep);
  return Number(row?.local ?? 0);
}

export async function listBinaryLogs(conn: Connection): Promise<BinaryLog[]> {
  try {
    const rows = await queryRows<{ Log_name: string; File_size: string | number }>(conn, "SHOW BINARY LOGS");
    return rows.map((r) => ({ name: r.Log_name, size: Number(r.File_size) }));
  } catch (e) {
    throw new StrongboxError("BINLOG_NOT_ENABLED", `SHOW BINARY LOGS failed: ${(e as Error).message}`, {
      stage: "binlog-list",
      hint: "the node needs log_bin, log_slave_updates and wsrep_gtid_mode=ON; the account needs BINLOG MONITOR",
      cause: e,
    });
  }
}

/** Copies one binlog file from the server with the replication protocol; credentials via an unnamed file. */
async function fetchBinlog(
  node: ClusterNode,
  creds: Credentials,
  tls: TlsOptions | undefined,
  file: string,
  dir: string,
  o: { mariadbBinlog?: string | undefined; signal?: AbortSignal | undefined },
): Promise<string> {
  const client: Record<string, string | number | boolean | undefined> = {
    user: creds.user,
    password: creds.password,
    ...(node.socket ? { socket: node.socket } : { host: node.host, port: node.port, protocol: "TCP" }),
    ...(tls
      ? { "ssl-ca": tls.ca, "ssl-cert": tls.cert, "ssl-key": tls.key, "ssl-verify-server-cert": true }
      : {}),
  };
  await run(
    o.mariadbBinlog ?? "mariadb-binlog",
    [`--defaults-file=${OPTION_FILE}`, "--read-from-remote-server", "--raw", `--result-file=${dir}/`, file],
    {
      signal: o.signal,
      label: `mariadb-binlog --read-from-remote-server ${file}`,
      timeoutMs: 3_600_000,
      optionFd: optionFileFd({ client }),
    },
  );
  return join(dir, file);
}

/** file → zstd → age → storage, hashing the stored bytes on the way; memory stays bounded. */
async function storeEncrypted(
  repo: Repository,
  key: string,
  path: string,
  recipients: AgeRecipient[],
  signal?: AbortSignal,
): Promise<{ size: number; sha256: string }> {
  const hash = createHash("sha256");
  let size = 0;
  const zstd = createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
  const enc = createEncryptStream(recipients, (stored) => {
    hash.update(stored);
    size += stored.length;
  });
  const source = createReadStream(path);
  const chain = pipeline(source, zstd, enc, { signal });
  const put = repo.storage.put(key, enc, { signal, ifAbsent: true });
  await Promise.all([chain, put]);
  return { size, sha256: hash.digest("hex") };
}

function lastArchivedSeq(entries: BinlogEntry[], domain: number): { seq: number; server: number } | null {
  let best: { seq: number; server: number } | null = null;
  for (const e of entries) {
    if (e.kind === "gap" || e.domain !== domain) continue;
    const last = e.kind === "file" || e.kind === "skipped" ? e.gtidLast : null;
    if (!last) continue;
    const g = parseGtid(last);
    if (!best || g.seq > best.seq) best = { seq: g.seq, server: g.server };
  }
  return best;
}

/** The newest archived GTID of the domain (files, skipped files, checkpoints), or null. */
export function lastArchived(entries: BinlogEntry[], domain: number): Gtid | null {
  const l = lastArchivedSeq(entries, domain);
  return l ? { domain, server: l.server, seq: l.seq } : null;
}

function binlogNumber(name: string): number {
  return Number(/\.(\d+)$/.exec(name)?.[1] ?? Number.NaN);
}

interface NodePass extends ArchiveResult {
  /** stopAtGap: this node's next file starts after a GTID that is not archived yet. */
  blocked: boolean;
}

/**
 * One pass: the preferred Synced node's closed files. If its next file would leave a hole (the
 * transactions after the last archived one are no longer in its binlogs), every other Synced node
 * is asked for them first; only when none has them is the gap recorded.
 */
export async function archiveOnce(o: ArchiveOptions): Promise<ArchiveResult> {
  const health = await Promise.all(o.nodes.map((n) => probeNode(n, o.creds, { tls: o.tls })));
  const ranked = rankDonors(health, { backupNode: o.preferNode, writerNode: o.writerNode }).map(
    (h) => h.node as ClusterNode,
  );
  const primary = ranked[0]!;
  const result: ArchiveResult = { node: primary.name, archived: [], skipped: [], gaps: [], lastGtid: null };
  const merge = (r: NodePass) => {
    result.archived.push(...r.archived);
    result.skipped.push(...r.skipped);
    result.gaps.push(...r.gaps);
    result.lastGtid = r.lastGtid ?? result.lastGtid;
  };
  let pass = await archiveFromNode(primary, o, ranked.length > 1);
  merge(pass);
  if (pass.blocked) {
    for (const other of ranked.slice(1)) {
      o.log?.(`${primary.name} no longer has the transactions after ${pass.lastGtid}; trying ${other.name}`);
      merge(await archiveFromNode(other, o, true));
      pass = await archiveFromNode(primary, { ...o, flush: false }, true);
      merge(pass);
      if (!pass.blocked) break;
    }
    if (pass.blocked) merge(await archiveFromNode(primary, { ...o, flush: false }, false));
  }
  if (o.flush) result.head = await clusterHead(primary, o, result.lastGtid);
  return result;
}

/**
 * The newest transaction on the node, for the archive's lag: when the archive does not hold it
 * yet, its event time is read from the open binlog (small right after a flush).
 */
async function clusterHead(
  node: ClusterNode,
  o: ArchiveOptions,
  archived: string | null,
): Promise<{ gtid: string | null; at: string | null }> {
  const conn = await connectNode(node, o.creds, { tls: o.tls });
  const tmp = await privateTempDir("strongbox-binlog-");
  try {
    const domain = await clusterDomain(conn);
    const [row] = await queryRows<{ pos: string | null }>(conn, "SELECT @@global.gtid_binlog_pos AS pos");
    const g = gtidInList(row?.pos ?? "", domain);
    if (!g) return { gtid: null, at: null };
    if (archived && parseGtid(archived).seq >= g.seq) return { gtid: formatGtid(g), at: null };
    const open = (await listBinaryLogs(conn)).at(-1);
    if (!open) return { gtid: formatGtid(g), at: null };
    const path = await fetchBinlog(node, o.creds, o.tls, open.name, tmp.path, o);
    const scan = await scanBinlogFile(path, domain, { mariadbBinlog: o.mariadbBinlog, signal: o.signal });
    const last = scan.events.at(-1);
    return { gtid: formatGtid(g), at: last ? new Date(last.at).toISOString() : null };
  } finally {
    await conn.end().catch(() => {});
    await tmp.remove();
  }
}

async function archiveFromNode(node: ClusterNode, o: ArchiveOptions, stopAtGap: boolean): Promise<NodePass> {
  const log = o.log ?? (() => {});
  const conn = await connectNode(node, o.creds, { tls: o.tls });
  const tmp = await privateTempDir("strongbox-binlog-");
  const result: NodePass = {
    node: node.name,
    archived: [],
    skipped: [],
    gaps: [],
    lastGtid: null,
    blocked: false,
  };
  try {
    const domain = await clusterDomain(conn);
    if (o.flush) {
      // LOCAL: not written to the binlog (and so not replayed anywhere); closes the open file.
      await conn.query("FLUSH LOCAL BINARY LOGS");
    }
    const logs = await listBinaryLogs(conn);
    const closed = logs.slice(0, -1);
    const entries = await readTrustedIndex(o.repo, o.signing.publicKey);
    let nextSeq = entries.reduce((m, e) => Math.max(m, e.seq), 0) + 1;
    const done = new Set(entries.filter((e) => e.node === node.name && e.kind !== "gap").map((e) => e.file));
    const newestDone = Math.max(-1, ...[...done].map(binlogNumber).filter((n) => !Number.isNaN(n)));
    const newestNow = Math.max(-1, ...logs.map((l) => binlogNumber(l.name)).filter((n) => !Number.isNaN(n)));
    if (newestNow < newestDone) {
      // A rebuilt node (SST onto a fresh datadir) numbers its binlogs from 1 again: its new files
      // would reuse archived names. Refuse loudly rather than stall silently.
      throw new StrongboxError(
        "BINLOG_NUMBERING_RESTARTED",
        `${node.name}: its newest binlog is number ${newestNow}, but number ${newestDone} was archived from it before`,
        {
          stage: "binlog-list",
          hint: "archive from another node (--node, binlog.node) or move binlogs/<node>/ aside (docs/pitr.md)",
        },
      );
    }
    let last = lastArchivedSeq(entries, domain);
    const todo = closed.filter((l) => !done.has(l.name) && !(binlogNumber(l.name) < newestDone));
    if (todo.length > 0) log(`${node.name}: ${todo.length} closed binlog file(s) to archive`);
    for (const l of todo) {
      o.signal?.throwIfAborted();
      const path = await fetchBinlog(node, o.creds, o.tls, l.name, tmp.path, o);
      const rawSize = (await stat(path)).size;
      const scan = await scanBinlogFile(path, domain, { mariadbBinlog: o.mariadbBinlog, signal: o.signal });
      const first = scan.events[0];
      const lastEv = scan.events[scan.events.length - 1];
      const base = {
        format: 1,
        node: node.name,
        file: l.name,
        rawSize,
        domain,
        gtidFirst: first ? formatGtid(first.gtid) : null,
        gtidLast: lastEv ? formatGtid(lastEv.gtid) : null,
        transactions: scan.events.length,
        firstEventAt: first ? new Date(first.at).toISOString() : null,
        lastEventAt: lastEv ? new Date(lastEv.at).toISOString() : null,
        gap: null,
      };
      if (first && last && first.gtid.seq > last.seq + 1 && stopAtGap) {
        result.blocked = true;
        await rm(path, { force: true });
        break;
      }
      if (first && last && first.gtid.seq > last.seq + 1) {
        const gap = signEntry(
          {
            ...base,
            seq: nextSeq++,
            kind: "gap",
            file: "",
            gtidFirst: null,
            gtidLast: null,
            firstEventAt: null,
            lastEventAt: null,
            key: null,
            rawSize: 0,
            size: 0,
            sha256: null,
            transactions: 0,
            gap: {
              after: formatGtid({ domain, server: last.server, seq: last.seq }),
              before: formatGtid(first.gtid),
            },
            archivedAt: new Date().toISOString(),
          },
          o.signing.privateKeyPem,
          o.signing.publicKey,
        );
        await appendEntry(o.repo, gap);
        result.gaps.push(gap);
        log(`GAP: transactions after ${gap.gap!.after} up to ${gap.gap!.before} are on no node any more`);
      }
      if (lastEv && last && lastEv.gtid.seq <= last.seq) {
        const e = signEntry(
          {
            ...base,
            seq: nextSeq++,
            kind: "skipped",
            key: null,
            size: 0,
            sha256: null,
            archivedAt: new Date().toISOString(),
          },
          o.signing.privateKeyPem,
          o.signing.publicKey,
        );
        await appendEntry(o.repo, e);
        result.skipped.push(e);
      } else {
        const key = binlogObjectKey(node.name, l.name);
        const stored = await storeEncrypted(o.repo, key, path, o.recipients, o.signal);
        const e = signEntry(
          {
            ...base,
            seq: nextSeq++,
            kind: "file",
            key,
            ...stored,
            archivedAt: new Date().toISOString(),
            ...(o.recipientNames ? { recipients: o.recipientNames } : {}),
          },
          o.signing.privateKeyPem,
          o.signing.publicKey,
        );
        await appendEntry(o.repo, e);
        result.archived.push(e);
        log(`${node.name}: archived ${l.name} (${e.gtidFirst ?? "-"} … ${e.gtidLast ?? "-"}, ${rawSize} B)`);
        if (lastEv && (!last || lastEv.gtid.seq > last.seq))
          last = { seq: lastEv.gtid.seq, server: lastEv.gtid.server };
      }
      await rm(path, { force: true });
    }
    result.lastGtid = last ? formatGtid({ domain, server: last.server, seq: last.seq }) : null;
    return result;
  } finally {
    await conn.end().catch(() => {});
    await tmp.remove();
  }
}

export function gapError(gaps: BinlogEntry[]): StrongboxError {
  return new StrongboxError(
    "BINLOG_GAP",
    `binlog archive has ${gaps.length} gap(s): ${gaps.map((g) => `after ${g.gap?.after} up to ${g.gap?.before}`).join("; ")}; point-in-time recovery across them is impossible`,
    {
      stage: "binlog-archive",
      hint: "take a new full backup now: recovery to times after it is possible again",
      details: { gaps: gaps.map((g) => g.gap) },
    },
  );
}

export interface FollowOptions extends Omit<ArchiveOptions, "flush"> {
  /** How often the open file is flushed and archived: the bound on data loss (ms). */
  flushIntervalMs: number;
  /** How often closed files are looked for between flushes (ms). */
  pollMs?: number;
  signal: AbortSignal;
  onPass?: (r: ArchiveResult) => void;
  onError?: (e: unknown) => void;
  /** Runs each pass (the caller records it); by default the pass is just run. */
  runPass?: (flush: boolean, pass: () => Promise<ArchiveResult>) => Promise<ArchiveResult>;
}

/**
 * Archives until the signal aborts. A failing node or pass is reported and retried on the next
 * pass (which probes again and moves to another Synced node). Resolves with every gap seen.
 */
export async function archiveFollow(o: FollowOptions): Promise<BinlogEntry[]> {
  const gaps: BinlogEntry[] = [];
  const poll = Math.min(o.pollMs ?? 10_000, o.flushIntervalMs);
  let lastFlush = 0;
  while (!o.signal.aborted) {
    const flush = Date.now() - lastFlush >= o.flushIntervalMs;
    let result: ArchiveResult | undefined;
    const pass = async () => {
      result = await archiveOnce({ ...o, flush });
      return result;
    };
    try {
      await (o.runPass ? o.runPass(flush, pass) : pass());
    } catch (e) {
      if (o.signal.aborted) break;
      // A pass that found a gap throws it (when recorded): the gap is still counted below.
      if (!result || result.gaps.length === 0) o.onError?.(e);
    }
    if (result) {
      const r: ArchiveResult = result;
      if (flush) lastFlush = Date.now();
      gaps.push(...r.gaps);
      if (r.gaps.length > 0) o.onError?.(gapError(r.gaps));
      o.onPass?.(r);
    }
    try {
      await sleep(poll, o.signal);
    } catch {
      break;
    }
  }
  return gaps;
}
