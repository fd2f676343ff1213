// The sandbox dataset and write load, on a real 3-node Galera cluster; parseSize and formatBytes as units.
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { StrongboxError } from "../../src/errors.ts";
import { type Connection, queryRows } from "../../src/galera/connection.ts";
import { type DatasetSummary, datasetChecksum, dropDataset, loadDataset } from "../../src/sandbox/dataset.ts";
import { planDataset } from "../../src/sandbox/dataset-plan.ts";
import { Rng } from "../../src/sandbox/dataset-values.ts";
import { runWriteLoad, WRITER_SOURCE } from "../../src/sandbox/writer.ts";
import { formatBytes, parseSize } from "../../src/util/size.ts";
import { useCluster } from "../helpers/cluster.ts";

const cluster = useCluster();
const SIZE = 20_000_000;

describe("parseSize and formatBytes", () => {
  it("reads decimal, binary and my.cnf-style units", () => {
    assert.equal(parseSize("200MB"), 200_000_000);
    assert.equal(parseSize("1GB"), 1_000_000_000);
    assert.equal(parseSize("512MiB"), 512 * 1024 ** 2);
    assert.equal(parseSize("1.5G"), 1.5 * 1024 ** 3);
    assert.equal(parseSize("256M"), 256 * 1024 ** 2);
    assert.equal(parseSize(" 64 kib "), 65_536);
    assert.equal(parseSize("2tb"), 2e12);
    assert.equal(parseSize("100"), 100);
    assert.equal(parseSize("100B"), 100);
    assert.equal(parseSize(4096), 4096);
  });

  it("rejects junk with BAD_SIZE", () => {
    for (const junk of ["", "MB", "abc", "12XB", "-5MB", "1.2.3MB", "1e3MB", "5 M B", "0x10"] as const) {
      assert.throws(
        () => parseSize(junk),
        (e: unknown) => e instanceof StrongboxError && e.code === "BAD_SIZE",
        `parseSize(${JSON.stringify(junk)})`,
      );
    }
    for (const junk of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => parseSize(junk), { code: "BAD_SIZE" });
    }
    assert.throws(() => parseSize("99999999999TiB"), { code: "BAD_SIZE" });
  });

  it("formats with binary units", () => {
    assert.equal(formatBytes(0), "0 B");
    assert.equal(formatBytes(1023), "1023 B");
    assert.equal(formatBytes(1536), "1.5 KiB");
    assert.equal(formatBytes(200_000_000), "190.7 MiB");
    assert.equal(formatBytes(1024 ** 3), "1.0 GiB");
    assert.equal(formatBytes(1024 ** 2 - 1), "1.0 MiB");
    assert.equal(parseSize(formatBytes(5 * 1024 ** 3).replace(" ", "")), 5 * 1024 ** 3);
  });
});

describe("dataset plan", () => {
  it("the PRNG is a pure function of its seed", () => {
    const a = new Rng("x");
    const b = new Rng("x");
    const c = new Rng("y");
    const seqA = Array.from({ length: 5 }, () => a.next());
    assert.deepEqual(
      seqA,
      Array.from({ length: 5 }, () => b.next()),
    );
    assert.notDeepEqual(
      seqA,
      Array.from({ length: 5 }, () => c.next()),
    );
    assert.deepEqual(new Rng("z").bytes(7), new Rng("z").bytes(7));
  });

  it("puts most rows in the big tables and grows with the size", () => {
    const small = planDataset(5e6);
    const big = planDataset(5e9);
    assert.ok(big.events > 100 * small.events);
    assert.ok(big.orders > 100 * small.orders);
    assert.ok(big.events > big.customers && big.orders > big.customers);
  });
});

