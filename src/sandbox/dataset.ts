// A deterministic test dataset: the same seed and size give byte-identical tables, from a few MB to GBs.
//
// Three schemas (shop, hr, logs); most of the volume sits in logs.events, shop.orders and shop.order_items.
// Rows go in as multi-row INSERTs of about 2 MB, one autocommit statement each, so every write set stays far
// below wsrep_max_ws_size. Each table draws from its own PRNG stream, seeded from (seed, table), so the rows
// do not depend on batching. The view, trigger, routines and event are created after the rows, as a dump
// restore would, so the trigger does not slow the load.
import { StrongboxError } from "../errors.ts";
import { type Connection, queryRows } from "../galera/connection.ts";
import { type DatasetPlan, planBytes, planDataset } from "./dataset-plan.ts";
import { OBJECTS_DDL, TABLES_DDL } from "./dataset-schema.ts";
import {
  CATEGORIES,
  CITIES,
  COUNTRIES,
  DEPARTMENTS,
  FIRST_NAMES,
  HTTP_PATHS,
  hex,
  LAST_NAMES,
  makeCorpus,
  money,
  SOURCES,
  STATUSES,
  sqlDate,
  sqlDatetime,
  streamFor,
  TextSource,
  WORDS,
} from "./dataset-values.ts";

export const DATASET_SCHEMAS = ["shop", "hr", "logs"] as const;

export interface LoadOptions {
  /** Approximate InnoDB volume (data + indexes) to create. */
  sizeBytes: number;
  seed: string | number;
  onProgress?: (doneBytes: number, totalBytes: number) => void;
  signal?: AbortSignal;
  /** Drop the dataset schemas first if they exist (otherwise an existing dataset is an error). */
  replace?: boolean;
  /**
   * Opens another connection to the same node. With it, tables load on `parallel` connections at once
   * (default 2, at most 3), which keeps the cluster busy while a write set replicates.
   */
  connect?: () => Promise<Connection>;
  parallel?: number;
}

export interface DatasetSummary {
  schemas: string[];
  tables: { schema: string; table: string; rows: number }[];
  /** Estimated data + index volume of the rows written. */
  bytesApprox: number;
}

export const MIN_DATASET_BYTES = 1_000_000;
export const MAX_DATASET_BYTES = 100e9;
/** Target size of one INSERT statement. */
const STATEMENT_CHARS = 2 * 1024 * 1024;
/** Statements queued on the connection: the next one is generated while the server runs the last. */
const PIPELINE_DEPTH = 2;
/** Rows are dated from here on, so the contents never depend on the clock. */
const EPOCH_MS = Date.UTC(2023, 0, 1);
const YEAR_MS = 365 * 24 * 3600 * 1000;

// ---------------------------------------------------------------------------------------------------------
// Sending: multi-row INSERTs, a couple queued on the connection.

class Pipeline {
  private readonly conn: Connection;
  private readonly signal: AbortSignal | undefined;
  private readonly onDone: (bytes: number) => void;
  private readonly inflight: { done: Promise<unknown>; bytes: number }[] = [];

  constructor(conn: Connection, signal: AbortSignal | undefined, onDone: (bytes: number) => void) {
    this.conn = conn;
    this.signal = signal;
    this.onDone = onDone;
  }

  async send(sql: string, bytes: number): Promise<void> {
    this.signal?.throwIfAborted();
    // values: null skips mysql2's placeholder scan, a measurable cost on 2 MB of SQL.
    const done = this.conn.query({ sql, values: null });
    // Handled when awaited below; this only keeps an early failure from counting as unhandled.
    done.catch(() => {});
    this.inflight.push({ done, bytes });
    while (this.inflight.length >= PIPELINE_DEPTH) await this.settleOne();
  }

  async drain(): Promise<void> {
    while (this.inflight.length > 0) await this.settleOne();
  }

