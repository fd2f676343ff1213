// One writer per repository: a lease object `locks/writer.json`, created with an atomic
// create-if-absent on any Storage (no GET_LOCK: Galera does not support it, and the lock has to
// protect the repository, not the database). The record names its holder and an expiry that a
// running holder pushes forward with heartbeats; a lock whose process is gone (same host, dead
// pid) or whose expiry has passed is stale and is broken by the next writer.
//
// How breaking stays safe with only create-if-absent, get and an unconditional delete:
//
// 1. A breaker reads the record, decides it is stale, reads it again and deletes it only if the
//    bytes are unchanged, then competes for the key with create-if-absent like everyone else. A
//    record changed meanwhile (a refresh, a new holder) is left alone.
// 2. The remaining race is two breakers of the same stale record: both re-read it, A deletes it
//    and creates its own record, then B's delete (decided on its now-outdated read) removes A's
//    record and B creates one. So whoever created the lock after seeing a stale one waits
//    `settleMs` (longer than a re-read-then-delete takes) and reads the key again: if its token is
//    no longer there it lost and starts over, finding the winner's live record (REPO_LOCKED).
//    Of A and B only the later creator still sees its own token after the wait.
// 3. A holder never overwrites or deletes its record once it is close to expiry (less than a tenth
//    of the TTL left): from then on a breaker may act on it, so the holder declares the lock lost
//    (aborting `lock.signal`) instead of writing over a newer holder's record. Heartbeats at a
//    third of the TTL or less keep a live holder far from that point.
// 4. Every record carries a random token, so a holder recognises its own record (also after a
//    retried create whose first reply was lost) and never deletes someone else's.
//
// Like every lease, this assumes clocks of the hosts sharing a repository agree to well within
// the TTL and that a storage request does not take longer than `settleMs` to land.
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { setTimeout as delay } from "node:timers/promises";
import { StrongboxError } from "../errors.ts";
import { isStorageError, type Storage, StorageErrorCode } from "../storage/types.ts";
import { pidAlive } from "../util/liveness.ts";
import { readAll } from "../util/stream.ts";

export const LOCK_KEY = "locks/writer.json";

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
  version: 1;
  /** Random per acquisition: tells a holder its own record from a newer one. */
  token: string;
  acquiredAt: string;
  refreshedAt: string;
  expiresAt: string;
}

export interface AcquireLockOptions {
  holder: LockHolder;
  /** How long the lock stays valid without a refresh. */
  ttlMs: number;
  signal?: AbortSignal;
  /** Wait before confirming a lock created after breaking a stale one (default 1000 ms). */
  settleMs?: number;
  /** Create/break rounds before giving up when the lock keeps changing hands (default 5). */
  attempts?: number;
  /** Called when a stale lock is broken (for the log). */
  onBreak?: (stale: LockRecord, reason: string) => void;
  /** Whether a pid on this host is running (test seam). */
  isProcessAlive?: (pid: number) => boolean;
  now?: () => number;
}

export interface Lock extends AsyncDisposable {
  readonly key: string;
  /** The record as last written by us. */
  readonly record: LockRecord;
  /** Aborted when the lock is lost or released: hand it to the work the lock protects. */
  readonly signal: AbortSignal;
  /** Pushes the expiry forward by the TTL; rejects with REPO_LOCK_LOST when it is no longer ours. */
  refresh(options?: { signal?: AbortSignal }): Promise<void>;
  /**
   * Refreshes every `intervalMs` (at most half the TTL; a third is a good choice) until stopped,
   * released or lost. Failed refreshes are retried on the next tick; when the lock is lost,
   * `onLost` is called and `signal` aborted. Returns the stop function.
   */
  startHeartbeat(intervalMs: number, onLost?: (error: StrongboxError) => void): () => void;
  /** Deletes the lock if it is still ours (never someone else's). */
  release(): Promise<void>;
}

/** The holder for this process: host name, pid and the command being run. */
export function currentHolder(command: string): LockHolder {
  return { host: hostname(), pid: process.pid, command };
}

