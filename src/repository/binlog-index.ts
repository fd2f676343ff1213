// The signed binlog index: one small signed object per archived file, skipped duplicate or gap,
// under binlogs/index/<seq>.json, written create-if-absent. Only key rotation replaces an entry
// (re-signed, naming the re-wrapped object), as it replaces manifests. Readers list the prefix and
// verify every entry, so a tampered, forged or dropped-in entry is detected.
//
//   binlogs/<node>/<file>.zst.age     the binlog file: zstd, then age v1 to the recipients
//   binlogs/index/0000000042.json     what it holds: node, file, size, sha256, GTID range, times
import { createHash } from "node:crypto";
import type { Readable } from "node:stream";
import { canonicalJson, sign, signedByTrusted } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { readAll } from "../util/stream.ts";
import { type CheckedReadOptions, readChecked } from "./checked-read.ts";
import { readEvidence, vouchedBinlogEntries } from "./evidence.ts";
import type { Repository } from "./repository.ts";

export const BINLOG_INDEX_FORMAT = 1;
export const INDEX_PREFIX = "binlogs/index/";

export type BinlogEntryKind =
  /** An archived binlog file. */
  | "file"
  /** A closed file whose GTIDs were all archived already from another node: nothing stored. */
  | "skipped"
  /** GTIDs that are on no node any more: recovery across this point is impossible. */
  | "gap";

export interface BinlogEntry {
  format: number;
  seq: number;
  kind: BinlogEntryKind;
  node: string;
  /** Binlog file name on that node ("" for a gap). */
  file: string;
  /** Storage key of the encrypted file (kind "file" only). */
  key: string | null;
  rawSize: number;
  /** Stored (encrypted) bytes and their SHA-256, hex. */
  size: number;
  sha256: string | null;
  /** The cluster's GTID domain (wsrep_gtid_domain_id) the range is in. */
  domain: number;
  gtidFirst: string | null;
  gtidLast: string | null;
  /** Number of transactions (GTIDs of the domain) in the file. */
  transactions: number;
  /** Event times of the first and last transaction, UTC, whole seconds. */
  firstEventAt: string | null;
  lastEventAt: string | null;
  /** kind "gap": the last GTID archived before it and the first one found after it. */
  gap: { after: string; before: string } | null;
  archivedAt: string;
  /**
   * The recipients the stored file is encrypted to (kind "file"). Absent in entries written before
   * it was recorded: key rotation then re-wraps the file whatever its recipients.
   */
  recipients?: string[];
  /**
   * A segment sealed from a continuous stream (binlog archive --follow): it proves the archive
   * complete up to its last event only, not up to archivedAt (later transactions may have been in
   * flight). Absent: a whole file closed by a flush just before archivedAt.
   */
  streamed?: boolean;
  signature?: { algorithm: "ed25519"; publicKey: string; value: string };
}

export function indexKey(seq: number): string {
  return `${INDEX_PREFIX}${String(seq).padStart(10, "0")}.json`;
}

export function binlogObjectKey(node: string, file: string): string {
  return `binlogs/${node}/${file}.zst.age`;
}

function signedBytes(e: BinlogEntry): Buffer {
  const { signature: _s, ...rest } = e;
  return Buffer.from(canonicalJson(rest), "utf8");
}

export function signEntry(e: BinlogEntry, privateKeyPem: string, publicKey: string): BinlogEntry {
  const { signature: _s, ...rest } = e;
  return {
    ...rest,
    signature: { algorithm: "ed25519", publicKey, value: sign(privateKeyPem, signedBytes(rest)) },
  };
}

export function entryVerifies(e: BinlogEntry, trusted: string | readonly string[]): boolean {
  return signedByTrusted(e.signature, trusted, () => signedBytes(e));
}

export interface IndexRead {
  entries: BinlogEntry[];
  /** Keys whose object is not a valid entry or fails its signature check. */
  bad: { key: string; reason: string }[];
}

/** SHA-256 of a whole entry (signature included): what a key rotation's evidence vouches for. */
export function binlogEntryDigest(e: BinlogEntry): string {
  return createHash("sha256").update(canonicalJson(e)).digest("hex");
}

/**
 * Every entry in seq order; with trusted keys, entries that fail the signature go to `bad`, unless
 * the evidence log vouches for them (entries signed by a key retired by `key rotate --signing`).
 */
