// A steady write load on the sandbox dataset, for incremental backups and point-in-time recovery tests.
//
// Every insert goes to the append-only logs.events with source 'writer', a sequence number (seq) one above
// the largest so far and the client's own clock in client_ts (UTC, microseconds, strictly increasing), so a
// test can tell exactly which writes a restore to a point in time must contain. Updates and deletes touch
// the other tables (an order status update also fires the audit trigger). One statement per transaction.
import { StrongboxError } from "../errors.ts";
import { type Connection, queryRows } from "../galera/connection.ts";
import { sleep } from "../util/proc.ts";
import { sqlDatetimeMicros } from "./dataset.ts";
import { type Rng, streamFor } from "./dataset-values.ts";

export interface WriteLoadOptions {
  seconds: number;
  /** Chooses the mix of operations and their targets (default "writer"). */
  seed?: string | number;
  /** Statements per second (default 50). */
  ratePerSecond?: number;
  signal?: AbortSignal;
}

export interface WriteLoadResult {
  inserts: number;
  updates: number;
  deletes: number;
  /** seq of the first and last row this run inserted into logs.events (null when none). */
  firstSeq: number | null;
  lastSeq: number | null;
}

export const WRITER_SOURCE = "writer";
const DEFAULT_RATE = 50;
const STATUSES = ["new", "paid", "packed", "shipped", "delivered", "returned", "cancelled"] as const;
/** Galera certification conflicts surface as deadlocks; the statement is simply tried again. */
const ER_LOCK_DEADLOCK = 1213;
const RETRIES = 3;

interface Bounds {
  seq: number;
  orders: number;
  customers: number;
  products: number;
}

async function readBounds(conn: Connection): Promise<Bounds> {
  try {
    const [row] = await queryRows<Record<keyof Bounds, string | number | null>>(
      conn,
      `SELECT (SELECT COALESCE(MAX(seq), 0) FROM logs.events) AS seq,
              (SELECT COALESCE(MAX(id), 0) FROM shop.orders) AS orders,
              (SELECT COALESCE(MAX(id), 0) FROM shop.customers) AS customers,
              (SELECT COALESCE(MAX(id), 0) FROM shop.products) AS products`,
    );
    return {
      seq: Number(row?.seq ?? 0),
      orders: Number(row?.orders ?? 0),
      customers: Number(row?.customers ?? 0),
      products: Number(row?.products ?? 0),
    };
  } catch (e) {
    throw new StrongboxError("DATASET_MISSING", `the sandbox dataset is not there: ${(e as Error).message}`, {
      stage: "write-load",
      hint: "load it first: strongbox sandbox load",
      cause: e,
    });
  }
}

/** Wall-clock microseconds: Date.now() at the start plus a monotonic offset, never repeating. */
function microClock(): () => number {
  const baseUs = Date.now() * 1000;
  const t0 = process.hrtime.bigint();
  let last = 0;
  return () => {
    const now = baseUs + Number((process.hrtime.bigint() - t0) / 1000n);
    last = Math.max(now, last + 1);
    return last;
  };
}

async function execute(conn: Connection, sql: string, params: unknown[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await conn.query(sql, params);
      return;
    } catch (e) {
      const errno = (e as { errno?: number }).errno;
      if (errno === ER_LOCK_DEADLOCK && attempt < RETRIES) continue;
      throw new StrongboxError("WRITE_LOAD_FAILED", `write load statement failed: ${(e as Error).message}`, {
        stage: "write-load",
        cause: e,
      });
    }
  }
}

/** Runs until `seconds` have passed or the signal aborts; an abort ends it early without an error. */
export async function runWriteLoad(conn: Connection, o: WriteLoadOptions): Promise<WriteLoadResult> {
  const rate = o.ratePerSecond ?? DEFAULT_RATE;
  if (!(rate > 0) || !Number.isFinite(rate)) {
    throw new StrongboxError("BAD_RATE", `write rate must be a positive number (got ${rate})`);
  }
  if (!(o.seconds >= 0) || !Number.isFinite(o.seconds)) {
    throw new StrongboxError(
      "BAD_DURATION",
      `write load duration must be a non-negative number (got ${o.seconds})`,
    );
  }
  const bounds = await readBounds(conn);
  if (bounds.orders === 0 || bounds.customers === 0 || bounds.products === 0) {
    throw new StrongboxError("DATASET_MISSING", "the sandbox dataset is empty", {
      stage: "write-load",
      hint: "load it first: strongbox sandbox load",
    });
  }
  const rng = streamFor(o.seed ?? "writer", "writer");
  const clock = microClock();
  const result: WriteLoadResult = { inserts: 0, updates: 0, deletes: 0, firstSeq: null, lastSeq: null };
  let seq = bounds.seq;
  const intervalMs = 1000 / rate;
  const start = performance.now();
  const deadline = start + o.seconds * 1000;

  for (let i = 0; ; i++) {
    const due = start + i * intervalMs;
    if (due >= deadline || o.signal?.aborted) break;
    const wait = due - performance.now();
    if (wait > 0) {
      try {
        await sleep(wait, o.signal);
      } catch {
        break; // aborted
      }
    }
    const op = rng.float();
    if (op < 0.5) {
      seq++;
      await insertEvent(conn, rng, seq, clock());
      result.inserts++;
      result.firstSeq ??= seq;
      result.lastSeq = seq;
    } else if (op < 0.85) {
      await update(conn, rng, bounds, op);
      result.updates++;
    } else {
      // The last line of a random order, if it still has one.
      await execute(conn, "DELETE FROM shop.order_items WHERE order_id = ? ORDER BY line DESC LIMIT 1", [
        rng.int(1, bounds.orders),
      ]);
      result.deletes++;
    }
  }
  return result;
}

async function insertEvent(conn: Connection, rng: Rng, seq: number, us: number): Promise<void> {
  const payload = JSON.stringify({ seq, user: rng.int(1, 1_000_000), ms: rng.int(1, 3000) });
  await execute(
    conn,
    "INSERT INTO logs.events (seq, client_ts, source, level, trace_id, message, payload) VALUES (?, ?, ?, ?, ?, ?, ?)",
    [seq, sqlDatetimeMicros(us), WRITER_SOURCE, rng.int(0, 7), rng.bytes(16), `writer event ${seq}`, payload],
  );
}

async function update(conn: Connection, rng: Rng, b: Bounds, op: number): Promise<void> {
  if (op < 0.65) {
    await execute(conn, "UPDATE shop.orders SET status = ? WHERE id = ?", [
      rng.pick(STATUSES),
      rng.int(1, b.orders),
    ]);
  } else if (op < 0.75) {
    await execute(
      conn,
      "UPDATE shop.customers SET balance = balance + ?, loyalty_points = loyalty_points + 1 WHERE id = ?",
      [(rng.int(-5000, 5000) / 100).toFixed(2), rng.int(1, b.customers)],
    );
  } else {
    await execute(conn, "UPDATE shop.products SET stock = GREATEST(stock - ?, 0) WHERE id = ?", [
      rng.int(1, 3),
      rng.int(1, b.products),
    ]);
  }
}
