// One writer per repository, on any storage that can create an object only if it is absent, also
// one that never lets us delete or overwrite anything (an append-only SFTP account, an S3 bucket
// with a deny-delete policy or Object Lock). No GET_LOCK: Galera does not support it, and the lock
// has to protect the repository, not the database.
//
// The lock is a log of small records that are only ever created, never changed:
//
//   locks/writer/000000000041.json   {"state":"held", token A, expiresAt …}     A takes the lock
//   locks/writer/000000000042.json   {"state":"held", token A, expiresAt …}     A's heartbeat
//   locks/writer/000000000043.json   {"state":"released", token A}              A is done
//
// 1. The newest record (highest sequence number) alone says who holds the lock. It is free when
//    there is none, when it says "released", or when it is stale: its expiry has passed, or its
//    holder is a dead process on this host.
// 2. Everything is a create-if-absent of the NEXT number: taking the lock (after the newest record
//    N was found free), a heartbeat (N+1 after the holder's own N) and a release. Of two writers
//    creating the same number exactly one succeeds, so there is no tie to break: the loser of a
//    take re-reads and finds the winner's live record (REPO_LOCKED); a holder whose heartbeat
//    finds its next number taken has lost the lock (a breaker judged it expired).
// 3. Every record carries a random token per acquisition, so a holder recognises its own record,
//    also after a retried create whose first reply was lost.
// 4. On a storage whose create-if-absent is only a check before the write (conditionalCreate:
//    false), two creates of one number can both "succeed"; there the later write is the one that
//    stays, so a writer waits `settleMs` and re-reads its record before believing it, and a holder
//    stops writing once its record is close to expiry.
// 5. A record whose bytes are unreadable (hand-made, truncated by a foreign tool) cannot say when
//    it expires: it counts as held until the object's own modification time plus our TTL.
//
// Where deletes are allowed, a release removes the records before its own; on append-only storage
// they stay (a few hundred bytes per record; one record per heartbeat, see writer.ts). The lock
// object of strongbox before this log, `locks/writer.json`, is still honoured while it is live.
//
// Like every lease, this assumes the clocks of the hosts sharing a repository agree to well within
// the TTL.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { StrongboxError } from "../errors.ts";
import { isStorageError, type Storage, StorageErrorCode } from "../storage/types.ts";
import { pidAlive } from "../util/liveness.ts";
import { readAll } from "../util/stream.ts";

export const LOCK_PREFIX = "locks/writer/";
/** The single lock object of earlier versions: honoured while live, never written. */
export const LEGACY_LOCK_KEY = "locks/writer.json";
const RECORD_RE = /^locks\/writer\/(\d{12})\.json$/;

export function lockRecordKey(seq: number): string {
  return `${LOCK_PREFIX}${String(seq).padStart(12, "0")}.json`;
}

export const LockErrorCode = {
  locked: "REPO_LOCKED",
  lost: "REPO_LOCK_LOST",
  released: "REPO_LOCK_RELEASED",
} as const;

export interface LockHolder {
  host: string;
  pid: number;
  /** What the holder is doing, e.g. "backup --full". */
  command: string;
}

export interface LockRecord extends LockHolder {
  version: 2;
  /** Position in the log (the number in the object's name). */
  seq: number;
  state: "held" | "released";
  /** Random per acquisition: tells a holder its own records from anyone else's. */
  token: string;
  acquiredAt: string;
  refreshedAt: string;
  /** For "released": the time of the release. */
  expiresAt: string;
}

export interface AcquireLockOptions {
  holder: LockHolder;
  /** How long the lock stays valid without a refresh. */
  ttlMs: number;
  signal?: AbortSignal;
  /** Without an atomic create-if-absent: wait before believing a created record (default 1000 ms). */
  settleMs?: number;
  /** Take rounds before giving up when the lock keeps changing hands (default 5). */
  attempts?: number;
  /** Called when a stale lock is superseded (for the log). */
  onBreak?: (stale: LockRecord, reason: string) => void;
  /** Whether a pid on this host is running (test seam). */
  isProcessAlive?: (pid: number) => boolean;
  now?: () => number;
}

