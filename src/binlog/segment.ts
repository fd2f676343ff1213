// Segments: the complete transactions a binlog stream delivered, sealed (zstd, then age to the
// recipients, like parts) into a small binlog file of their own, and made durable in order: the
// object first, then its signed index entry. Sealed segments wait in memory until the storage took
// them (the encrypted bytes only: the plaintext has left the spool); the bound on that queue is
// binlog.spoolMax.
import { createHash, randomBytes } from "node:crypto";
import { constants as zlibConstants, zstdCompressSync } from "node:zlib";
import { encryptBuffer } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import { formatGtid, type Gtid } from "../mariadb/gtid.ts";
import { appendEntry, type BinlogEntry, indexKey, signEntry } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import { sleep } from "../util/proc.ts";
import { readAll } from "../util/stream.ts";
import type { Chunk } from "./stream.ts";

/** An index entry before its seq and signature are given (at the moment it is written). */
export type UnsignedEntry = Omit<BinlogEntry, "seq" | "signature">;

export interface Sealed {
  entry: UnsignedEntry;
  object?: { key: string; bytes: Buffer };
  /** A rollup: the segments it replaces, deleted once it is durable. */
  replaces?: Sealed[];
  /** The index seq it was written with (set when durable). */
  seq?: number;
}

/**
 * binlogs/<node>/stream/<file>.<first seq>-<last seq>.<random>[.rollup].zst.age. The random part
 * makes the key this sealing's own: a run killed after storing an object but before indexing it,
 * then the next run sealing the same range, never meet at one key (age output differs each time).
 * So an object found at our key on a retried put is our own, stored before its answer was lost.
 */
export function segmentKey(node: string, file: string, first: Gtid, last: Gtid, kind = ""): string {
  const own = randomBytes(4).toString("hex");
  return `binlogs/${node}/stream/${file}.${first.seq}-${last.seq}.${own}${kind}.zst.age`;
}

/**
 * The transactions of `chunk` after `after` (of the cluster's domain), as a sealed segment; null
 * when the chunk holds nothing new. Transactions of other domains ride along.
 */