interface Observed {
  raw: Buffer;
  /** Undefined when the bytes are not a lock record (hand-edited, foreign). */
  record: LockRecord | undefined;
}

function parseRecord(raw: Buffer): LockRecord | undefined {
  try {
    const value = JSON.parse(raw.toString("utf8")) as Partial<LockRecord> | null;
    if (
      value &&
      value.version === 1 &&
      typeof value.token === "string" &&
      typeof value.host === "string" &&
      typeof value.pid === "number" &&
      typeof value.command === "string" &&
      typeof value.acquiredAt === "string" &&
      typeof value.expiresAt === "string" &&
      !Number.isNaN(Date.parse(value.expiresAt))
    ) {
      return value as LockRecord;
    }
  } catch {
    // not JSON: reported as an unreadable record
  }
  return undefined;
}

async function observe(storage: Storage, signal?: AbortSignal): Promise<Observed | undefined> {
  let raw: Buffer;
  try {
    raw = await readAll(await storage.get(LOCK_KEY, signal ? { signal } : {}));
  } catch (error) {
    if (isStorageError(error, StorageErrorCode.notFound)) return undefined;
    throw error;
  }
  return { raw, record: parseRecord(raw) };
}

/** Who holds the repository lock right now, if anyone (for `status`). */
export async function readLock(storage: Storage, signal?: AbortSignal): Promise<LockRecord | undefined> {
  return (await observe(storage, signal))?.record;
}

function encode(record: LockRecord): Buffer {
  return Buffer.from(`${JSON.stringify(record, null, 2)}\n`);
}

function describeHolder(record: LockRecord): string {
  return `"${record.command}" (pid ${record.pid} on ${record.host}) since ${record.acquiredAt}`;
}

export async function acquireLock(storage: Storage, options: AcquireLockOptions): Promise<Lock> {
  const { holder, ttlMs, signal } = options;
  if (!(Number.isFinite(ttlMs) && ttlMs > 0)) throw new RangeError(`lock ttlMs must be positive: ${ttlMs}`);
  const now = options.now ?? Date.now;
  const alive = options.isProcessAlive ?? ((pid: number) => pidAlive(pid));
  const settleMs = options.settleMs ?? 1000;
  const attempts = options.attempts ?? 5;
  const token = randomBytes(16).toString("hex");
  let contested = false;

  for (let attempt = 1; attempt <= attempts; attempt++) {
    signal?.throwIfAborted();
    const at = now();
    const mine: LockRecord = {
      version: 1,
      token,
      host: holder.host,
      pid: holder.pid,
      command: holder.command,
      acquiredAt: new Date(at).toISOString(),
      refreshedAt: new Date(at).toISOString(),
      expiresAt: new Date(at + ttlMs).toISOString(),
    };
    let created = false;
    try {
      await storage.put(LOCK_KEY, encode(mine), { ifAbsent: true, ...(signal ? { signal } : {}) });
      created = true;
    } catch (error) {
      if (!isStorageError(error, StorageErrorCode.exists)) throw error;
    }
    const observed = created ? { raw: encode(mine), record: mine } : await observe(storage, signal);
    if (observed?.record?.token === token) {
      if (contested) {
        // Rule 2 above: a second breaker of the same stale record may still delete ours.
        try {
          await delay(settleMs, undefined, signal ? { signal } : {});
          const confirmed = await observe(storage, signal);
          if (confirmed?.record?.token !== token) continue;
        } catch (error) {
          await removeIfOurs(storage, token);
          throw error;
        }
      }
      return new HeldLock(storage, observed.record, ttlMs, now);
    }
    if (!observed) continue; // released between our create and our read
    const stale = staleReason(observed, holder, alive, at);
    if (!stale || !observed.record) throw lockedError(storage, observed);
    contested = true;
    // Rule 1: delete only the very record we judged stale.
    const again = await observe(storage, signal);
    if (again?.raw.equals(observed.raw)) {
      await storage.delete(LOCK_KEY, signal ? { signal } : {});
      options.onBreak?.(observed.record, stale);
    }
  }
  throw new StrongboxError(
    LockErrorCode.locked,
    `could not take the lock of ${storage.description} after ${attempts} attempts: other processes keep taking or breaking it`,
    { stage: "lock", hint: "another backup or prune is starting at the same moment; try again" },
  );
}