  private async settleOne(): Promise<void> {
    const first = this.inflight.shift()!;
    try {
      await first.done;
    } catch (e) {
      await Promise.allSettled(this.inflight.map((f) => f.done));
      this.inflight.length = 0;
      throw e;
    }
    this.onDone(first.bytes);
  }
}

class Inserter {
  private readonly head: string;
  private readonly pipeline: Pipeline;
  private readonly bytesPerRow: number;
  private rows: string[] = [];
  private chars = 0;

  constructor(pipeline: Pipeline, table: string, columns: string, bytesPerRow: number) {
    this.pipeline = pipeline;
    this.head = `INSERT INTO ${table} (${columns}) VALUES `;
    this.bytesPerRow = bytesPerRow;
  }

  async add(row: string): Promise<void> {
    this.rows.push(row);
    this.chars += row.length + 1;
    if (this.chars >= STATEMENT_CHARS) await this.flush();
  }

  async flush(): Promise<void> {
    if (this.rows.length === 0) return;
    const sql = this.head + this.rows.join(",");
    const bytes = this.rows.length * this.bytesPerRow;
    this.rows = [];
    this.chars = 0;
    await this.pipeline.send(sql, bytes);
  }
}

// ---------------------------------------------------------------------------------------------------------
// Loading.

async function schemasPresent(conn: Connection): Promise<string[]> {
  const rows = await queryRows<{ name: string }>(
    conn,
    "SELECT schema_name AS name FROM information_schema.schemata WHERE schema_name IN (?)",
    [DATASET_SCHEMAS],
  );
  return rows.map((r) => r.name);
}

/** Drops the dataset schemas (shop, hr, logs) if they exist. */
export async function dropDataset(conn: Connection): Promise<void> {
  for (const s of DATASET_SCHEMAS) await conn.query(`DROP DATABASE IF EXISTS \`${s}\``);
}

/**
 * Creates the dataset schemas and fills them. A failed or aborted load leaves them partly filled: load
 * again with `replace`, or call dropDataset.
 */
export async function loadDataset(conn: Connection, o: LoadOptions): Promise<DatasetSummary> {
  if (!Number.isFinite(o.sizeBytes) || o.sizeBytes < MIN_DATASET_BYTES || o.sizeBytes > MAX_DATASET_BYTES) {
    throw new StrongboxError(
      "BAD_SIZE",
      `dataset size must be between ${MIN_DATASET_BYTES} and ${MAX_DATASET_BYTES} bytes (got ${o.sizeBytes})`,
      { stage: "dataset" },
    );
  }
  o.signal?.throwIfAborted();
  const seed = String(o.seed);
  const plan = planDataset(o.sizeBytes);
  const tableBytes = planBytes(plan);
  const totalBytes = Object.values(tableBytes).reduce((a, b) => a + b, 0);
  let doneBytes = 0;
  const report = (bytes: number) => {
    doneBytes += bytes;
    o.onProgress?.(Math.min(doneBytes, totalBytes), totalBytes);
  };

  const existing = await schemasPresent(conn);
  if (existing.length > 0) {
    if (!o.replace) {
      throw new StrongboxError("DATASET_EXISTS", `schemas already exist: ${existing.join(", ")}`, {
        stage: "dataset",
        hint: "drop them first (or load with replace)",
      });
    }
    await dropDataset(conn);
  }
  try {
    for (const s of DATASET_SCHEMAS)
      await conn.query(`CREATE DATABASE \`${s}\` DEFAULT CHARACTER SET utf8mb4`);
    for (const ddl of TABLES_DDL) await conn.query(ddl);
  } catch (e) {
    throw new StrongboxError(
      "DATASET_SCHEMA_FAILED",
      `creating the dataset tables failed: ${(e as Error).message}`,
      {
        stage: "dataset",
        cause: e,
      },
    );
  }

  const ctx: LoadContext = {
    seed,
    plan,
    perRow: (t) => tableBytes[t] / plan[t],
    text: new TextSource(makeCorpus(streamFor(seed, "corpus"), 1 << 20)),
    prices: productPrices(seed, plan.products),
    orderItems: 0,
  };
  const parallel = o.connect ? Math.max(1, Math.min(3, o.parallel ?? 2)) : 1;
  await runStreams(conn, o, parallel, streamsFor(parallel), ctx, report);
  for (const ddl of OBJECTS_DDL) await conn.query(ddl);
  o.onProgress?.(totalBytes, totalBytes);

  return {
    schemas: [...DATASET_SCHEMAS],
    tables: [
      { schema: "hr", table: "departments", rows: plan.departments },
      { schema: "hr", table: "employees", rows: plan.employees },
      { schema: "shop", table: "customers", rows: plan.customers },
      { schema: "shop", table: "products", rows: plan.products },
      { schema: "shop", table: "orders", rows: plan.orders },
      { schema: "shop", table: "order_items", rows: ctx.orderItems },
      { schema: "shop", table: "order_status_log", rows: 0 },
      { schema: "logs", table: "events", rows: plan.events },
    ],
    bytesApprox: totalBytes,
  };
}

