// A deterministic test dataset: the same seed and size give byte-identical tables, from a few MB to GBs.
//
// Three schemas (shop, hr, logs); most of the volume sits in logs.events, shop.orders and shop.order_items.
// Rows go in as multi-row INSERTs of about 2 MB, one autocommit statement each, so every write set stays far
// below wsrep_max_ws_size. Each table draws from its own PRNG stream, seeded from (seed, table), so the rows
// do not depend on batching. The view, trigger, routines and event are created after the rows, as a dump
// restore would, so the trigger does not slow the load.
import { createHash } from "node:crypto";
import { StrongboxError } from "../errors.ts";
import { type Connection, queryRows } from "../galera/connection.ts";

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
// Seeded PRNG: xoshiro128**, state from SHA-256 of the seed, so any string or number is a good seed.

export class Rng {
  private a: number;
  private b: number;
  private c: number;
  private d: number;

  constructor(seed: string) {
    const h = createHash("sha256").update(seed).digest();
    this.a = h.readUInt32LE(0);
    this.b = h.readUInt32LE(4);
    this.c = h.readUInt32LE(8);
    this.d = h.readUInt32LE(12) | 1; // never the all-zero state
  }

  /** A uniform 32-bit unsigned integer. */
  next(): number {
    const result = Math.imul(rotl(Math.imul(this.b, 5), 7), 9) >>> 0;
    const t = this.b << 9;
    this.c ^= this.a;
    this.d ^= this.b;
    this.b ^= this.c;
    this.a ^= this.d;
    this.c ^= t;
    this.d = rotl(this.d, 11);
    return result;
  }

  /** In [0, 1). */
  float(): number {
    return this.next() / 4294967296;
  }

