// The evidence log: signed, append-only proof of what the repository holds, so that a deleted
// backup, a manifest put back from an older copy (from before a key rotation, say) or a forged one
// dropped in is detected by readers that hold no key (docs/repository-format.md, "Evidence").
//
//   evidence/0000000042.json   one entry per change, created if absent, never replaced or deleted
//
// Each entry carries the whole state: every committed backup's id with the SHA-256 of its manifest,
// and the changes in flight (`pending`) that a writer began and may not have finished. It names the
// previous entry by seq and SHA-256, so the newest entry signed by a trusted key vouches for all
// before it: entries of an earlier signing key stay valid after a rotation without being re-signed.
import { createHash } from "node:crypto";
import { canonicalJson, type SigningKey, sign, signedByTrusted } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { readAll } from "../util/stream.ts";
import type { Repository } from "./repository.ts";

export const EVIDENCE_FORMAT = 1;
export const EVIDENCE_PREFIX = "evidence/";
const KEY_RE = /^evidence\/(\d{10})\.json$/;
const MAX_SEQ = 9_999_999_999;

export type EvidenceEvent =
  | "genesis"
  | "baseline"
  | "commit"
  | "remove"
  | "replace"
  | "settle"
  | "signing-key";

export interface EvidenceEntry {
  format: number;
  /** The repository's id (strongbox-repository.json): an entry is not valid in another repository. */
  repository: string;
  seq: number;
  prev: { seq: number; sha256: string } | null;
  at: string;
  event: EvidenceEvent;
  /** "begin": the change is in `pending`; "done": it is in `backups`. */
  phase: "begin" | "done";
  ids: string[];
  /** Every committed backup: id → SHA-256 of its manifest (manifestDigest). */
  backups: Record<string, string>;
  /** Changes in flight: id → the manifest digest it may have instead, or null (it may be gone). */
  pending: Record<string, string | null>;
  /**
   * `signing-key` entries: objects signed by an earlier key that this entry (and so every later
   * one) vouches for by digest — the binlog index entries, seq → SHA-256 of the entry.
   */
  vouched?: { binlogIndex: Record<string, string> };
  signature?: { algorithm: "ed25519"; publicKey: string; value: string };
}

export function evidenceKey(seq: number): string {
  return `${EVIDENCE_PREFIX}${String(seq).padStart(10, "0")}.json`;
}

function signedBytes(e: EvidenceEntry): Buffer {
  const { signature: _s, ...rest } = e;
  return Buffer.from(canonicalJson(rest), "utf8");
}

/** SHA-256 of a whole entry (signature included): what the next entry's `prev` names. */
export function entryDigest(e: EvidenceEntry): string {
  return createHash("sha256").update(canonicalJson(e)).digest("hex");
}

function signedBy(e: EvidenceEntry, keys: readonly string[]): boolean {
  return signedByTrusted(e.signature, keys, () => signedBytes(e));
}

/** What a reader knows from the log. */
export interface EvidenceView {
  /** The newest entry signed by a trusted key; undefined when the log has none. */
  tail: EvidenceEntry | undefined;
  /** The highest seq of any object under evidence/ (also of entries that fail their check). */
  highestSeq: number;
  /** Entries read and accepted (full reads: the whole chain back from the tail). */
  entries: number;
  /** Entries that fail a check, links that break, entries after the trusted tail. */
  problems: string[];
  /** Full reads: every entry vouched for by the tail, newest first. */
  chain?: EvidenceEntry[];
}

async function readEntry(repo: Repository, key: string): Promise<EvidenceEntry | string> {
  let e: EvidenceEntry;
  try {
    e = JSON.parse((await readAll(await repo.storage.get(key))).toString("utf8")) as EvidenceEntry;
  } catch (err) {
    if ((err as StrongboxError).code === "STORAGE_NOT_FOUND") return "disappeared while being read";
    if (err instanceof SyntaxError) return "not valid JSON";
    throw err;
  }
  if (
    typeof e !== "object" ||
    e === null ||
    e.format !== EVIDENCE_FORMAT ||
    evidenceKey(e.seq) !== key ||
    typeof e.backups !== "object" ||
    e.backups === null ||
    typeof e.pending !== "object" ||
    e.pending === null
  ) {
    return "not an evidence entry (or its seq does not match its name)";
  }
  if (e.repository !== repo.info.id) return `belongs to another repository (${String(e.repository)})`;
  return e;
}

/** One entry by seq, or why it is not a valid one (not checked against any key). */
export function readEvidenceEntry(repo: Repository, seq: number): Promise<EvidenceEntry | string> {
  return readEntry(repo, evidenceKey(seq));
}