interface LoadContext {
  seed: string;
  plan: DatasetPlan;
  /** Modelled bytes per row, for progress. */
  perRow: (t: keyof DatasetPlan) => number;
  text: TextSource;
  /** Price in cents of product id i+1: fixed up front so orders need not wait for the products stream. */
  prices: number[];
  orderItems: number;
}

type TableLoader = (p: Pipeline, ctx: LoadContext) => Promise<void>;

/**
 * Which tables each connection loads, in order. A parent and its children share a stream (customers
 * before orders, departments before employees), so foreign keys always find their rows.
 */
function streamsFor(parallel: number): TableLoader[][] {
  if (parallel === 1)
    return [[loadDepartments, loadEmployees, loadCustomers, loadProducts, loadOrders, loadEvents]];
  if (parallel === 2)
    return [
      [loadDepartments, loadEmployees, loadCustomers, loadOrders],
      [loadProducts, loadEvents],
    ];
  return [
    [loadCustomers, loadOrders],
    [loadProducts, loadEvents],
    [loadDepartments, loadEmployees],
  ];
}

async function runStreams(
  conn: Connection,
  o: LoadOptions,
  parallel: number,
  streams: TableLoader[][],
  ctx: LoadContext,
  report: (bytes: number) => void,
): Promise<void> {
  // One failing stream stops the others at their next statement.
  const failed = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, failed.signal]) : failed.signal;
  const conns: Connection[] = [conn];
  const run = async (loaders: TableLoader[], c: Connection) => {
    const pipeline = new Pipeline(c, signal, report);
    try {
      for (const load of loaders) await load(pipeline, ctx);
      await pipeline.drain();
    } catch (e) {
      failed.abort(e);
      await pipeline.drain().catch(() => {});
      throw e;
    }
  };
  try {
    while (conns.length < parallel && o.connect) conns.push(await o.connect());
    const results = await Promise.allSettled(streams.map((loaders, i) => run(loaders, conns[i]!)));
    const failure = results.find((r) => r.status === "rejected");
    if (failure) throw failure.reason;
  } catch (e) {
    if (o.signal?.aborted) throw o.signal.reason;
    if (e instanceof StrongboxError) throw e;
    throw new StrongboxError("DATASET_LOAD_FAILED", `loading the dataset failed: ${(e as Error).message}`, {
      stage: "dataset",
      cause: e,
    });
  } finally {
    for (const c of conns.slice(1)) await c.end().catch(() => {});
  }
}

function productPrices(seed: string, products: number): number[] {
  const rng = streamFor(seed, "shop.products/price");
  return Array.from({ length: products }, () => rng.int(199, 99_999));
}