  /** In [lo, hi], both inclusive. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }

  pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.float() * items.length)]!;
  }

  bytes(n: number): Buffer {
    const buf = Buffer.allocUnsafe(n);
    let i = 0;
    for (; i + 4 <= n; i += 4) buf.writeUInt32LE(this.next(), i);
    if (i < n) {
      const last = this.next();
      for (let k = 0; i < n; i++, k++) buf[i] = (last >>> (8 * k)) & 0xff;
    }
    return buf;
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k));
}

export function streamFor(seed: string | number, name: string): Rng {
  return new Rng(`strongbox-dataset/v1/${String(seed)}/${name}`);
}

// ---------------------------------------------------------------------------------------------------------
// Value generators. Generated text holds only [A-Za-z0-9 .,:/@_-] so nothing needs escaping.

const WORDS = (
  "able about account across action active address after again agent alpha amber angle answer april " +
  "area arrow audit autumn backup balance basket battery beach before berry better beyond black blue " +
  "border bottle branch bread bridge bright broken brown budget build butter cable camera canvas carbon " +
  "cargo carpet castle center chain chapter charge cherry circle citizen cluster coffee column comet " +
  "copper corner cotton credit crystal custom daily danger delta desert design detail digital dinner " +
  "doctor double dragon driver eager early eastern echo editor effort eleven empire energy engine " +
  "escape evening export fabric factor falcon family fancy feather figure filter final flower forest " +
  "fossil frame future galaxy garden gentle glass golden gravity green harbor harvest heavy hidden " +
  "honest hotel hunter island jacket jungle kernel kettle ladder lemon letter linear liquid lucky " +
  "magnet marble market meadow medium memory metal middle mirror modern moment motion mountain native " +
  "nectar network number object ocean office orange orbit paper parcel pencil pepper planet pocket " +
  "portal prairie pretty prism public purple puzzle quartz quick rabbit radar random rapid record " +
  "relay remote report ribbon river rocket saddle salmon sample season secret signal silver simple " +
  "socket solar spirit spring square stable steady stone storm summer sunset system table temple " +
  "thunder ticket timber token tower travel tunnel union unit valley vector velvet violet vision " +
  "volume wagon walnut water window winter wonder yellow zebra zenith"
).split(" ");

const FIRST_NAMES =
  "Ada Alan Anna Bela Carl Dana Eli Emma Finn Grace Hana Ivan Jana Karl Lena Liam Mara Nina Omar Paul Rosa Sara Tom Uma Vera Yuki Zoe".split(
    " ",
  );
const LAST_NAMES =
  "Abbott Bauer Costa Dvorak Evans Fischer Garcia Horvat Ito Jensen Kowalski Larsen Moreau Novak Olsen Petrov Quinn Rossi Schmidt Tanaka Urban Varga Weber Young Zimmer".split(
    " ",
  );
const COUNTRIES = "AT BE BR CA CH CZ DE DK ES FI FR GB HU IE IN IT JP NL NO PL PT SE US".split(" ");
const CITIES =
  "Aurora Bayside Cedar Dover Elmwood Fairview Glenwood Harbor Ivy Juniper Kingston Lakeside".split(" ");
const DEPARTMENTS =
  "Engineering Sales Marketing Finance Legal Support Operations Research Design Security Logistics Purchasing".split(
    " ",
  );
const CATEGORIES = "books garden kitchen toys tools sports music office health outdoor".split(" ");
const STATUSES = ["new", "paid", "packed", "shipped", "delivered", "returned", "cancelled"] as const;
const SOURCES = "api web worker scheduler billing auth search mailer".split(" ");
const HTTP_PATHS = "cart checkout login search orders account products help".split(" ");

/** Deterministic prose to cut text fields from: realistic, compressible, cheap to slice. */
function makeCorpus(rng: Rng, chars: number): string {
  const parts: string[] = [];
  let len = 0;
  while (len < chars) {
    const n = rng.int(6, 16);
    const words: string[] = [];
    for (let i = 0; i < n; i++) words.push(rng.pick(WORDS));
    const w0 = words[0]!;
    words[0] = w0.charAt(0).toUpperCase() + w0.slice(1);
    const s = `${words.join(" ")}${rng.float() < 0.2 ? "," : "."} `;
    parts.push(s);
    len += s.length;
  }
  return parts.join("");
}

class TextSource {
  private readonly corpus: string;
  constructor(corpus: string) {
    this.corpus = corpus;
  }
  /** A slice of between min and max characters. */
  text(rng: Rng, min: number, max: number): string {
    const n = rng.int(min, max);
    const at = rng.int(0, this.corpus.length - n - 1);
    return this.corpus.slice(at, at + n).trim();
  }
}

function sqlDatetime(ms: number): string {
  return new Date(ms).toISOString().slice(0, 19).replace("T", " ");
}

function sqlDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function money(cents: number): string {
  return (cents / 100).toFixed(2);
}

function hex(buf: Buffer): string {
  return buf.length === 0 ? "''" : `0x${buf.toString("hex")}`;
}

// ---------------------------------------------------------------------------------------------------------
// Schema.

const TABLES_DDL: string[] = [
  `CREATE TABLE hr.departments (
    id INT NOT NULL PRIMARY KEY,
    name VARCHAR(64) NOT NULL,
    budget DECIMAL(14,2) NOT NULL,
    created_at DATETIME NOT NULL,
    UNIQUE KEY uk_name (name)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE hr.employees (
    id INT NOT NULL PRIMARY KEY,
    dept_id INT NOT NULL,
    first_name VARCHAR(40) NOT NULL,
    last_name VARCHAR(40) NOT NULL,
    email VARCHAR(120) NOT NULL,
    hired_on DATE NOT NULL,
    salary DECIMAL(10,2) NOT NULL,
    bio TEXT NOT NULL,
    photo BLOB NOT NULL,
    KEY k_dept (dept_id),
    KEY k_name (last_name, first_name),
    CONSTRAINT fk_employees_dept FOREIGN KEY (dept_id) REFERENCES hr.departments (id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.customers (
    id INT NOT NULL PRIMARY KEY,
    email VARCHAR(120) NOT NULL,
    name VARCHAR(80) NOT NULL,
    country CHAR(2) NOT NULL,
    city VARCHAR(40) NOT NULL,
    created_at DATETIME NOT NULL,
    balance DECIMAL(12,2) NOT NULL,
    loyalty_points INT NOT NULL,
    notes TEXT NOT NULL,
    UNIQUE KEY uk_email (email),
    KEY k_country_city (country, city),
    KEY k_created (created_at)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.products (
    id INT NOT NULL PRIMARY KEY,
    sku VARCHAR(32) NOT NULL,
    title VARCHAR(200) NOT NULL,
    category VARCHAR(40) NOT NULL,
    price DECIMAL(10,2) NOT NULL,
    stock INT NOT NULL,
    attrs TEXT NOT NULL,
    image BLOB NOT NULL,
    UNIQUE KEY uk_sku (sku),
    KEY k_category_price (category, price)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.orders (
    id BIGINT NOT NULL PRIMARY KEY,
    customer_id INT NOT NULL,
    created_at DATETIME NOT NULL,
    status VARCHAR(16) NOT NULL,
    total DECIMAL(14,2) NOT NULL,
    currency CHAR(3) NOT NULL,
    shipping_address VARCHAR(255) NOT NULL,
    note TEXT NOT NULL,
    KEY k_customer (customer_id, created_at),
    KEY k_status (status, created_at),
    CONSTRAINT fk_orders_customer FOREIGN KEY (customer_id) REFERENCES shop.customers (id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.order_items (
    order_id BIGINT NOT NULL,
    line SMALLINT NOT NULL,
    product_id INT NOT NULL,
    qty INT NOT NULL,
    unit_price DECIMAL(10,2) NOT NULL,
    gift_message VARCHAR(255) NOT NULL,
    PRIMARY KEY (order_id, line),
    KEY k_product (product_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  `CREATE TABLE shop.order_status_log (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    order_id BIGINT NOT NULL,
    old_status VARCHAR(16) NOT NULL,
    new_status VARCHAR(16) NOT NULL,
    changed_at DATETIME(6) NOT NULL,
    KEY k_order (order_id)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
  // Append-only; the writer adds rows with its own clock (client_ts, UTC) and a sequence number (seq).
  `CREATE TABLE logs.events (
    id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY,
    seq BIGINT NOT NULL,
    client_ts DATETIME(6) NOT NULL,
    source VARCHAR(32) NOT NULL,
    level TINYINT NOT NULL,
    trace_id BINARY(16) NOT NULL,
    message VARCHAR(255) NOT NULL,
    payload TEXT NOT NULL,
    UNIQUE KEY uk_seq (seq),
    KEY k_client_ts (client_ts),
    KEY k_source_level (source, level)
  ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4`,
];

const OBJECTS_DDL: string[] = [
  `CREATE SQL SECURITY INVOKER VIEW shop.order_summary AS
    SELECT o.id AS order_id, o.created_at, o.status, o.total, c.id AS customer_id, c.email, c.country
    FROM shop.orders o JOIN shop.customers c ON c.id = o.customer_id`,
  `CREATE TRIGGER shop.orders_status_audit AFTER UPDATE ON shop.orders FOR EACH ROW
    BEGIN
      IF NEW.status <> OLD.status THEN
        INSERT INTO shop.order_status_log (order_id, old_status, new_status, changed_at)
        VALUES (NEW.id, OLD.status, NEW.status, NOW(6));
      END IF;
    END`,
  `CREATE FUNCTION shop.order_total(p_order BIGINT) RETURNS DECIMAL(14,2)
    READS SQL DATA SQL SECURITY INVOKER
    RETURN (SELECT COALESCE(SUM(qty * unit_price), 0) FROM shop.order_items WHERE order_id = p_order)`,
  `CREATE PROCEDURE hr.give_raise(IN p_dept INT, IN p_percent DECIMAL(5,2))
    MODIFIES SQL DATA SQL SECURITY INVOKER
    UPDATE hr.employees SET salary = ROUND(salary * (1 + p_percent / 100), 2) WHERE dept_id = p_dept`,
  // Disabled: it exists so backups have an event to carry, but never changes data.
  `CREATE EVENT logs.purge_old_events ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 00:00:00' DISABLE
    DO DELETE FROM logs.events WHERE client_ts < NOW() - INTERVAL 10 YEAR`,
];

// ---------------------------------------------------------------------------------------------------------
// Sizing. The target is what information_schema reports (data_length + index_length), which counts the
// pages InnoDB has reserved: each index segment takes single 16 KiB pages up to 32, then whole 1 MiB
// extents. Small datasets are dominated by that rounding, so the plan models it instead of dividing by an
// average row size. Row shapes are bytes per row measured on MariaDB 10.11 (clustered index, then each
// secondary index).

interface Shape {
  data: number;
  indexes: readonly number[];
}

const SHAPES = {
  departments: { data: 100, indexes: [40] },
  employees: { data: 1633, indexes: [40, 40] },
  customers: { data: 300, indexes: [60, 45, 41] },
  products: { data: 2856, indexes: [31, 31] },
  orders: { data: 366, indexes: [40, 40] },
  orderItems: { data: 67, indexes: [35] },
  events: { data: 609, indexes: [22, 26, 26] },
  orderStatusLog: { data: 0, indexes: [0] },
} as const satisfies Record<string, Shape>;

const ITEMS_PER_ORDER = 3.5;
const PAGE = 16384;
const FRAGMENT_PAGES = 32;
const EXTENT_PAGES = 64;
/** Where the volume goes; the big three (events, orders, order_items) take 80%. */
const MEDIUM_SHARES = { employees: 0.07, customers: 0.09, products: 0.04 } as const;
const BIG_SHARES = { events: 0.38, orders: 0.42 } as const;
const MIN_ROWS = 10;
const DEPARTMENT_COUNT = DEPARTMENTS.length * 2;

export interface Plan {
  departments: number;
  employees: number;
  customers: number;
  products: number;
  orders: number;
  events: number;
}

function segmentBytes(bytes: number): number {
  const pages = Math.max(1, Math.ceil(bytes / PAGE));
  // Page fill varies a little, so a segment near the fragment limit is counted as already holding an
  // extent: plans then keep clear of the 1 MiB cliff instead of landing on either side of it by chance.
  if (pages <= FRAGMENT_PAGES - 3) return pages * PAGE;
  const extents = Math.max(1, Math.ceil((pages - FRAGMENT_PAGES) / EXTENT_PAGES));
  return (FRAGMENT_PAGES + extents * EXTENT_PAGES) * PAGE;
}

function tableBytes(shape: Shape, rows: number): number {
  let total = segmentBytes(rows * shape.data);
  for (const i of shape.indexes) total += segmentBytes(rows * i);
  return total;
}

function bigBytes(orders: number, events: number): number {
  return (
    tableBytes(SHAPES.orders, orders) +
    tableBytes(SHAPES.orderItems, Math.round(orders * ITEMS_PER_ORDER)) +
    tableBytes(SHAPES.events, events)
  );
}

/** The most rows (at least MIN_ROWS) whose modelled size stays within budget. */
function rowsWithin(size: (rows: number) => number, budget: number): number {
  let lo = MIN_ROWS;
  let hi = MIN_ROWS;
  while (size(hi * 2) <= budget) hi *= 2;
  hi *= 2;
  while (hi - lo > 1) {
    const mid = Math.floor((lo + hi) / 2);
    if (size(mid) <= budget) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Row counts for a dataset of about sizeBytes. */
export function planDataset(sizeBytes: number): Plan {
  const fixed = tableBytes(SHAPES.departments, DEPARTMENT_COUNT) + tableBytes(SHAPES.orderStatusLog, 0);
  const medium = {
    employees: rowsWithin((n) => tableBytes(SHAPES.employees, n), sizeBytes * MEDIUM_SHARES.employees),
    customers: rowsWithin((n) => tableBytes(SHAPES.customers, n), sizeBytes * MEDIUM_SHARES.customers),
    products: rowsWithin((n) => tableBytes(SHAPES.products, n), sizeBytes * MEDIUM_SHARES.products),
  };
  const rest =
    sizeBytes -
    fixed -
    tableBytes(SHAPES.employees, medium.employees) -
    tableBytes(SHAPES.customers, medium.customers) -
    tableBytes(SHAPES.products, medium.products);
  // The big tables grow together (in units of 1 KB of their share) until they fill what is left; the step
  // just past the budget wins when it lands closer.
  const orderBytes = SHAPES.orders.data + ITEMS_PER_ORDER * SHAPES.orderItems.data;
  const big = (k: number) => ({
    orders: Math.max(MIN_ROWS, Math.round((k * 1000 * BIG_SHARES.orders) / orderBytes)),
    events: Math.max(MIN_ROWS, Math.round((k * 1000 * BIG_SHARES.events) / SHAPES.events.data)),
  });
  const sizeOf = (k: number) => {
    const b = big(k);
    return bigBytes(b.orders, b.events);
  };
  const k = rowsWithin(sizeOf, rest);
  const chosen = Math.abs(sizeOf(k + 1) - rest) < Math.abs(rest - sizeOf(k)) ? k + 1 : k;
  return { departments: DEPARTMENT_COUNT, ...medium, ...big(chosen) };
}

/** Modelled data + index volume of a plan, per table. */
function planBytes(p: Plan): Record<keyof Plan, number> {
  return {
    departments: tableBytes(SHAPES.departments, p.departments) + tableBytes(SHAPES.orderStatusLog, 0),
    employees: tableBytes(SHAPES.employees, p.employees),
    customers: tableBytes(SHAPES.customers, p.customers),
    products: tableBytes(SHAPES.products, p.products),
    orders: bigBytes(p.orders, p.events) - tableBytes(SHAPES.events, p.events),
    events: tableBytes(SHAPES.events, p.events),
  };
}

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
  plan: Plan;
  /** Modelled bytes per row, for progress. */
  perRow: (t: keyof Plan) => number;
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