describe("sandbox dataset on Galera", () => {
  let conn: Connection;
  let summary: DatasetSummary;
  let firstChecksum: Record<string, string>;

  before(async () => {
    conn = await cluster.connect(1);
  });
  after(async () => {
    await conn?.end();
  });

  it("loads about 20 MB with seed 1", { timeout: 300_000 }, async () => {
    const progress: number[] = [];
    summary = await loadDataset(conn, {
      sizeBytes: SIZE,
      seed: 1,
      connect: () => cluster.connect(1),
      onProgress: (done, total) => {
        assert.ok(done <= total);
        progress.push(done);
      },
    });
    firstChecksum = await datasetChecksum(conn);
    assert.deepEqual(summary.schemas.toSorted(), ["hr", "logs", "shop"]);
    assert.ok(progress.length > 3, "progress was reported");
    assert.equal(progress.at(-1), summary.bytesApprox);
    for (const t of summary.tables) {
      const [row] = await queryRows<{ n: number }>(
        conn,
        `SELECT COUNT(*) AS n FROM \`${t.schema}\`.\`${t.table}\``,
      );
      assert.equal(Number(row?.n), t.rows, `${t.schema}.${t.table}`);
      if (t.table !== "order_status_log") assert.ok(t.rows > 0, `${t.schema}.${t.table} has rows`);
    }
    const keys = await queryRows<{ t: string }>(
      conn,
      "SELECT DISTINCT CONCAT(table_schema, '.', table_name) AS t FROM information_schema.statistics " +
        "WHERE table_schema IN ('shop','hr','logs') AND index_name = 'PRIMARY'",
    );
    assert.equal(keys.length, summary.tables.length, "every table has a primary key");
  });

  it("lands within ±35% of the requested size", async () => {
    await conn.query(`ANALYZE TABLE ${summary.tables.map((t) => `${t.schema}.${t.table}`).join(", ")}`);
    const [row] = await queryRows<{ bytes: string }>(
      conn,
      "SELECT SUM(data_length + index_length) AS bytes FROM information_schema.tables " +
        "WHERE table_schema IN ('shop','hr','logs') AND table_type = 'BASE TABLE'",
    );
    const bytes = Number(row?.bytes);
    const ratio = bytes / SIZE;
    assert.ok(
      ratio > 0.65 && ratio < 1.35,
      `measured ${formatBytes(bytes)} for ${formatBytes(SIZE)} (${ratio})`,
    );
    const ratioEstimate = summary.bytesApprox / SIZE;
    assert.ok(ratioEstimate > 0.8 && ratioEstimate < 1.2, `estimate ${summary.bytesApprox}`);
  });

  it("has a working view, trigger, function, procedure and event", async () => {
    const [view] = await queryRows<{ order_id: string; email: string; total: string }>(
      conn,
      "SELECT order_id, email, total FROM shop.order_summary WHERE order_id = 1",
    );
    assert.equal(String(view?.order_id), "1");
    assert.match(view?.email ?? "", /@mail\.example$/);

    const [fn] = await queryRows<{ computed: string; stored: string }>(
      conn,
      "SELECT shop.order_total(id) AS computed, total AS stored FROM shop.orders WHERE id = 7",
    );
    assert.equal(fn?.computed, fn?.stored, "order_total() agrees with the stored total");

    await conn.query("UPDATE shop.orders SET status = 'test-status' WHERE id = 3");
    const audit = await queryRows<{ new_status: string }>(
      conn,
      "SELECT new_status FROM shop.order_status_log WHERE order_id = 3",
    );
    assert.deepEqual(
      audit.map((r) => r.new_status),
      ["test-status"],
    );

    const sum = "SELECT SUM(salary) AS s, COUNT(*) AS n FROM hr.employees WHERE dept_id = 2";
    const [beforeRaise] = await queryRows<{ s: string; n: number }>(conn, sum);
    await conn.query("CALL hr.give_raise(2, 10)");
    const [afterRaise] = await queryRows<{ s: string }>(conn, sum);
    if (Number(beforeRaise?.n) > 0) assert.ok(Number(afterRaise?.s) > Number(beforeRaise?.s));

    const events = await queryRows<{ n: string }>(
      conn,
      "SELECT event_name AS n FROM information_schema.events WHERE event_schema = 'logs'",
    );
    assert.deepEqual(
      events.map((e) => e.n),
      ["purge_old_events"],
    );
  });

  it("is replicated: the same rows on all three nodes", async () => {
    const counts = async (c: Connection) => {
      await c.query("SET SESSION wsrep_sync_wait = 1");
      const out: Record<string, number> = {};
      for (const t of summary.tables) {
        const [r] = await queryRows<{ n: number }>(
          c,
          `SELECT COUNT(*) AS n FROM \`${t.schema}\`.\`${t.table}\``,
        );
        out[`${t.schema}.${t.table}`] = Number(r?.n);
      }
      return out;
    };
    const mine = await counts(conn);
    const ours = await datasetChecksum(conn);
    for (const k of [2, 3]) {
      const other = await cluster.connect(k);
      try {
        assert.deepEqual(await counts(other), mine, `node${k} row counts`);
        assert.deepEqual(await datasetChecksum(other), ours, `node${k} checksums`);
      } finally {
        await other.end();
      }
    }
  });

  it("refuses to load over an existing dataset", async () => {
    await assert.rejects(loadDataset(conn, { sizeBytes: SIZE, seed: 1 }), { code: "DATASET_EXISTS" });
  });

  it("gives identical checksums for the same seed and different ones for another", {
    timeout: 300_000,
  }, async () => {
    await dropDataset(conn);
    await loadDataset(conn, { sizeBytes: SIZE, seed: 1 }); // one connection this time: same data
    assert.deepEqual(await datasetChecksum(conn), firstChecksum);

    const other = await loadDataset(conn, { sizeBytes: SIZE, seed: 2, replace: true });
    const otherChecksum = await datasetChecksum(conn);
    assert.deepEqual(Object.keys(otherChecksum), Object.keys(firstChecksum));
    for (const t of ["shop.orders", "shop.customers", "logs.events", "hr.employees"]) {
      assert.notEqual(otherChecksum[t], firstChecksum[t], t);
    }
    assert.deepEqual(
      other.tables.map((t) => t.table),
      summary.tables.map((t) => t.table),
    );
  });

  it("stops a load when aborted", { timeout: 120_000 }, async () => {
    const ac = new AbortController();
    await assert.rejects(
      loadDataset(conn, {
        sizeBytes: SIZE,
        seed: 3,
        replace: true,
        signal: ac.signal,
        onProgress: () => ac.abort(new Error("enough")),
      }),
      /enough/,
    );
    // Leave the seed-2 dataset for the writer below.
    await loadDataset(conn, { sizeBytes: 5_000_000, seed: 2, replace: true });
  });

  it("runWriteLoad adds events with increasing seq and client timestamps", { timeout: 60_000 }, async () => {
    const [{ maxSeq } = { maxSeq: "0" }] = await queryRows<{ maxSeq: string }>(
      conn,
      "SELECT MAX(seq) AS maxSeq FROM logs.events",
    );
    const started = Date.now();
    const r = await runWriteLoad(conn, { seconds: 3, seed: 1, ratePerSecond: 40 });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 2900 && elapsed < 8000, `took ${elapsed} ms`);
    assert.ok(r.inserts > 20 && r.updates > 5 && r.deletes > 0, JSON.stringify(r));
    assert.ok(r.inserts + r.updates + r.deletes <= 121, JSON.stringify(r));
    assert.equal(r.firstSeq, Number(maxSeq) + 1);
    assert.equal(r.lastSeq, Number(maxSeq) + r.inserts);

    const rows = await queryRows<{ seq: string; ts: string }>(
      conn,
      "SELECT seq, client_ts AS ts FROM logs.events WHERE source = ? ORDER BY id",
      [WRITER_SOURCE],
    );
    assert.equal(rows.length, r.inserts);
    rows.forEach((row, i) => {
      assert.equal(Number(row.seq), r.firstSeq! + i);
      assert.match(row.ts, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
      if (i > 0) assert.ok(row.ts > rows[i - 1]!.ts, `client_ts increases at seq ${row.seq}`);
    });
    const firstTs = Date.parse(`${rows[0]!.ts.replace(" ", "T")}Z`);
    assert.ok(Math.abs(firstTs - started) < 5000, "client_ts is the client's clock in UTC");

    // A second run continues the sequence; an abort ends it early without an error.
    const ac = new AbortController();
    setTimeout(() => ac.abort(), 500);
    const t1 = Date.now();
    const r2 = await runWriteLoad(conn, { seconds: 30, ratePerSecond: 40, signal: ac.signal });
    assert.ok(Date.now() - t1 < 3000, "stopped on abort");
    if (r2.inserts > 0) assert.equal(r2.firstSeq, r.lastSeq! + 1);

    const node3 = await cluster.connect(3);
    try {
      await node3.query("SET SESSION wsrep_sync_wait = 1");
      const [n] = await queryRows<{ n: number }>(
        node3,
        "SELECT COUNT(*) AS n FROM logs.events WHERE source = ?",
        [WRITER_SOURCE],
      );
      assert.equal(Number(n?.n), r.inserts + r2.inserts);
    } finally {
      await node3.end();
    }
  });
});