async function loadDepartments(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow } = ctx;
  const rng = streamFor(seed, "hr.departments");
  const ins = new Inserter(p, "hr.departments", "id,name,budget,created_at", perRow("departments"));
  for (let id = 1; id <= plan.departments; id++) {
    const name = `${DEPARTMENTS[(id - 1) % DEPARTMENTS.length]} ${Math.ceil(id / DEPARTMENTS.length)}`;
    const created = EPOCH_MS - rng.int(0, 5 * YEAR_MS);
    await ins.add(`(${id},'${name}',${money(rng.int(1e7, 5e9))},'${sqlDatetime(created)}')`);
  }
  await ins.flush();
}

async function loadEmployees(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow, text } = ctx;
  const rng = streamFor(seed, "hr.employees");
  const ins = new Inserter(
    p,
    "hr.employees",
    "id,dept_id,first_name,last_name,email,hired_on,salary,bio,photo",
    perRow("employees"),
  );
  for (let id = 1; id <= plan.employees; id++) {
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const hired = EPOCH_MS - rng.int(0, 15 * YEAR_MS);
    await ins.add(
      `(${id},${rng.int(1, plan.departments)},'${first}','${last}','${first.toLowerCase()}.${last.toLowerCase()}.${id}@corp.example',` +
        `'${sqlDate(hired)}',${money(rng.int(2_500_000, 18_000_000))},'${text.text(rng, 200, 700)}',${hex(rng.bytes(rng.int(400, 1400)))})`,
    );
  }
  await ins.flush();
}

async function loadCustomers(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow, text } = ctx;
  const rng = streamFor(seed, "shop.customers");
  const ins = new Inserter(
    p,
    "shop.customers",
    "id,email,name,country,city,created_at,balance,loyalty_points,notes",
    perRow("customers"),
  );
  for (let id = 1; id <= plan.customers; id++) {
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const created = EPOCH_MS + rng.int(0, YEAR_MS);
    await ins.add(
      `(${id},'${first.toLowerCase()}.${last.toLowerCase()}.${id}@mail.example','${first} ${last}','${rng.pick(COUNTRIES)}',` +
        `'${rng.pick(CITIES)}','${sqlDatetime(created)}',${money(rng.int(-50_000, 2_000_000))},${rng.int(0, 100_000)},` +
        `'${text.text(rng, 60, 300)}')`,
    );
  }
  await ins.flush();
}

async function loadProducts(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow, text } = ctx;
  const rng = streamFor(seed, "shop.products");
  const ins = new Inserter(
    p,
    "shop.products",
    "id,sku,title,category,price,stock,attrs,image",
    perRow("products"),
  );
  for (let id = 1; id <= plan.products; id++) {
    const price = ctx.prices[id - 1]!;
    const attrs =
      `{"color":"${rng.pick(WORDS)}","weight_g":${rng.int(10, 20_000)},"tags":["${rng.pick(WORDS)}","${rng.pick(WORDS)}"],` +
      `"rating":${(rng.int(10, 50) / 10).toFixed(1)},"text":"${text.text(rng, 40, 200)}"}`;
    await ins.add(
      `(${id},'SKU-${id.toString(36).toUpperCase().padStart(6, "0")}','${text.text(rng, 20, 120)}','${rng.pick(CATEGORIES)}',` +
        `${money(price)},${rng.int(0, 5000)},'${attrs}',${hex(rng.bytes(rng.int(1200, 3000)))})`,
    );
  }
  await ins.flush();
}

