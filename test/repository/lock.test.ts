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
  LOCK_KEY,
  type LockHolder,
  type LockRecord,
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
    version: 1,
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
  async function writeRecord(record: LockRecord): Promise<void> {
    await storage.put(LOCK_KEY, Buffer.from(JSON.stringify(record)));
  }

  test("acquire writes a record naming the holder; release removes it", async () => {
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
    assert.equal(await storage.stat(LOCK_KEY), undefined);
    assert.equal(lock.signal.aborted, true);
    await lock.release(); // twice is harmless
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

  test("an acquire aborted after breaking a stale lock leaves no lock behind", async () => {
    await fresh();
    await writeRecord(staleRecord({ host, pid: await deadPid() }));
    const controller = new AbortController();
    const acquiring = acquireLock(storage, {
      holder: holder("backup"),
      ttlMs: 60_000,
      settleMs: 10_000,
      signal: controller.signal,
    });
    await delay(100);
    assert.equal((await readLock(storage))?.command, "backup", "created, now confirming");
    controller.abort();
    await assert.rejects(acquiring, { name: "AbortError" });
    assert.equal(await storage.stat(LOCK_KEY), undefined);
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

  test("an unreadable lock record is not broken automatically", async () => {
    await fresh();
    await storage.put(LOCK_KEY, Buffer.from("not json"));
    await assert.rejects(
      acquireLock(storage, { holder: holder("backup"), ttlMs: 1 }),
      (error: StrongboxError) => {
        assert.equal(error.code, "REPO_LOCKED");
        assert.match(error.message, /unreadable lock record/);
        assert.match(error.hint ?? "", /delete locks\/writer\.json/);
        return true;
      },
    );
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

  test("refresh extends the expiry; too close to expiry the lock counts as lost", async () => {
    await fresh();
    let clock = Date.now();
    const now = () => clock;
    const lock = await acquireLock(storage, { holder: holder("backup"), ttlMs: 10_000, now });
    clock += 5000;
    await lock.refresh();
    const record = await readLock(storage);
    assert.equal(record?.expiresAt, new Date(clock + 10_000).toISOString());
    assert.equal(record?.acquiredAt, lock.record.acquiredAt);
    assert.equal(record?.refreshedAt, new Date(clock).toISOString());
    clock += 9500; // 500 ms left: less than a tenth of the TTL
    await assert.rejects(lock.refresh(), { code: "REPO_LOCK_LOST", message: /expired at/ });
    assert.equal(lock.signal.aborted, true);
    // The record is left for the next writer to break, not deleted under its feet.
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

  test("a breaker whose delete lands late does not leave two holders", async () => {
    await fresh();
    const pid = await deadPid();
    await writeRecord(staleRecord({ host, pid }));
    // Both read the same stale record; A deletes it and creates its own lock, then B's delete
    // (decided on its earlier read) lands and removes A's record. Only the settle-and-confirm step
    // keeps A from also believing it holds the lock.
    const slowDeletes = (ms: number): Storage => ({
      description: storage.description,
      capabilities: storage.capabilities,
      put: (key, data, options) => storage.put(key, data, options),
      get: (key, options) => storage.get(key, options),
      stat: (key, options) => storage.stat(key, options),
      list: (prefix, options) => storage.list(prefix, options),
      delete: async (key, options) => {
        await delay(ms);
        return storage.delete(key, options);
      },
      close: () => storage.close(),
    });
    const results = await Promise.allSettled([
      acquireLock(slowDeletes(10), { holder: holder("backup A"), ttlMs: 60_000, settleMs: 300 }),
      acquireLock(slowDeletes(100), { holder: holder("backup B"), ttlMs: 60_000, settleMs: 300 }),
    ]);
    // Normally A loses (its record was deleted by B's late delete); under heavy load the order may
    // differ, but never with two holders.
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
    assert.equal(await storage.stat(LOCK_KEY), undefined);
  });

  test("works on an append-only storage that leaves locks/ mutable", async () => {
    await fresh();
    const core = wrapStorage(storage, { appendOnly: true, mutablePrefixes: ["locks/"] });
    const lock = await acquireLock(core, { holder: holder("copy"), ttlMs: 60_000 });
    await lock.refresh();
    await lock.release();
    assert.equal(await storage.stat(LOCK_KEY), undefined);
  });

  test("await using releases the lock", async () => {
    await fresh();
    {
      await using lock = await acquireLock(storage, { holder: holder("verify"), ttlMs: 60_000 });
      assert.equal((await readLock(storage))?.token, lock.record.token);
    }
    assert.equal(await storage.stat(LOCK_KEY), undefined);
  });

  test("the lock file on disk is a readable record, mode 0600", async () => {
    const local = await fresh();
    const lock = await acquireLock(local, { holder: holder("backup"), ttlMs: 60_000 });
    const path = join(local.root, "locks", "writer.json");
    const parsed = JSON.parse(await readFile(path, "utf8")) as LockRecord;
    assert.equal(parsed.command, "backup");
    assert.equal((await stat(path)).mode & 0o777, 0o600);
    await lock.release();
  });
});