/** Best effort, for an acquire abandoned after its record was written: never leave it behind. */
async function removeIfOurs(storage: Storage, token: string): Promise<void> {
  try {
    if ((await observe(storage))?.record?.token === token) await storage.delete(LOCK_KEY);
  } catch {
    // it expires by itself
  }
}

function staleReason(
  observed: Observed,
  holder: LockHolder,
  alive: (pid: number) => boolean,
  now: number,
): string | undefined {
  const record = observed.record;
  // An unreadable record has no expiry we can trust: it only goes away by hand (see the hint).
  if (!record) return undefined;
  if (record.host === holder.host && !alive(record.pid)) return "its process is no longer running";
  if (now > Date.parse(record.expiresAt)) return "it has expired";
  return undefined;
}

function lockedError(storage: Storage, observed: Observed): StrongboxError {
  const record = observed.record;
  if (!record) {
    return new StrongboxError(
      LockErrorCode.locked,
      `${storage.description} is locked by an unreadable lock record (${LOCK_KEY})`,
      {
        stage: "lock",
        hint: `if no backup, copy or prune is running on any host, delete ${LOCK_KEY} in the repository`,
        details: { key: LOCK_KEY },
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

class HeldLock implements Lock {
  readonly key = LOCK_KEY;
  record: LockRecord;
  private readonly storage: Storage;
  private readonly ttlMs: number;
  private readonly now: () => number;
  private readonly controller = new AbortController();
  private stopHeartbeat: (() => void) | undefined;

  constructor(storage: Storage, record: LockRecord, ttlMs: number, now: () => number) {
    this.storage = storage;
    this.record = record;
    this.ttlMs = ttlMs;
    this.now = now;
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Rule 3: below this much time left, a breaker may already be acting on our record. */
  private get safetyMs(): number {
    return this.ttlMs / 10;
  }

  async refresh(options: { signal?: AbortSignal } = {}): Promise<void> {
    if (this.signal.aborted) throw this.signal.reason;
    const observed = await observe(this.storage, options.signal);
    const record = observed?.record;
    if (record?.token !== this.record.token) {
      throw this.lose(
        record
          ? `the lock of ${this.storage.description} was taken over by ${describeHolder(record)}`
          : `the lock of ${this.storage.description} has disappeared`,
      );
    }
    const at = this.now();
    if (Date.parse(record.expiresAt) - at < this.safetyMs) {
      throw this.lose(
        `the lock of ${this.storage.description} expired at ${record.expiresAt} before it could be refreshed`,
      );
    }
    const next: LockRecord = {
      ...record,
      refreshedAt: new Date(at).toISOString(),
      expiresAt: new Date(at + this.ttlMs).toISOString(),
    };
    await this.storage.put(LOCK_KEY, encode(next), options.signal ? { signal: options.signal } : {});
    this.record = next;
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
          // A transient failure is retried on the next tick; refresh() itself declares the lock
          // lost once too little time is left.
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

  async release(): Promise<void> {
    this.stopHeartbeat?.();
    if (this.signal.aborted) return;
    try {
      const observed = await observe(this.storage);
      const record = observed?.record;
      // Not ours any more, or so close to expiry that a breaker may be deleting it right now: a
      // stale record is broken by the next writer anyway, so leave it.
      if (record?.token === this.record.token && Date.parse(record.expiresAt) - this.now() >= this.safetyMs) {
        await this.storage.delete(LOCK_KEY);
      }
    } finally {
      this.controller.abort(
        new StrongboxError(LockErrorCode.released, `the lock of ${this.storage.description} was released`, {
          stage: "lock",
        }),
      );
    }
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
