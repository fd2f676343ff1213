import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { StrongboxError } from "../../src/errors.ts";
import {
  acquireLock,
  currentHolder,
  LEGACY_LOCK_KEY,
  LOCK_PREFIX,
  type LockHolder,
  type LockRecord,
  lockRecordKey,
  readLock,
} from "../../src/repository/lock.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import type { PutOptions, Storage } from "../../src/storage/types.ts";
import { wrapStorage } from "../../src/storage/wrap.ts";
import { pidAlive } from "../../src/util/liveness.ts";

const host = hostname();

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ["-e", ""], { stdio: "ignore" });
  await once(child, "exit");
  assert.ok(child.pid);
  return child.pid;
}

function staleRecord(overrides: Partial<LockRecord>): LockRecord {
  const at = new Date(Date.now() - 60_000).toISOString();
  return {
    version: 2,
    seq: 1,
    state: "held",
    token: "0".repeat(32),
    host: "db9.example",
    pid: 4242,
    command: "backup --full",
    acquiredAt: at,
    refreshedAt: at,
    expiresAt: new Date(Date.now() + 3600_000).toISOString(),
    ...overrides,
  };
}

describe("repository lock", () => {
  let dir: string;
  let n = 0;
  let storage: LocalStorage;
  const holder = (command: string): LockHolder => ({ host, pid: process.pid, command });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "strongbox-lock-"));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  /** A fresh repository per test. */
  async function fresh(): Promise<LocalStorage> {
    storage = await LocalStorage.open(join(dir, `repo-${++n}`));
    return storage;
  }
  /** Appends a record after the newest one (as another writer would). */
  async function writeRecord(record: LockRecord): Promise<void> {
    const keys = await recordKeys();
    const seq = keys.length === 0 ? 1 : Number(/(\d{12})/.exec(keys.at(-1)!)![1]) + 1;
    await storage.put(lockRecordKey(seq), Buffer.from(JSON.stringify({ ...record, seq })), {
      ifAbsent: true,
    });
  }
  async function recordKeys(s: Storage = storage): Promise<string[]> {
    const keys: string[] = [];
    for await (const o of s.list(LOCK_PREFIX)) keys.push(o.key);
    return keys.sort();
  }
  async function newestRecord(): Promise<LockRecord> {
    const keys = await recordKeys();
    return JSON.parse(await readFile(join(storage.root, keys.at(-1)!), "utf8")) as LockRecord;
  }

  test("acquire writes a record naming the holder; release writes a release record and tidies", async () => {
    await fresh();
    const lock = await acquireLock(storage, { holder: currentHolder("backup --full"), ttlMs: 60_000 });
    const record = await readLock(storage);
    assert.ok(record);
    assert.equal(record.host, host);
    assert.equal(record.pid, process.pid);
    assert.equal(record.command, "backup --full");
    assert.equal(record.token, lock.record.token);
    const expires = Date.parse(record.expiresAt) - Date.parse(record.acquiredAt);
    assert.equal(expires, 60_000);
    assert.equal(lock.signal.aborted, false);
    await lock.release();
    assert.equal(await readLock(storage), undefined);
    assert.deepEqual(await recordKeys(), [lockRecordKey(2)], "the records before the release are removed");
    assert.equal((await newestRecord()).state, "released");
    assert.equal(lock.signal.aborted, true);
    await lock.release(); // twice is harmless
    assert.deepEqual(await recordKeys(), [lockRecordKey(2)]);
  });

  test("a second acquire is refused, naming the holder and since when", async () => {
    await fresh();
    const first = await acquireLock(storage, { holder: holder("backup --incremental"), ttlMs: 60_000 });
    await assert.rejects(
      acquireLock(storage, { holder: holder("prune"), ttlMs: 60_000 }),
      (error: StrongboxError) => {
        assert.equal(error.code, "REPO_LOCKED");
        assert.ok(
          error.message.includes(`"backup --incremental" (pid ${process.pid} on ${host})`),
          error.message,
        );
        assert.ok(error.message.includes(`since ${first.record.acquiredAt}`), error.message);
        assert.ok(error.message.includes(storage.description));
        assert.match(error.hint ?? "", /expires at/);
        assert.equal(error.details?.command, "backup --incremental");
        return true;
      },
    );
    assert.equal((await readLock(storage))?.token, first.record.token);
    await first.release();
  });

  test("a lock of a dead process on this host is broken", async () => {
    await fresh();
    const pid = await deadPid();
    assert.equal(pidAlive(pid), false);
    await writeRecord(staleRecord({ host, pid }));
    const broken: string[] = [];
    const lock = await acquireLock(storage, {
      holder: holder("backup"),
      ttlMs: 60_000,
      settleMs: 20,
      onBreak: (stale, reason) => broken.push(`${stale.pid}: ${reason}`),
    });
    assert.equal((await readLock(storage))?.token, lock.record.token);
    assert.deepEqual(broken, [`${pid}: its process is no longer running`]);
    await lock.release();
  });

  test("an acquire aborted while confirming (no atomic create) leaves no lock behind", async () => {
    await fresh();
    await writeRecord(staleRecord({ host, pid: await deadPid() }));
    const controller = new AbortController();
    const acquiring = acquireLock(nonAtomic(storage, 0), {
      holder: holder("backup"),
      ttlMs: 60_000,
      settleMs: 10_000,
      signal: controller.signal,
    });
    await delay(100);
    assert.equal((await readLock(storage))?.command, "backup", "created, now confirming");
    controller.abort();
    await assert.rejects(acquiring, { name: "AbortError" });
    assert.equal(await readLock(storage), undefined);
    assert.equal((await newestRecord()).state, "released");
  });

  test("a dead-looking pid on another host is not broken before expiry", async () => {
    await fresh();
    const pid = await deadPid();
    await writeRecord(staleRecord({ host: "db2.example", pid }));
    await assert.rejects(acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000 }), {
      code: "REPO_LOCKED",
      message: new RegExp(`pid ${pid} on db2\\.example`),
    });
  });

  test("an expired lock is broken, whoever held it", async () => {
    await fresh();
    await writeRecord(
      staleRecord({ host: "db2.example", pid: 1, expiresAt: new Date(Date.now() - 1000).toISOString() }),
    );
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000, settleMs: 20 });
    assert.equal((await readLock(storage))?.host, host);
    await lock.release();
  });

  test("an unreadable lock record counts as held until its object's time plus the TTL", async () => {
    await fresh();
    await storage.put(lockRecordKey(1), Buffer.from("not json"));
    await assert.rejects(
      acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000 }),
      (error: StrongboxError) => {
        assert.equal(error.code, "REPO_LOCKED");
        assert.match(error.message, /unreadable lock record \(locks\/writer\/000000000001\.json\)/);
        assert.match(error.hint ?? "", /counts as held until/);
        return true;
      },
    );
    const later = () => Date.now() + 61_000;
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000, now: later });
    assert.equal(lock.record.seq, 2);
    await lock.release();
  });

  test("release and refresh never touch a lock that is no longer ours", async () => {
    await fresh();
    let clock = Date.now();
    const now = () => clock;
    const a = await acquireLock(storage, { holder: holder("backup A"), ttlMs: 1000, now });
    clock += 1500; // A stopped refreshing: its lock expires
    const b = await acquireLock(storage, { holder: holder("backup B"), ttlMs: 1000, now, settleMs: 10 });
    await a.release();
    assert.equal((await readLock(storage))?.token, b.record.token);
    await assert.rejects(a.refresh(), { code: "REPO_LOCK_RELEASED" });

    const c = await (async () => {
      await b.release();
      return acquireLock(storage, { holder: holder("backup C"), ttlMs: 1000, now });
    })();
    clock += 2000;
    const d = await acquireLock(storage, { holder: holder("backup D"), ttlMs: 1000, now, settleMs: 10 });
    await assert.rejects(c.refresh(), (error: StrongboxError) => {
      assert.equal(error.code, "REPO_LOCK_LOST");
      assert.match(error.message, /taken over by "backup D"/);
      return true;
    });
    assert.equal(c.signal.aborted, true);
    assert.equal((c.signal.reason as StrongboxError).code, "REPO_LOCK_LOST");
    await c.release();
    assert.equal((await readLock(storage))?.token, d.record.token);
    await d.release();
  });

  test("refresh appends a record with a later expiry; late but untaken it still holds", async () => {
    await fresh();
    let clock = Date.now();
    const now = () => clock;
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 10_000, now });
    clock += 5000;
    await lock.refresh();
    const record = await readLock(storage);
    assert.equal(record?.seq, 2);
    assert.equal(record?.expiresAt, new Date(clock + 10_000).toISOString());
    assert.equal(record?.acquiredAt, lock.record.acquiredAt);
    assert.equal(record?.refreshedAt, new Date(clock).toISOString());
    // Past its expiry, but nobody took the next number: the create decides, so it is still ours.
    clock += 12_000;
    await lock.refresh();
    assert.equal((await readLock(storage))?.seq, 3);
    await lock.release();
    assert.equal(await readLock(storage), undefined);
  });

  test("without an atomic create, a record too close to expiry counts as lost", async () => {
    await fresh();
    let clock = Date.now();
    const now = () => clock;
    const racy = nonAtomic(storage, 0);
    const lock = await acquireLock(racy, { holder: holder("backup"), ttlMs: 10_000, now, settleMs: 10 });
    clock += 9500; // 500 ms left: less than a tenth of the TTL
    await assert.rejects(lock.refresh(), { code: "REPO_LOCK_LOST", message: /expired at/ });
    assert.equal(lock.signal.aborted, true);
    // Left for the next writer to supersede, not released under its feet.
    await lock.release();
    assert.equal((await readLock(storage))?.token, lock.record.token);
  });

  test("a heartbeat keeps the lock alive and reports when it is lost", async () => {
    await fresh();
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 600 });
    const first = Date.parse(lock.record.expiresAt);
    const lost: StrongboxError[] = [];
    const stop = lock.startHeartbeat(50, (error) => lost.push(error));
    await delay(300);
    assert.ok(Date.parse((await readLock(storage))!.expiresAt) > first, "expiry moved forward");
    stop();
    await delay(50); // let a refresh already under way finish

    // Someone else has taken the lock over (as a breaker would once it expired).
    await writeRecord(staleRecord({ token: "f".repeat(32), command: "prune" }));
    lock.startHeartbeat(50, (error) => lost.push(error));
    await delay(300);
    assert.equal(lost.length, 1);
    assert.equal(lost[0]?.code, "REPO_LOCK_LOST");
    assert.equal(lock.signal.aborted, true);
    await lock.release();
    assert.equal((await readLock(storage))?.command, "prune");
    assert.throws(() => lock.startHeartbeat(1000), RangeError);
  });

  test("concurrent acquirers: exactly one wins", async () => {
    await fresh();
    const results = await Promise.allSettled(
      Array.from({ length: 12 }, (_, i) =>
        acquireLock(storage, { holder: holder(`backup ${i}`), ttlMs: 60_000 }),
      ),
    );
    const winners = results.filter((r) => r.status === "fulfilled");
    assert.equal(winners.length, 1);
    const winner = (winners[0] as PromiseFulfilledResult<Awaited<ReturnType<typeof acquireLock>>>).value;
    for (const r of results) {
      if (r.status === "rejected") {
        assert.equal(r.reason.code, "REPO_LOCKED");
        assert.ok(r.reason.message.includes(`"${winner.record.command}"`));
      }
    }
    await winner.release();
  });

  test("concurrent breakers of one stale lock: exactly one wins", async () => {
    const pid = await deadPid();
    for (let round = 0; round < 5; round++) {
      await fresh();
      await writeRecord(staleRecord({ host, pid }));
      const results = await Promise.allSettled(
        Array.from({ length: 8 }, (_, i) =>
          acquireLock(storage, { holder: holder(`backup ${round}.${i}`), ttlMs: 60_000, settleMs: 150 }),
        ),
      );
      const winners = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
      assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`);
      for (const r of results) if (r.status === "rejected") assert.equal(r.reason.code, "REPO_LOCKED");
      assert.equal((await readLock(storage))?.token, winners[0]!.record.token);
      await winners[0]!.release();
    }
  });

  test("without an atomic create, racing creators of one number leave one holder: the last write", async () => {
    await fresh();
    const pid = await deadPid();
    await writeRecord(staleRecord({ host, pid }));
    // Both check that number 2 is free, then both write it: B's write (later) replaces A's. Only
    // the settle-and-confirm step keeps A from also believing it holds the lock.
    const results = await Promise.allSettled([
      acquireLock(nonAtomic(storage, 10), { holder: holder("backup A"), ttlMs: 60_000, settleMs: 300 }),
      acquireLock(nonAtomic(storage, 100), { holder: holder("backup B"), ttlMs: 60_000, settleMs: 300 }),
    ]);
    const winners = results.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
    assert.equal(winners.length, 1, `${winners.length} holders`);
    const lock = winners[0]!;
    for (const r of results) {
      if (r.status === "rejected") {
        assert.equal(r.reason.code, "REPO_LOCKED");
        assert.ok(r.reason.message.includes(`"${lock.record.command}"`), r.reason.message);
      }
    }
    assert.equal((await readLock(storage))?.token, lock.record.token);
    await lock.release();
  });

  test("a create whose reply was lost and then retried is recognised as ours", async () => {
    await fresh();
    // The first conditional put lands, but the caller sees a dropped connection.
    let dropped = false;
    const lossy: Storage = {
      description: storage.description,
      capabilities: storage.capabilities,
      put: async (key: string, data: Readable | Uint8Array, options?: PutOptions) => {
        const result = await storage.put(key, data, options);
        if (!dropped) {
          dropped = true;
          throw new StrongboxError("STORAGE_UNAVAILABLE", "connection reset after upload");
        }
        return result;
      },
      get: (key, options) => storage.get(key, options),
      stat: (key, options) => storage.stat(key, options),
      list: (prefix, options) => storage.list(prefix, options),
      delete: (key, options) => storage.delete(key, options),
      close: () => storage.close(),
    };
    const core = wrapStorage(lossy, { retry: { baseDelayMs: 1 } });
    const lock = await acquireLock(core, { holder: holder("backup"), ttlMs: 60_000 });
    assert.ok(dropped);
    assert.equal((await readLock(storage))?.token, lock.record.token);
    await lock.release();
    assert.equal(await readLock(storage), undefined);
  });

  test("on append-only storage nothing is deleted or overwritten, round after round", async () => {
    await fresh();
    const core = wrapStorage(storage, { appendOnly: true });
    for (let round = 1; round <= 5; round++) {
      const lock = await acquireLock(core, { holder: holder(`copy ${round}`), ttlMs: 60_000 });
      assert.equal(lock.record.seq, 3 * round - 2);
      await lock.refresh();
      await lock.release();
      assert.equal(await readLock(core), undefined);
    }
    assert.equal((await recordKeys()).length, 15, "every record is kept");
    // A writer killed while holding it: its record is superseded, not removed.
    await writeRecord(staleRecord({ host, pid: await deadPid(), seq: 16 }));
    const broken: string[] = [];
    const lock = await acquireLock(core, {
      holder: holder("copy 6"),
      ttlMs: 60_000,
      onBreak: (_stale, reason) => broken.push(reason),
    });
    assert.deepEqual(broken, ["its process is no longer running"]);
    assert.equal(lock.record.seq, 17);
    await lock.release();
    assert.equal((await recordKeys()).length, 18);
  });

  test("a live lock object of an earlier version is honoured; an expired one is ignored", async () => {
    await fresh();
    const { seq: _seq, state: _state, ...current } = staleRecord({ host: "db2.example" });
    const legacy = { ...current, version: 1 };
    await storage.put(LEGACY_LOCK_KEY, Buffer.from(JSON.stringify(legacy)));
    await assert.rejects(acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000 }), {
      code: "REPO_LOCKED",
      message: /pid 4242 on db2\.example/,
    });
    await storage.put(
      LEGACY_LOCK_KEY,
      Buffer.from(JSON.stringify({ ...legacy, expiresAt: new Date(Date.now() - 1000).toISOString() })),
    );
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 60_000 });
    assert.equal(lock.record.seq, 1);
    await lock.release();
  });

  test("await using releases the lock", async () => {
    await fresh();
    {
      await using lock = await acquireLock(storage, { holder: holder("verify"), ttlMs: 60_000 });
      assert.equal((await readLock(storage))?.token, lock.record.token);
    }
    assert.equal(await readLock(storage), undefined);
  });

  test("the lock file on disk is a readable record, mode 0600", async () => {
    const local = await fresh();
    const lock = await acquireLock(local, { holder: holder("backup"), ttlMs: 60_000 });
    const path = join(local.root, lockRecordKey(1));
    const parsed = JSON.parse(await readFile(path, "utf8")) as LockRecord;
    assert.equal(parsed.command, "backup");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await lock.release();
  });
});

/**
 * The storage with create-if-absent as a check before the write, `gapMs` apart, as a backend
 * without conditional writes does it (capabilities.conditionalCreate: false).
 */
function nonAtomic(storage: Storage, gapMs: number): Storage {
  return {
    description: storage.description,
    capabilities: { ...storage.capabilities, conditionalCreate: false },
    put: async (key: string, data: Readable | Uint8Array, options?: PutOptions) => {
      if (options?.ifAbsent && (await storage.stat(key))) {
        throw new StrongboxError("STORAGE_EXISTS", `${key} exists`);
      }
      await delay(gapMs);
      return storage.put(key, data, { ...options, ifAbsent: false });
    },
    get: (key, options) => storage.get(key, options),
    stat: (key, options) => storage.stat(key, options),
    list: (prefix, options) => storage.list(prefix, options),
    delete: (key, options) => storage.delete(key, options),
    close: () => storage.close(),
  };
}
