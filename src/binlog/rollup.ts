// Compaction of streamed segments. Sealing every few seconds makes many small objects; the backup
// host cannot decrypt them later to merge them (it holds no identity). So the archiver compacts
// while it still has the plaintext: every chunk it seals also goes into a rollup, one compress +
// encrypt stream per node binlog file, whose encrypted output waits in memory (a few MiB). When the
// rollup is big or old enough (or the stream moves to another file or node), it is stored as one
// object with one index entry covering all its segments' GTIDs; then the segments' index entries
// and objects are deleted. Until that, both are in the repository (replay picks one by GTID).
// A rollup lost with a killed archiver leaves its segments as they are: nothing is missing.
import { createHash } from "node:crypto";
import type { Transform } from "node:stream";
import { createZstdCompress, constants as zlibConstants } from "node:zlib";
import { createEncryptStream } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { formatGtid, type Gtid, parseGtid } from "../mariadb/gtid.ts";
import { type Sealed, segmentKey } from "./segment.ts";

export interface RollupLimits {
  /** Plaintext bytes after which the rollup is stored. */
  maxBytes: number;
  /** Age (ms) after which the rollup is stored. */
  maxAgeMs: number;
}

export class Rollup {
  readonly node: string;
  readonly file: string;
  readonly startedAt = Date.now();
  /** The segments it replaces, in order. */
  readonly segments: Sealed[] = [];
  private rawSize = 0;
  private readonly out: Buffer[] = [];
  private readonly hash = createHash("sha256");
  private size = 0;
  private readonly zstd: Transform;
  private readonly enc: Transform;
  private readonly done: Promise<void>;

  constructor(node: string, file: string, recipients: AgeRecipient[]) {
    this.node = node;
    this.file = file;
    this.zstd = createZstdCompress({ params: { [zlibConstants.ZSTD_c_compressionLevel]: 3 } });
    this.enc = createEncryptStream(recipients, (b) => {
      this.hash.update(b);
      this.size += b.length;
      this.out.push(b);
    });
    this.zstd.pipe(this.enc);
    this.enc.resume();
    this.done = new Promise((resolve, reject) => {
      this.enc.once("end", resolve);
      this.enc.once("error", reject);
      this.zstd.once("error", reject);
    });
  }

  /** Adds a sealed segment's bytes: the header only with the first, then its transactions. */
  add(s: Sealed, raw: Buffer, headerLength: number): void {
    const part = this.segments.length === 0 ? raw : raw.subarray(headerLength);
    this.zstd.write(part);
    this.rawSize += part.length;
    this.segments.push(s);
  }

  full(l: RollupLimits): boolean {
    return this.rawSize >= l.maxBytes || Date.now() - this.startedAt >= l.maxAgeMs;
  }

  /** The rollup as a sealed object; null (nothing to store) when it replaces fewer than 2 segments. */
  async finish(): Promise<Sealed | null> {
    this.zstd.end();
    await this.done;
    if (this.segments.length < 2) return null;
    const first = this.segments[0]!.entry;
    const last = this.segments.at(-1)!.entry;
    const g1: Gtid = parseGtid(first.gtidFirst!);
    const g2: Gtid = parseGtid(last.gtidLast!);
    const key = segmentKey(this.node, this.file, g1, g2, ".rollup");
    return {
      object: { key, bytes: Buffer.concat(this.out) },
      replaces: [...this.segments],
      entry: {
        ...first,
        file: `${this.file}@${g1.seq}-${g2.seq}`,
        key,
        rawSize: this.rawSize,
        size: this.size,
        sha256: this.hash.digest("hex"),
        gtidFirst: formatGtid(g1),
        gtidLast: formatGtid(g2),
        transactions: this.segments.reduce((n, s) => n + s.entry.transactions, 0),
        lastEventAt: last.lastEventAt,
        archivedAt: "",
      },
    };
  }

  /** Drops it (the stream failed mid-way): its segments stay. */
  abandon(): void {
    this.zstd.destroy();
    this.enc.destroy();
    this.done.catch(() => {});
  }
}