export async function sealChunk(
  chunk: Chunk,
  o: {
    node: string;
    domain: number;
    after: Gtid | null;
    recipients: AgeRecipient[];
    /** Recorded in the entry: key rotation re-wraps only what is not encrypted to the current set. */
    recipientNames?: string[] | undefined;
  },
): Promise<{ sealed: Sealed; raw: Buffer } | null> {
  const mine = chunk.transactions.filter((t) => t.gtid.domain === o.domain);
  const fresh = o.after ? mine.filter((t) => t.gtid.seq > o.after!.seq) : mine;
  const first = fresh[0];
  const last = fresh.at(-1);
  if (!first || !last) return null;
  // Everything from the first new transaction on: earlier ones are archived already.
  const raw =
    first.start === chunk.headerLength
      ? chunk.bytes
      : Buffer.concat([chunk.bytes.subarray(0, chunk.headerLength), chunk.bytes.subarray(first.start)]);
  const compressed = zstdCompressSync(raw, { params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
  const stored = await encryptBuffer(compressed, o.recipients);
  const key = segmentKey(o.node, chunk.file, first.gtid, last.gtid);
  const sealed: Sealed = {
    object: { key, bytes: stored },
    entry: {
      format: 1,
      kind: "file",
      node: o.node,
      file: `${chunk.file}@${first.gtid.seq}-${last.gtid.seq}`,
      key,
      rawSize: raw.length,
      size: stored.length,
      sha256: createHash("sha256").update(stored).digest("hex"),
      domain: o.domain,
      gtidFirst: formatGtid(first.gtid),
      gtidLast: formatGtid(last.gtid),
      transactions: fresh.length,
      firstEventAt: new Date(first.at).toISOString(),
      lastEventAt: new Date(last.at).toISOString(),
      gap: null,
      archivedAt: "",
      streamed: true,
      ...(o.recipientNames ? { recipients: o.recipientNames } : {}),
    },
  };
  return { sealed, raw };
}

/** A gap entry: the transactions after `after` up to `before` are on no node any more. */
export function gapEntry(node: string, domain: number, after: Gtid, before: Gtid): Sealed {
  return {
    entry: {
      format: 1,
      kind: "gap",
      node,
      file: "",
      key: null,
      rawSize: 0,
      size: 0,
      sha256: null,
      domain,
      gtidFirst: null,
      gtidLast: null,
      transactions: 0,
      firstEventAt: null,
      lastEventAt: null,
      gap: { after: formatGtid(after), before: formatGtid(before) },
      archivedAt: "",
    },
  };
}

/**
 * A checkpoint: at `at` the streaming node had nothing after `last`, so the archive is complete up
 * to then (what lets a restore reach a second after the last transaction of an idle cluster).
 */
export function checkpointEntry(node: string, domain: number, last: Gtid, at: Date): Sealed {
  return {
    entry: {
      format: 1,
      kind: "skipped",
      node,
      file: "checkpoint",
      key: null,
      rawSize: 0,
      size: 0,
      sha256: null,
      domain,
      gtidFirst: formatGtid(last),
      gtidLast: formatGtid(last),
      transactions: 0,
      firstEventAt: null,
      lastEventAt: null,
      gap: null,
      archivedAt: at.toISOString(),
    },
  };
}

export interface QueueOptions {
  repo: Repository;
  signing: { privateKeyPem: string; publicKey: string };
  /** The next free index seq. */
  nextSeq: number;
  /** Called once per outage with the storage's error, and when it is over. */
  onStorageError?: (e: unknown) => void;
  onStorageBack?: () => void;
  onDurable?: (e: BinlogEntry) => void;
  signal: AbortSignal;
}

/**
 * Writes sealed segments in order, one at a time: object (create-if-absent), then index entry.
 * A storage error is retried with backoff for as long as it takes; nothing is dropped.
 */
export class UploadQueue {
  private items: Sealed[] = [];
  private bytes = 0;
  private running: Promise<void> | undefined;
  private failing = false;
  private fatal: unknown;
  /** The checkpoint entry this run wrote last: replaced (deleted) when a newer one is durable. */
  private lastCheckpoint: number | undefined;
  nextSeq: number;
  private readonly o: QueueOptions;

  constructor(o: QueueOptions) {
    this.o = o;
    this.nextSeq = o.nextSeq;
  }

  /** Encrypted bytes waiting for the storage. */
  get queuedBytes(): number {
    return this.bytes;
  }
  get length(): number {
    return this.items.length;
  }
  get storageFailing(): boolean {
    return this.failing;
  }
  /** An error that stops archiving (another archiver on the repository). */
  get error(): unknown {
    return this.fatal;
  }

  push(s: Sealed): void {
    this.items.push(s);
    this.bytes += s.object?.bytes.length ?? 0;
    this.running ??= this.drain().finally(() => {
      this.running = undefined;
    });
  }

  /** Resolves when everything pushed so far is durable (or the signal aborted). */
  async flushed(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    let backoff = 500;
    while (this.items.length > 0 && !this.fatal) {
      const s = this.items[0]!;
      try {
        await this.write(s);
        this.items.shift();
        this.bytes -= s.object?.bytes.length ?? 0;
        backoff = 500;
        if (this.failing) {
          this.failing = false;
          this.o.onStorageBack?.();
        }
      } catch (e) {
        if ((e as StrongboxError).code === "BINLOG_INDEX_RACE" || this.o.signal.aborted) {
          this.fatal = e;
          return;
        }
        if (!this.failing) {
          this.failing = true;
          this.o.onStorageError?.(e);
        }
        await sleep(backoff, this.o.signal).catch(() => {});
        backoff = Math.min(backoff * 2, 10_000);
      }
    }
  }

  private async write(s: Sealed): Promise<void> {
    if (s.object) {
      try {
        await this.o.repo.storage.put(s.object.key, s.object.bytes, { ifAbsent: true });
      } catch (e) {
        // A put that succeeded but whose answer was lost, retried: the key is ours (segmentKey).
        if ((e as StrongboxError).code !== "STORAGE_EXISTS") throw e;
      }
    }
    const seq = this.nextSeq;
    const signed = signEntry(
      { ...s.entry, seq, archivedAt: s.entry.archivedAt || new Date().toISOString() } as BinlogEntry,
      this.o.signing.privateKeyPem,
      this.o.signing.publicKey,
    );
    await appendEntry(this.o.repo, signed);
    this.nextSeq++;
    s.seq = seq;
    for (const r of s.replaces ?? []) {
      // Index entry first (the segment stops being part of the archive), then its object. An
      // append-only storage refuses both: the segments stay, harmless (replay picks the rollup).
      if (r.seq === undefined) continue;
      // The object the entry names now: a key rotation may have re-wrapped it under a new name.
      const named = await readAll(await this.o.repo.storage.get(indexKey(r.seq)))
        .then((b) => (JSON.parse(b.toString("utf8")) as BinlogEntry).key)
        .catch(() => null);
      const gone = await this.o.repo.storage.delete(indexKey(r.seq)).then(
        () => true,
        () => false,
      );
      if (!gone) continue;
      for (const key of new Set([named, r.object?.key])) {
        if (key) await this.o.repo.storage.delete(key).catch(() => {});
      }
    }
    if (signed.kind === "skipped" && signed.file === "checkpoint") {
      // Only the newest checkpoint says anything; an append-only storage keeps the old ones.
      if (this.lastCheckpoint !== undefined) {
        await this.o.repo.storage.delete(indexKey(this.lastCheckpoint)).catch(() => {});
      }
      this.lastCheckpoint = seq;
    }
    this.o.onDurable?.(signed);
  }
}

export function spoolFullError(limit: number): StrongboxError {
  return new StrongboxError(
    "BINLOG_SPOOL_FULL",
    `binlog archive: ${limit} bytes of sealed binlog segments are waiting for the storage (binlog.spoolMax): receiving paused until the storage takes them`,
    {
      stage: "binlog-stream",
      hint: "bring the repository's storage back; the nodes keep the binlogs meanwhile (binlog_expire_logs_seconds)",
    },
  );
}