export async function readIndex(
  repo: Repository,
  trustedPublicKey?: string | readonly string[],
): Promise<IndexRead> {
  let vouched: Map<number, string> | undefined;
  const vouchedFor = async (e: BinlogEntry) => {
    if (trustedPublicKey === undefined) return false;
    const keys = typeof trustedPublicKey === "string" ? [trustedPublicKey] : trustedPublicKey;
    vouched ??= vouchedBinlogEntries(await readEvidence(repo, keys, { full: true }));
    return vouched.get(e.seq) === binlogEntryDigest(e);
  };
  const keys: string[] = [];
  for await (const o of repo.storage.list(INDEX_PREFIX)) {
    if (/^binlogs\/index\/\d{10}\.json$/.test(o.key)) keys.push(o.key);
  }
  keys.sort();
  const out: IndexRead = { entries: [], bad: [] };
  for (const key of keys) {
    let e: BinlogEntry;
    try {
      e = JSON.parse((await readAll(await repo.storage.get(key))).toString("utf8")) as BinlogEntry;
    } catch {
      out.bad.push({ key, reason: "not valid JSON" });
      continue;
    }
    if (typeof e !== "object" || e === null || e.format !== BINLOG_INDEX_FORMAT || indexKey(e.seq) !== key) {
      out.bad.push({ key, reason: "not a binlog index entry (or its seq does not match its name)" });
      continue;
    }
    if (trustedPublicKey !== undefined && !entryVerifies(e, trustedPublicKey) && !(await vouchedFor(e))) {
      out.bad.push({ key, reason: "signature check failed: modified, or signed by another key" });
      continue;
    }
    out.entries.push(e);
  }
  return out;
}

/** Reads the index and refuses to go on if any entry fails its check (restore must not trust it). */
export async function readTrustedIndex(
  repo: Repository,
  trustedPublicKey: string | readonly string[],
): Promise<BinlogEntry[]> {
  const r = await readIndex(repo, trustedPublicKey);
  if (r.bad.length > 0) {
    throw new StrongboxError(
      "BINLOG_INDEX_TAMPERED",
      `binlog index of repository ${repo.name}: ${r.bad.map((b) => `${b.key}: ${b.reason}`).join("; ")}`,
      { hint: "do not trust this archive; compare with an offsite copy (strongbox verify)" },
    );
  }
  return r.entries;
}

/** Appends an entry; the seq is taken create-if-absent, so two archivers cannot both write it. */
export async function appendEntry(repo: Repository, e: BinlogEntry): Promise<void> {
  try {
    await repo.storage.put(indexKey(e.seq), Buffer.from(`${JSON.stringify(e, null, 2)}\n`), {
      ifAbsent: true,
    });
  } catch (err) {
    if ((err as StrongboxError).code === "STORAGE_EXISTS") {
      throw new StrongboxError(
        "BINLOG_INDEX_RACE",
        `binlog index entry ${e.seq} exists already: is another \`binlog archive\` running on this repository?`,
        {
          hint: "run one archiver per repository",
          cause: err,
        },
      );
    }
    throw err;
  }
}

/** Key rotation only: atomically replaces an entry with a re-signed one of the same seq. */
export async function replaceEntry(repo: Repository, e: BinlogEntry): Promise<void> {
  await repo.storage.put(indexKey(e.seq), Buffer.from(`${JSON.stringify(e, null, 2)}\n`));
}

/**
 * An archived binlog's stored bytes, checked against its signed index entry as they are read
 * (BINLOG_CORRUPT on a size or SHA-256 mismatch): the one read of binlog objects.
 */
export function readBinlogChecked(
  repo: Repository,
  e: BinlogEntry & { key: string },
  signal?: AbortSignal,
  o: Omit<CheckedReadOptions, "signal"> = {},
): Promise<Readable> {
  return readChecked(
    repo.storage,
    { key: e.key, size: e.size, sha256: e.sha256 },
    (x) =>
      new StrongboxError(
        "BINLOG_CORRUPT",
        x.kind === "hash"
          ? `archived binlog ${e.key}: SHA-256 differs from the index (damaged or replaced)`
          : `archived binlog ${e.key}: ${x.kind === "larger" ? "more than " : ""}${x.size} bytes stored, the index says ${e.size}`,
        { stage: "binlog-fetch", hint: "the object was damaged or replaced; use an offsite copy" },
      ),
    { ...o, signal },
  );
}