export interface Lock extends AsyncDisposable {
  /** The key of our newest record. */
  readonly key: string;
  /** The record as last written by us. */
  readonly record: LockRecord;
  /** Aborted when the lock is lost or released: hand it to the work the lock protects. */
  readonly signal: AbortSignal;
  /** Pushes the expiry forward by the TTL; rejects with REPO_LOCK_LOST when it is no longer ours. */
  refresh(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Refreshes every `intervalMs` (at most half the TTL) until stopped, released or lost. Failed
   * refreshes are retried on the next tick; when the lock is lost, `onLost` is called and `signal`
   * aborted. Returns the stop function.
   */
  startHeartbeat(intervalMs: number, onLost?: (error: StrongboxError) => void): () => void;
  /** Writes a release record if the lock is still ours (never anyone else's), then tidies up. */
  release(): Promise<void>;
}

/** The holder for this process: host name, pid and the command being run. */
export function currentHolder(command: string): LockHolder {
  return { host: hostname(), pid: process.pid, command };
}

interface Observed {
  key: string;
  seq: number;
  /** Undefined when the bytes are not a lock record. */
  record: LockRecord | undefined;
  /** The object's modification time as the storage reports it. */
  modified: Date;
}

function parseRecord(raw: Buffer, seq: number | undefined): LockRecord | undefined {
  try {
    const value = JSON.parse(raw.toString("utf8")) as
      | (Omit<Partial<LockRecord>, "version"> & { version?: number })
      | null;
    const legacy = seq === undefined && value?.version === 1;
    if (
      value &&
      (legacy ||
        (value.version === 2 &&
          value.seq === seq &&
          (value.state === "held" || value.state === "released"))) &&
      typeof value.token === "string" &&
      typeof value.host === "string" &&
      typeof value.pid === "number" &&
      typeof value.command === "string" &&
      typeof value.acquiredAt === "string" &&
      typeof value.expiresAt === "string" &&
      !Number.isNaN(Date.parse(value.expiresAt))
    ) {
      return legacy ? ({ ...value, version: 2, seq: 0, state: "held" } as LockRecord) : (value as LockRecord);
    }
  } catch {
    // not JSON: an unreadable record
  }
  return undefined;
}

async function readRecord(
  storage: Storage,
  key: string,
  seq: number | undefined,
  signal?: AbortSignal,
): Promise<LockRecord | undefined | null> {
  try {
    return parseRecord(await readAll(await storage.get(key, signal ? { signal } : {})), seq);
  } catch (error) {
    if (isStorageError(error, StorageErrorCode.notFound)) return null;
    throw error;
  }
}

/** The newest record of the log, and the legacy lock object if there is one. */
async function newest(
  storage: Storage,
  signal?: AbortSignal,
): Promise<{ head: Observed | undefined; vanished: boolean; legacy: Observed | undefined; seqs: number[] }> {
  let top: { key: string; seq: number; modified: Date } | undefined;
  let legacyInfo: { modified: Date } | undefined;
  const seqs: number[] = [];
  for await (const o of storage.list("locks/", signal ? { signal } : {})) {
    if (o.key === LEGACY_LOCK_KEY) legacyInfo = o;
    const m = RECORD_RE.exec(o.key);
    if (!m) continue;
    const seq = Number(m[1]);
    seqs.push(seq);
    if (!top || seq > top.seq) top = { key: o.key, seq, modified: o.modified };
  }
  const [head, legacy] = await Promise.all([
    top ? readRecord(storage, top.key, top.seq, signal) : undefined,
    legacyInfo ? readRecord(storage, LEGACY_LOCK_KEY, undefined, signal) : undefined,
  ]);
  return {
    head:
      top && head !== null ? { key: top.key, seq: top.seq, record: head, modified: top.modified } : undefined,
    // Listed but gone when read: removed by a release tidying up after writing a newer record,
    // which the next listing shows. Never treat that as an empty log.
    vanished: !!top && head === null,
    legacy:
      legacyInfo && legacy !== null && legacy !== undefined
        ? { key: LEGACY_LOCK_KEY, seq: 0, record: legacy, modified: legacyInfo.modified }
        : undefined,
    seqs,
  };
}

/** Who holds the repository lock right now, if anyone (a stale holder is still reported). */
export async function readLock(storage: Storage, signal?: AbortSignal): Promise<LockRecord | undefined> {
  const { head } = await newest(storage, signal);
  return head?.record?.state === "held" ? head.record : undefined;
}

function encode(record: LockRecord): Buffer {
  return Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
}

function describeHolder(record: LockRecord): string {
  return `"${record.command}" (pid ${record.pid} on ${record.host}) since ${record.acquiredAt}`;
}

/** Why `observed` no longer holds the lock ("" for a release), or undefined while it does. */
function freeReason(
  observed: Observed,
  holder: LockHolder,
  alive: (pid: number) => boolean,
  now: number,
  ttlMs: number,
): string | undefined {
  const record = observed.record;
  if (!record) {
    return now > observed.modified.getTime() + ttlMs
      ? "it is unreadable and older than the lock TTL"
      : undefined;
  }
  if (record.state === "released") return "";
  if (record.host === holder.host && !alive(record.pid)) return "its process is no longer running";
  if (now > Date.parse(record.expiresAt)) return "it has expired";
  return undefined;
}

function lockedError(storage: Storage, observed: Observed, ttlMs: number): StrongboxError {
  const record = observed.record;
  if (!record) {
    const until = new Date(observed.modified.getTime() + ttlMs).toISOString();
    return new StrongboxError(
      LockErrorCode.locked,
      `${storage.description} is locked by an unreadable lock record (${observed.key})`,
      {
        stage: "lock",
        hint: `it counts as held until ${until} (its time plus backup.lockTtl); if no backup, copy or prune is running anywhere, wait for that`,
        details: { key: observed.key, expiresAt: until },
      },
    );
  }
  return new StrongboxError(
    LockErrorCode.locked,
    `${storage.description} is locked by ${describeHolder(record)}`,
    {
      stage: "lock",
      hint: `wait for it to finish; if that process is gone the lock is broken automatically after it expires at ${record.expiresAt}`,
      details: {
        host: record.host,
        pid: record.pid,
        command: record.command,
        since: record.acquiredAt,
        expiresAt: record.expiresAt,
      },
    },
  );
}

/**
 * Creates record `seq`; resolves whether it is ours: false when someone else's is there (also
 * after a retried create whose first attempt landed: then the record there is ours).
 */
async function create(storage: Storage, record: LockRecord, signal?: AbortSignal): Promise<boolean> {
  const key = lockRecordKey(record.seq);
  try {
    await storage.put(key, encode(record), { ifAbsent: true, ...(signal ? { signal } : {}) });
    return true;
  } catch (error) {
    if (!isStorageError(error, StorageErrorCode.exists)) throw error;
  }
  return (await readRecord(storage, key, record.seq, signal))?.token === record.token;
}

export async function acquireLock(storage: Storage, options: AcquireLockOptions): Promise<Lock> {
  const { holder, ttlMs, signal } = options;
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`lock ttlMs must be positive: ${ttlMs}`);
  const now = options.now ?? Date.now;
  const alive = options.isProcessAlive ?? ((pid: number) => pidAlive(pid));
  const settleMs = options.settleMs ?? 1000;
  const attempts = options.attempts ?? 5;
  const atomic = storage.capabilities.conditionalCreate;
  const token = randomBytes(16).toString("hex");