async function listSeqs(repo: Repository): Promise<number[]> {
  const seqs: number[] = [];
  for await (const o of repo.storage.list(EVIDENCE_PREFIX)) {
    const m = KEY_RE.exec(o.key);
    if (m) seqs.push(Number(m[1]));
  }
  return seqs.sort((a, b) => a - b);
}

/**
 * Reads the log: from the newest entry down to the first one signed by a trusted key (the tail);
 * with `full`, then back along the `prev` links to the first entry, checking every link.
 */
export async function readEvidence(
  repo: Repository,
  trusted: readonly string[],
  o: { full?: boolean } = {},
): Promise<EvidenceView> {
  const seqs = await listSeqs(repo);
  const view: EvidenceView = { tail: undefined, highestSeq: seqs.at(-1) ?? 0, entries: 0, problems: [] };
  const bySeq = new Map<number, EvidenceEntry | string>();
  const load = async (seq: number) => {
    if (!bySeq.has(seq)) bySeq.set(seq, await readEntry(repo, evidenceKey(seq)));
    return bySeq.get(seq)!;
  };
  let i = seqs.length - 1;
  for (; i >= 0; i--) {
    const e = await load(seqs[i]!);
    if (typeof e !== "string" && signedBy(e, trusted)) {
      view.tail = e;
      break;
    }
    view.problems.push(
      `evidence entry ${evidenceKey(seqs[i]!)} ${typeof e === "string" ? e : "is not signed by a trusted key"}`,
    );
  }
  if (!view.tail) return view;
  view.entries = 1;
  if (!o.full) return view;
  // Back along the links: each entry is vouched for by the (trusted) one after it.
  const vouched = new Set<number>([view.tail.seq]);
  view.chain = [view.tail];
  let cur = view.tail;
  while (cur.prev) {
    const want = cur.prev;
    const e = seqs.includes(want.seq) ? await load(want.seq) : "is missing";
    if (typeof e === "string" || entryDigest(e) !== want.sha256) {
      view.problems.push(
        `evidence entry ${evidenceKey(want.seq)}, named by entry ${cur.seq}, ${typeof e === "string" ? e : "was replaced (its SHA-256 differs)"}: the log was tampered with`,
      );
      break;
    }
    vouched.add(e.seq);
    view.chain.push(e);
    view.entries++;
    cur = e;
  }
  for (const seq of seqs) {
    if (seq < view.tail.seq && !vouched.has(seq)) {
      const e = await load(seq);
      view.problems.push(
        `evidence entry ${evidenceKey(seq)} ${typeof e === "string" ? e : "is not part of the signed chain (dropped in)"}`,
      );
    }
  }
  return view;
}

/** Binlog index entries (by seq, with their SHA-256) vouched for by `signing-key` entries of the chain. */
export function vouchedBinlogEntries(view: EvidenceView): Map<number, string> {
  const out = new Map<number, string>();
  for (const e of view.chain ?? []) {
    for (const [seq, digest] of Object.entries(e.vouched?.binlogIndex ?? {})) {
      if (!out.has(Number(seq))) out.set(Number(seq), digest);
    }
  }
  return out;
}

/** One change of the state: a backup id and its manifest digest after the change (null: gone). */
export interface EvidenceChange {
  id: string;
  digest: string | null;
}

/**
 * Appends entries for a writer holding the writer lock: each change is recorded "begin" (in flight)
 * before the objects change and "done" after. Signs with the writer's key.
 */
export class EvidenceWriter {
  readonly repo: Repository;
  readonly signing: SigningKey;
  private tail: EvidenceEntry | undefined;
  private highestSeq: number;

  private constructor(repo: Repository, signing: SigningKey, view: EvidenceView) {
    this.repo = repo;
    this.signing = signing;
    this.tail = view.tail;
    this.highestSeq = view.highestSeq;
  }

  /** Reads the log's tail (trusting `trusted`, which includes the writer's own key). */
  static async open(
    repo: Repository,
    signing: SigningKey,
    trusted: readonly string[],
  ): Promise<EvidenceWriter> {
    const keys = [...new Set([...trusted, signing.publicKey])];
    return new EvidenceWriter(repo, signing, await readEvidence(repo, keys));
  }

  /** The state of the newest entry (undefined: the log is empty). */
  get state(): EvidenceEntry | undefined {
    return this.tail;
  }

