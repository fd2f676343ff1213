// One writer at a time: take the repository's writer lock, keep it alive while the work runs,
// optionally clean up what dead writers left, and release it — the same for backup, copy, prune
// and key rotation.
import { acquireLock, currentHolder } from "./lock.ts";
import type { Repository } from "./repository.ts";

export interface WriterOptions {
  /** What the lock record says this writer is doing ("backup --full", "copy from local"). */
  command: string;
  ttlMs: number;
  /**
   * Remove temp files of dead writers and the objects of uncommitted backups of dead runs, beside
   * the work. Safe only under the lock: every temp object and uncommitted backup is then a dead
   * writer's. The work must create its first object only after `housekeeping` settled.
   */
  housekeeping?: boolean;
  log?: (message: string) => void;
}

export interface WriterSession {
  /** Aborted when the lock is lost (another writer took it over after it expired) or released. */
  signal: AbortSignal;
  /** The committed backup ids of the housekeeping's scan (undefined: no scan was made). */
  housekeeping: Promise<readonly string[] | undefined>;
}

/**
 * The heartbeat renews the lock four times per TTL, between once a second and once every ten
 * minutes. Every renewal is a new lock record (lock.ts), which an append-only repository keeps.
 */
export function heartbeatInterval(ttlMs: number): number {
  return Math.max(1000, Math.min(600_000, ttlMs / 4));
}

async function housekeep(repo: Repository, log: (m: string) => void): Promise<readonly string[] | undefined> {
  const [temps, scan] = await Promise.all([
    repo.storage.cleanupTemp?.(0),
    repo.storage.capabilities.appendOnly ? undefined : repo.scan(),
  ]);
  if (temps) log(`removed ${temps} temporary file(s) of unfinished writes`);
  for (const id of scan?.orphans ?? []) {
    const n = await repo.removeUncommitted(id);
    log(`removed ${n} object(s) of unfinished backup ${id}`);
  }
  return scan?.committed;
}

export async function asWriter<T>(
  repo: Repository,
  o: WriterOptions,
  work: (session: WriterSession) => Promise<T>,
): Promise<T> {
  const lock = await acquireLock(repo.storage, {
    holder: currentHolder(o.command),
    ttlMs: o.ttlMs,
  });
  const stopHeartbeat = lock.startHeartbeat(heartbeatInterval(o.ttlMs));
  const housekeeping = o.housekeeping ? housekeep(repo, o.log ?? (() => {})) : Promise.resolve(undefined);
  housekeeping.catch(() => {});
  try {
    return await work({ housekeeping, signal: lock.signal });
  } finally {
    // Nothing is removed from the repository once the lock is released.
    await housekeeping.catch(() => {});
    stopHeartbeat();
    await lock.release().catch(() => {});
  }
}