  for (let attempt = 1; attempt <= attempts; attempt++) {
    signal?.throwIfAborted();
    const at = now();
    const { head, vanished, legacy } = await newest(storage, signal);
    if (vanished) continue;
    if (legacy && freeReason(legacy, holder, alive, at, ttlMs) === undefined) {
      throw lockedError(storage, legacy, ttlMs);
    }
    const reason = head ? freeReason(head, holder, alive, at, ttlMs) : "";
    if (head && reason === undefined) throw lockedError(storage, head, ttlMs);
    const mine: LockRecord = {
      version: 2,
      seq: (head?.seq ?? 0) + 1,
      state: "held",
      token,
      host: holder.host,
      pid: holder.pid,
      command: holder.command,
      acquiredAt: new Date(at).toISOString(),
      refreshedAt: new Date(at).toISOString(),
      expiresAt: new Date(at + ttlMs).toISOString(),
    };
    if (!(await create(storage, mine, signal))) continue; // another writer took this number first
    if (!atomic) {
      // Rule 4: a racing create of the same number may have replaced ours.
      try {
        await delay(settleMs, undefined, signal ? { signal } : {});
        if ((await readRecord(storage, lockRecordKey(mine.seq), mine.seq, signal))?.token !== token) continue;
      } catch (error) {
        await writeRelease(storage, mine, now).catch(() => {});
        throw error;
      }
    }
    if (head?.record && reason) options.onBreak?.(head.record, reason);
    return new HeldLock(storage, mine, ttlMs, now);
  }
  throw new StrongboxError(
    LockErrorCode.locked,
    `could not take the lock of ${storage.description} after ${attempts} attempts: other processes keep taking it`,
    { stage: "lock", hint: "another backup or prune is starting at the same moment; try again" },
  );
}