async function loadOrders(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow, text, prices } = ctx;
  const rng = streamFor(seed, "shop.orders");
  const orders = new Inserter(
    p,
    "shop.orders",
    "id,customer_id,created_at,status,total,currency,shipping_address,note",
    perRow("orders"),
  );
  // Their bytes are counted with the orders.
  const lines = new Inserter(
    p,
    "shop.order_items",
    "order_id,line,product_id,qty,unit_price,gift_message",
    0,
  );
  for (let id = 1; id <= plan.orders; id++) {
    const n = rng.int(1, 6);
    let total = 0;
    for (let line = 1; line <= n; line++) {
      const product = rng.int(1, plan.products);
      const qty = rng.int(1, 5);
      const price = prices[product - 1]!;
      total += qty * price;
      const gift = rng.float() < 0.3 ? text.text(rng, 10, 120) : "";
      await lines.add(`(${id},${line},${product},${qty},${money(price)},'${gift}')`);
    }
    ctx.orderItems += n;
    const created = EPOCH_MS + Math.floor((id / plan.orders) * 2 * YEAR_MS) + rng.int(0, 3_600_000);
    await orders.add(
      `(${id},${rng.int(1, plan.customers)},'${sqlDatetime(created)}','${rng.pick(STATUSES)}',${money(total)},` +
        `'${rng.float() < 0.8 ? "EUR" : "USD"}','${rng.int(1, 999)} ${text.text(rng, 20, 80)}, ${rng.pick(CITIES)}',` +
        `'${text.text(rng, 30, 400)}')`,
    );
  }
  await orders.flush();
  await lines.flush();
}

async function loadEvents(p: Pipeline, ctx: LoadContext): Promise<void> {
  const { seed, plan, perRow, text } = ctx;
  const rng = streamFor(seed, "logs.events");
  const ins = new Inserter(
    p,
    "logs.events",
    "id,seq,client_ts,source,level,trace_id,message,payload",
    perRow("events"),
  );
  const stepUs = Math.max(1, Math.floor((2 * YEAR_MS * 1000) / plan.events));
  let us = EPOCH_MS * 1000;
  for (let id = 1; id <= plan.events; id++) {
    us += rng.int(1, 2 * stepUs);
    const payload =
      `{"user":${rng.int(1, 1_000_000)},"ip":"10.${rng.int(0, 255)}.${rng.int(0, 255)}.${rng.int(1, 254)}",` +
      `"path":"/${rng.pick(HTTP_PATHS)}/${rng.pick(WORDS)}","status":${rng.pick([200, 200, 200, 201, 302, 404, 500])},` +
      `"ms":${rng.int(1, 3000)},"tags":["${rng.pick(WORDS)}","${rng.pick(WORDS)}"],"detail":"${text.text(rng, 50, 500)}"}`;
    await ins.add(
      `(${id},${id},'${sqlDatetimeMicros(us)}','${rng.pick(SOURCES)}',${rng.int(0, 7)},${hex(rng.bytes(16))},` +
        `'${text.text(rng, 20, 160)}','${payload}')`,
    );
  }
  await ins.flush();
}

/** Microseconds since the epoch → 'YYYY-MM-DD HH:MM:SS.ffffff' (UTC). */
export function sqlDatetimeMicros(us: number): string {
  const ms = Math.floor(us / 1000);
  const frac = String(us - ms * 1000 + (ms % 1000) * 1000).padStart(6, "0");
  return `${sqlDatetime(ms)}.${frac}`;
}

/** CHECKSUM TABLE of every base table of the dataset: "schema.table" → checksum. */
export async function datasetChecksum(conn: Connection): Promise<Record<string, string>> {
  const tables = await queryRows<{ s: string; t: string }>(
    conn,
    "SELECT table_schema AS s, table_name AS t FROM information_schema.tables " +
      "WHERE table_schema IN (?) AND table_type = 'BASE TABLE' ORDER BY table_schema, table_name",
    [DATASET_SCHEMAS],
  );
  const out: Record<string, string> = {};
  if (tables.length === 0) return out;
  const rows = await queryRows<{ Table: string; Checksum: string | number | null }>(
    conn,
    `CHECKSUM TABLE ${tables.map((r) => `\`${r.s}\`.\`${r.t}\``).join(", ")}`,
  );
  for (const r of rows) out[r.Table] = String(r.Checksum);
  return out;
}