  private async append(
    event: EvidenceEvent,
    phase: "begin" | "done",
    ids: string[],
    backups: Record<string, string>,
    pending: Record<string, string | null>,
    vouched?: EvidenceEntry["vouched"],
  ): Promise<EvidenceEntry> {
    for (let attempt = 0; ; attempt++) {
      const seq = this.highestSeq + 1;
      if (seq > MAX_SEQ) throw new StrongboxError("EVIDENCE_TAMPERED", "the evidence log has no seq left");
      const unsigned: EvidenceEntry = {
        format: EVIDENCE_FORMAT,
        repository: this.repo.info.id,
        seq,
        prev: this.tail ? { seq: this.tail.seq, sha256: entryDigest(this.tail) } : null,
        at: new Date().toISOString(),
        event,
        phase,
        ids,
        backups,
        pending,
        ...(vouched ? { vouched } : {}),
      };
      const entry: EvidenceEntry = {
        ...unsigned,
        signature: {
          algorithm: "ed25519",
          publicKey: this.signing.publicKey,
          value: sign(this.signing.privateKeyPem, signedBytes(unsigned)),
        },
      };
      try {
        await this.repo.storage.put(evidenceKey(seq), Buffer.from(`${JSON.stringify(entry, null, 2)}\n`), {
          ifAbsent: true,
        });
      } catch (e) {
        // We hold the writer lock: an object already there is not a writer's. Step over it (verify
        // reports it), a few times at most.
        if ((e as StrongboxError).code !== "STORAGE_EXISTS" || attempt >= 3) {
          if ((e as StrongboxError).code === "STORAGE_EXISTS") {
            throw new StrongboxError(
              "EVIDENCE_RACE",
              `evidence entry ${evidenceKey(seq)} exists already: another writer, or objects dropped into evidence/`,
              { hint: "run strongbox verify; one writer per repository", cause: e },
            );
          }
          throw e;
        }
        this.highestSeq = seq;
        continue;
      }
      this.highestSeq = seq;
      this.tail = entry;
      return entry;
    }
  }

  /** Records changes in two entries around `act`: in flight before, in the state after. */
  async record<T>(event: EvidenceEvent, changes: EvidenceChange[], act: () => Promise<T>): Promise<T> {
    const before = this.tail;
    const pending = { ...(before?.pending ?? {}) };
    for (const c of changes) pending[c.id] = c.digest;
    await this.append(
      event,
      "begin",
      changes.map((c) => c.id),
      { ...(before?.backups ?? {}) },
      pending,
    );
    const result = await act();
    const backups = { ...(this.tail?.backups ?? {}) };
    const after = { ...(this.tail?.pending ?? {}) };
    for (const c of changes) {
      if (c.digest === null) delete backups[c.id];
      else backups[c.id] = c.digest;
      delete after[c.id];
    }
    await this.append(
      event,
      "done",
      changes.map((c) => c.id),
      backups,
      after,
    );
    return result;
  }

  /**
   * The first entry of a repository, or of one written before the evidence log existed: the
   * committed backups that verify now. Written only when the log has no trusted entry.
   */
  async baseline(event: "genesis" | "baseline", backups: Record<string, string>): Promise<void> {
    if (this.tail) return;
    await this.append(event, "done", Object.keys(backups).sort(), backups, {});
  }

  /**
   * Resolves changes a killed writer left in flight: each pending id is settled to what its
   * manifest is now (`current`: digest, or null when it has none), if that is one of the two
   * states the log allows.
   */
  async settle(current: (id: string) => Promise<string | null>): Promise<string[]> {
    const t = this.tail;
    if (!t || Object.keys(t.pending).length === 0) return [];
    const backups = { ...t.backups };
    const pending = { ...t.pending };
    const settled: string[] = [];
    for (const [id, next] of Object.entries(t.pending)) {
      const now = await current(id);
      const was = t.backups[id] ?? null;
      if (now !== next && now !== was) continue; // neither: leave it for verify to report
      if (now === null) delete backups[id];
      else backups[id] = now;
      delete pending[id];
      settled.push(id);
    }
    if (settled.length > 0) await this.append("settle", "done", settled, backups, pending);
    return settled;
  }

  /**
   * Appends an entry signed with the writer's (new) key that changes no backup: a signing key
   * rotation's mark, vouching for the binlog index entries the earlier key signed.
   */
  async mark(event: "signing-key", vouched: { binlogIndex: Record<string, string> }): Promise<void> {
    await this.append(
      event,
      "done",
      [],
      { ...(this.tail?.backups ?? {}) },
      { ...(this.tail?.pending ?? {}) },
      vouched,
    );
  }
}