/** Record `last.seq + 1`: "released" by the holder of `last`. Resolves whether it was ours to write. */
function writeRelease(storage: Storage, last: LockRecord, now: () => number): Promise<boolean> {
  const at = new Date(now()).toISOString();
  return create(storage, { ...last, seq: last.seq + 1, state: "released", refreshedAt: at, expiresAt: at });
}

/** Where deletes are allowed: remove the records before `seq` (never the newest one). */
async function tidy(storage: Storage, seq: number): Promise<void> {
  if (storage.capabilities.appendOnly) return;
  const { seqs } = await newest(storage);
  for (const s of seqs.filter((n) => n < seq)) await storage.delete(lockRecordKey(s));
}

class HeldLock implements Lock {
  record: LockRecord;
  private readonly storage: Storage;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly controller = new AbortController();
  private stopHeartbeat: (() => void) | undefined;
  /** Serialises refreshes and the release: each writes the number after the last one. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(storage: Storage, record: LockRecord, ttlMs: number, now: () => number) {
    this.storage = storage;
    this.record = record;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  get key(): string {
    return lockRecordKey(this.record.seq);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private serial<T>(step: () => Promise<T>): Promise<T> {
    const next = this.queue.then(step, step);
    this.queue = next.catch(() => {});
    return next;
  }

  refresh(options: { signal?: AbortSignal } = {}): Promise<void> {
    return this.serial(async () => {
      if (this.signal.aborted) throw this.signal.reason;
      const at = this.now();
      // Rule 4: without an atomic create, a breaker may already be writing over a record this
      // close to expiry: stop rather than race it.
      if (
        !this.storage.capabilities.conditionalCreate &&
        Date.parse(this.record.expiresAt) - at < this.ttlMs / 10
      ) {
        throw this.lose(
          `the lock of ${this.storage.description} expired at ${this.record.expiresAt} before it could be refreshed`,
        );
      }
      const next: LockRecord = {
        ...this.record,
        seq: this.record.seq + 1,
        refreshedAt: new Date(at).toISOString(),
        expiresAt: new Date(at + this.ttlMs).toISOString(),
      };
      if (!(await create(this.storage, next, options.signal))) {
        const taker = await readRecord(this.storage, lockRecordKey(next.seq), next.seq).catch(
          () => undefined,
        );
        throw this.lose(
          taker
            ? `the lock of ${this.storage.description} was taken over by ${describeHolder(taker)}`
            : `the lock of ${this.storage.description} was taken over (record ${lockRecordKey(next.seq)})`,
        );
      }
      this.record = next;
    });
  }

  startHeartbeat(intervalMs: number, onLost?: (error: StrongboxError) => void): () => void {
    if (!(intervalMs > 0 && intervalMs <= this.ttlMs / 2)) {
      throw new RangeError(`heartbeat interval ${intervalMs} ms must be positive and at most half the TTL`);
    }
    this.stopHeartbeat?.();
    let busy = false;
    const timer = setInterval(() => {
      if (busy) return;
      busy = true;
      this.refresh()
        .catch(() => {
          // A transient failure is retried on the next tick.
          if (this.signal.aborted) {
            stop();
            const reason = this.signal.reason;
            if (reason instanceof StrongboxError && reason.code === LockErrorCode.lost) onLost?.(reason);
          }
        })
        .finally(() => {
          busy = false;
        });
    }, intervalMs);
    // The work the lock protects keeps the process alive, not the heartbeat.
    timer.unref();
    const stop = () => {
      clearInterval(timer);
      if (this.stopHeartbeat === stop) this.stopHeartbeat = undefined;
    };
    this.stopHeartbeat = stop;
    return stop;
  }

  release(): Promise<void> {
    this.stopHeartbeat?.();
    return this.serial(async () => {
      if (this.signal.aborted) return;
      try {
        if (await writeRelease(this.storage, this.record, this.now)) {
          await tidy(this.storage, this.record.seq + 1).catch(() => {});
        }
      } finally {
        this.controller.abort(
          new StrongboxError(LockErrorCode.released, `the lock of ${this.storage.description} was released`, {
            stage: "lock",
          }),
        );
      }
    });
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }

  private lose(message: string): StrongboxError {
    const error = new StrongboxError(LockErrorCode.lost, message, {
      stage: "lock",
      hint: "another process may now be writing to the repository; this run stops without committing",
    });
    this.stopHeartbeat?.();
    if (!this.signal.aborted) this.controller.abort(error);
    return error;
  }
}
