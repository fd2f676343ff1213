// The run catalog: every run of every command (failed and killed ones too) plus the alert state, in
// one SQLite file through Node's built-in node:sqlite, so there is no native addon to build.
// Several processes (a cron backup, the daemon, `status`) may use it at once: WAL mode and a busy
// timeout let readers and one writer proceed without "database is locked" errors.
import { chmodSync, closeSync, mkdirSync, openSync, readFileSync } from "node:fs";
import { hostname } from "node:os";
import { dirname } from "node:path";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { errorMessage, StrongboxError } from "../errors.ts";

export type RunResult = "running" | "ok" | "failed" | "aborted" | "killed";
export type FinishedResult = "ok" | "failed" | "aborted";
export const RUN_RESULTS: readonly RunResult[] = ["running", "ok", "failed", "aborted", "killed"];

export interface RunMeta {
  /** The command: "backup", "verify", "restore-test", "copy", "prune", … */
  command: string;
  /** The repository written or checked; for `copy`, the destination. */
  repository: string;
  /** The Galera node the run used (the donor of a backup), when there is one. */
  node?: string | undefined;
  /** A finer kind within the command ("full", "incremental", "logical"); history is judged per kind. */
  kind?: string | undefined;
}

export interface Run {
  id: number;
  command: string;
  repository: string;
  node: string | null;
  kind: string | null;
  host: string;
  pid: number;
  /** Epoch milliseconds. */
  startedAt: number;
  endedAt: number | null;
  durationMs: number | null;
  bytes: number | null;
  result: RunResult;
  error: string | null;
  details: Record<string, unknown> | null;
}

export interface FinishInfo {
  result: FinishedResult;
  bytes?: number | undefined;
  /** One line, no secrets: it is shown in alerts and on the dashboard. It is redacted again here. */
  error?: string | undefined;
  details?: Record<string, unknown> | undefined;
  /** Set when only known once the work ran (the donor chosen, full vs incremental by policy). */
  node?: string | undefined;
  kind?: string | undefined;
}

export interface RunFilter {
  result?: RunResult | undefined;
  /** undefined: any kind; null: only runs recorded without a kind. */
  kind?: string | null | undefined;
}

export type Severity = "warning" | "critical";
export type NotificationEvent = "open" | "resolved";

export interface Incident {
  id: number;
  rule: string;
  repository: string;
  /** What within the repository: a command, or command/kind. */
  subject: string;
  severity: Severity;
  message: string;
  details: Record<string, unknown> | null;
  openedAt: number;
  lastSeenAt: number;
  closedAt: number | null;
}

export interface IncidentKey {
  rule: string;
  repository: string;
  subject: string;
}

export interface Notification {
  id: number;
  incidentId: number;
  event: NotificationEvent;
  channel: string;
  createdAt: number;
  status: "pending" | "sending" | "sent" | "failed";
  attempts: number;
  lastAttemptAt: number | null;
  error: string | null;
}

export interface CatalogOptions {
  /** The clock, epoch milliseconds; tests move it. */
  now?: () => number;
  /** How long a writer waits for another process's transaction (ms). */
  busyTimeoutMs?: number;
}

// Each entry moves the schema one version up; never edit a released entry, append a new one.
const MIGRATIONS: readonly string[] = [
  `CREATE TABLE runs (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     command TEXT NOT NULL,
     repository TEXT NOT NULL,
     node TEXT,
     kind TEXT,
     host TEXT NOT NULL,
     pid INTEGER NOT NULL,
     pid_start TEXT,
     started_at INTEGER NOT NULL,
     ended_at INTEGER,
     duration_ms INTEGER,
     bytes INTEGER,
     result TEXT NOT NULL CHECK (result IN ('running','ok','failed','aborted','killed')),
     error TEXT,
     details TEXT
   );
   CREATE INDEX runs_by_subject ON runs (repository, command, started_at);
   CREATE INDEX runs_by_start ON runs (started_at);
   CREATE INDEX runs_running ON runs (result) WHERE result = 'running';
   CREATE TABLE incidents (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     rule TEXT NOT NULL,
     repository TEXT NOT NULL,
     subject TEXT NOT NULL,
     severity TEXT NOT NULL CHECK (severity IN ('warning','critical')),
     message TEXT NOT NULL,
     details TEXT,
     opened_at INTEGER NOT NULL,
     last_seen_at INTEGER NOT NULL,
     closed_at INTEGER
   );
   CREATE UNIQUE INDEX incidents_open ON incidents (rule, repository, subject) WHERE closed_at IS NULL;
   CREATE TABLE notifications (
     id INTEGER PRIMARY KEY AUTOINCREMENT,
     incident_id INTEGER NOT NULL REFERENCES incidents (id),
     event TEXT NOT NULL CHECK (event IN ('open','resolved')),
     channel TEXT NOT NULL,
     created_at INTEGER NOT NULL,
     status TEXT NOT NULL CHECK (status IN ('pending','sending','sent','failed')),
     attempts INTEGER NOT NULL DEFAULT 0,
     last_attempt_at INTEGER,
     error TEXT
   );
   CREATE INDEX notifications_unsent ON notifications (status) WHERE status <> 'sent';`,
];

export const CATALOG_SCHEMA_VERSION = MIGRATIONS.length;

type Row = Record<string, unknown>;

function str(v: unknown): string {
  return typeof v === "string" ? v : String(v);
}
function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : str(v);
}
function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : (v as number);
}
function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}
function json(v: unknown): Record<string, unknown> | null {
  if (typeof v !== "string") return null;
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

function toRun(r: Row): Run {
  return {
    id: num(r.id),
    command: str(r.command),
    repository: str(r.repository),
    node: strOrNull(r.node),
    kind: strOrNull(r.kind),
    host: str(r.host),
    pid: num(r.pid),
    startedAt: num(r.started_at),
    endedAt: numOrNull(r.ended_at),
    durationMs: numOrNull(r.duration_ms),
    bytes: numOrNull(r.bytes),
    result: str(r.result) as RunResult,
    error: strOrNull(r.error),
    details: json(r.details),
  };
}

function toIncident(r: Row): Incident {
  return {
    id: num(r.id),
    rule: str(r.rule),
    repository: str(r.repository),
    subject: str(r.subject),
    severity: str(r.severity) as Severity,
    message: str(r.message),
    details: json(r.details),
    openedAt: num(r.opened_at),
    lastSeenAt: num(r.last_seen_at),
    closedAt: numOrNull(r.closed_at),
  };
}

function toNotification(r: Row): Notification {
  return {
    id: num(r.id),
    incidentId: num(r.incident_id),
    event: str(r.event) as NotificationEvent,
    channel: str(r.channel),
    createdAt: num(r.created_at),
    status: str(r.status) as Notification["status"],
    attempts: num(r.attempts),
    lastAttemptAt: numOrNull(r.last_attempt_at),
    error: strOrNull(r.error),
  };
}

const SECRET_PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, "[private key]"],
  [/AGE-SECRET-KEY-1[0-9A-Z]+/gi, "AGE-SECRET-KEY-[redacted]"],
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi, "$1[redacted]@"],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
  [
    /\b(password|passwd|pwd|passphrase|secret|token|api[_-]?key|auth)(["']?\s*[=:]\s*["']?)[^\s"',;&]+/gi,
    "$1$2[redacted]",
  ],
];

/** Removes what looks like a credential: recorded errors end up in alerts and on the dashboard. */
export function redact(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_PATTERNS) out = out.replace(re, by);
  return out;
}

/** An error as one redacted line of at most `max` characters. */
export function oneLineError(error: unknown, max = 500): string {
  const line = redact(errorMessage(error))
    .replace(/\s*[\r\n]+\s*/g, " ")
    .trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line || "unknown error";
}

/** The start time of a process as the kernel counts it, to tell a live process from a reused pid. */
export function processStartTime(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    // Field 2 (comm) may contain spaces and parentheses; the fields after the last ")" are fixed.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    return fields[19] ?? null;
  } catch {
    return null;
  }
}

export function isProcessAlive(pid: number, startTime: string | null = null): boolean {
  try {
    process.kill(pid, 0);
  } catch (e) {
    // EPERM: it exists but belongs to someone else.
    if ((e as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  if (startTime === null) return true;
  const now = processStartTime(pid);
  return now === null || now === startTime;
}

function prepareFile(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  closeSync(openSync(path, "a", 0o600));
  try {
    chmodSync(path, 0o600);
  } catch (e) {
    throw new StrongboxError("CATALOG_MODE", `cannot make the run catalog ${path} private (mode 0600)`, {
      cause: e,
      hint: `chmod 600 ${path}`,
    });
  }
}

export class Catalog {
  readonly path: string;
  readonly now: () => number;
  readonly host: string;
  readonly #db: DatabaseSync;
  readonly #pidStart: string | null;

  constructor(db: DatabaseSync, path: string, options: CatalogOptions) {
    this.#db = db;
    this.path = path;
    this.now = options.now ?? Date.now;
    this.host = hostname();
    this.#pidStart = processStartTime(process.pid);
  }

  /** Runs fn in a write transaction that other processes wait for (BEGIN IMMEDIATE). */
  transaction<T>(fn: () => T): T {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      const out = fn();
      this.#db.exec("COMMIT");
      return out;
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }

  schemaVersion(): number {
    const row = this.#db.prepare("SELECT version FROM schema_version").get();
    return row ? num(row.version) : 0;
  }

  // ---- runs ----

  /** Writes the row at once (result "running", with this host and pid) and returns its id. */
  startRun(meta: RunMeta): number {
    const r = this.#db
      .prepare(
        `INSERT INTO runs (command, repository, node, kind, host, pid, pid_start, started_at, result)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'running')`,
      )
      .run(
        meta.command,
        meta.repository,
        meta.node ?? null,
        meta.kind ?? null,
        this.host,
        process.pid,
        this.#pidStart,
        this.now(),
      );
    return num(r.lastInsertRowid);
  }

  finishRun(id: number, info: FinishInfo): Run {
    const run = this.getRun(id);
    if (!run) throw new StrongboxError("RUN_UNKNOWN", `no run ${id} in the catalog ${this.path}`);
    const end = this.now();
    const error =
      info.error === undefined ? (info.result === "ok" ? null : info.result) : oneLineError(info.error);
    this.#db
      .prepare(
        `UPDATE runs SET result = ?, ended_at = ?, duration_ms = ?, bytes = ?, error = ?, details = ?,
           node = COALESCE(?, node), kind = COALESCE(?, kind)
         WHERE id = ?`,
      )
      .run(
        info.result,
        end,
        Math.max(0, end - run.startedAt),
        info.bytes ?? null,
        error,
        info.details === undefined ? null : JSON.stringify(info.details),
        info.node ?? null,
        info.kind ?? null,
        id,
      );
    return this.getRun(id)!;
  }

  /**
   * Rows still "running" whose process on this host is gone (kill -9, power loss, OOM) become
   * "killed". Rows of other hosts are left alone: their pids mean nothing here.
   */
  markStaleRuns(): Run[] {
    const marked: Run[] = [];
    const rows = this.#db
      .prepare("SELECT id, pid, pid_start FROM runs WHERE result = 'running' AND host = ?")
      .all(this.host);
    for (const row of rows) {
      const pid = num(row.pid);
      if (isProcessAlive(pid, strOrNull(row.pid_start))) continue;
      const at = this.now();
      const changed = this.#db
        .prepare(
          `UPDATE runs SET result = 'killed', ended_at = ?, error = ?
           WHERE id = ? AND result = 'running'`,
        )
        .run(
          at,
          `process ${pid} on ${this.host} ended without recording a result (found ${new Date(at).toISOString()})`,
          num(row.id),
        );
      if (num(changed.changes) > 0) marked.push(this.getRun(num(row.id))!);
    }
    return marked;
  }

  getRun(id: number): Run | undefined {
    const row = this.#db.prepare("SELECT * FROM runs WHERE id = ?").get(id);
    return row ? toRun(row) : undefined;
  }

  #where(command: string, repository: string, filter: RunFilter): [string, SQLInputValue[]] {
    let sql = "command = ? AND repository = ?";
    const params: SQLInputValue[] = [command, repository];
    if (filter.result !== undefined) {
      sql += " AND result = ?";
      params.push(filter.result);
    }
    if (filter.kind !== undefined) {
      sql += " AND kind IS ?";
      params.push(filter.kind);
    }
    return [sql, params];
  }

  /** The newest run of a command in a repository (by start time), optionally with a given result. */
  lastRun(command: string, repository: string, filter: RunFilter = {}): Run | undefined {
    const [where, params] = this.#where(command, repository, filter);
    const row = this.#db
      .prepare(`SELECT * FROM runs WHERE ${where} ORDER BY started_at DESC, id DESC LIMIT 1`)
      .get(...params);
    return row ? toRun(row) : undefined;
  }

  /** The oldest run of a command in a repository, optionally with a given result. */
  firstRun(command: string, repository: string, filter: RunFilter = {}): Run | undefined {
    const [where, params] = this.#where(command, repository, filter);
    const row = this.#db
      .prepare(`SELECT * FROM runs WHERE ${where} ORDER BY started_at, id LIMIT 1`)
      .get(...params);
    return row ? toRun(row) : undefined;
  }

  /** The newest `limit` runs of a command in a repository, newest first. */
  history(command: string, repository: string, limit: number, filter: RunFilter = {}): Run[] {
    const [where, params] = this.#where(command, repository, filter);
    return this.#db
      .prepare(`SELECT * FROM runs WHERE ${where} ORDER BY started_at DESC, id DESC LIMIT ?`)
      .all(...params, limit)
      .map(toRun);
  }

  /** Runs started at or after `since` (all when omitted), newest first. */
  runs(
    q: { since?: number; limit?: number; repository?: string; command?: string; result?: RunResult } = {},
  ): Run[] {
    let sql = "SELECT * FROM runs WHERE started_at >= ?";
    const params: SQLInputValue[] = [q.since ?? 0];
    for (const [col, v] of [
      ["repository", q.repository],
      ["command", q.command],
      ["result", q.result],
    ] as const) {
      if (v !== undefined) {
        sql += ` AND ${col} = ?`;
        params.push(v);
      }
    }
    sql += " ORDER BY started_at DESC, id DESC LIMIT ?";
    params.push(q.limit ?? 1000);
    return this.#db
      .prepare(sql)
      .all(...params)
      .map(toRun);
  }

  /** Runs still marked running, on any host, oldest first. */
  runningRuns(): Run[] {
    return this.#db
      .prepare("SELECT * FROM runs WHERE result = 'running' ORDER BY started_at, id")
      .all()
      .map(toRun);
  }

  /** The first run ever recorded for a repository: the start of its monitoring. */
  firstRunAt(repository: string): number | undefined {
    const row = this.#db
      .prepare("SELECT MIN(started_at) AS t FROM runs WHERE repository = ?")
      .get(repository);
    return numOrNull(row?.t) ?? undefined;
  }

  /** Every (command, kind, repository) seen, for metrics. */
  subjects(): { command: string; kind: string | null; repository: string }[] {
    return this.#db
      .prepare("SELECT DISTINCT command, kind, repository FROM runs ORDER BY repository, command, kind")
      .all()
      .map((r) => ({ command: str(r.command), kind: strOrNull(r.kind), repository: str(r.repository) }));
  }

  /** Number of runs per (command, repository, result). */
  runCounts(): { command: string; repository: string; result: RunResult; count: number }[] {
    return this.#db
      .prepare(
        "SELECT command, repository, result, COUNT(*) AS n FROM runs GROUP BY command, repository, result",
      )
      .all()
      .map((r) => ({
        command: str(r.command),
        repository: str(r.repository),
        result: str(r.result) as RunResult,
        count: num(r.n),
      }));
  }

  // ---- incidents and their notifications (used by alerts.ts) ----

  openIncident(key: IncidentKey): Incident | undefined {
    const row = this.#db
      .prepare(
        "SELECT * FROM incidents WHERE rule = ? AND repository = ? AND subject = ? AND closed_at IS NULL",
      )
      .get(key.rule, key.repository, key.subject);
    return row ? toIncident(row) : undefined;
  }

  openIncidents(): Incident[] {
    return this.#db
      .prepare("SELECT * FROM incidents WHERE closed_at IS NULL ORDER BY opened_at, id")
      .all()
      .map(toIncident);
  }

  /** Open and closed incidents that were open at some time at or after `since`, newest first. */
  incidents(q: { since?: number; limit?: number } = {}): Incident[] {
    return this.#db
      .prepare(
        `SELECT * FROM incidents WHERE closed_at IS NULL OR closed_at >= ?
         ORDER BY opened_at DESC, id DESC LIMIT ?`,
      )
      .all(q.since ?? 0, q.limit ?? 1000)
      .map(toIncident);
  }

  getIncident(id: number): Incident | undefined {
    const row = this.#db.prepare("SELECT * FROM incidents WHERE id = ?").get(id);
    return row ? toIncident(row) : undefined;
  }

  insertIncident(
    key: IncidentKey & { severity: Severity; message: string; details?: Record<string, unknown> },
  ): Incident {
    const at = this.now();
    const r = this.#db
      .prepare(
        `INSERT INTO incidents (rule, repository, subject, severity, message, details, opened_at, last_seen_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
        key.rule,
        key.repository,
        key.subject,
        key.severity,
        key.message,
        key.details === undefined ? null : JSON.stringify(key.details),
        at,
        at,
      );
    return this.getIncident(num(r.lastInsertRowid))!;
  }

  /** The problem is still there: remember when it was last seen and its latest wording. */
  touchIncident(
    id: number,
    update: { severity: Severity; message: string; details?: Record<string, unknown> },
  ): void {
    this.#db
      .prepare("UPDATE incidents SET last_seen_at = ?, severity = ?, message = ?, details = ? WHERE id = ?")
      .run(
        this.now(),
        update.severity,
        update.message,
        update.details === undefined ? null : JSON.stringify(update.details),
        id,
      );
  }

  closeIncident(id: number): Incident {
    this.#db
      .prepare("UPDATE incidents SET closed_at = ? WHERE id = ? AND closed_at IS NULL")
      .run(this.now(), id);
    return this.getIncident(id)!;
  }

  enqueueNotification(incidentId: number, event: NotificationEvent, channel: string): number {
    const r = this.#db
      .prepare(
        `INSERT INTO notifications (incident_id, event, channel, created_at, status) VALUES (?, ?, ?, ?, 'pending')`,
      )
      .run(incidentId, event, channel, this.now());
    return num(r.lastInsertRowid);
  }

  /**
   * Notifications to (re)try, oldest first: pending ones, failed ones created at or after `since`,
   * and ones another process claimed before `staleBefore` but never finished (it died).
   */
  unsentNotifications(since = 0, staleBefore = 0): Notification[] {
    return this.#db
      .prepare(
        `SELECT * FROM notifications
         WHERE status = 'pending'
            OR (status = 'failed' AND created_at >= ?)
            OR (status = 'sending' AND last_attempt_at < ?)
         ORDER BY id`,
      )
      .all(since, staleBefore)
      .map(toNotification);
  }

  /** Takes a notification for delivery; false when another process has it (so nothing is sent twice). */
  claimNotification(id: number, staleBefore: number): boolean {
    const r = this.#db
      .prepare(
        `UPDATE notifications SET status = 'sending', last_attempt_at = ?
         WHERE id = ? AND (status IN ('pending','failed') OR (status = 'sending' AND last_attempt_at < ?))`,
      )
      .run(this.now(), id, staleBefore);
    return num(r.changes) > 0;
  }

  notifications(q: { incidentId?: number } = {}): Notification[] {
    const rows =
      q.incidentId === undefined
        ? this.#db.prepare("SELECT * FROM notifications ORDER BY id").all()
        : this.#db.prepare("SELECT * FROM notifications WHERE incident_id = ? ORDER BY id").all(q.incidentId);
    return rows.map(toNotification);
  }

  recordDelivery(id: number, outcome: { ok: boolean; attempts: number; error?: string }): void {
    this.#db
      .prepare(
        `UPDATE notifications SET status = ?, attempts = attempts + ?, last_attempt_at = ?, error = ?
         WHERE id = ?`,
      )
      .run(
        outcome.ok ? "sent" : "failed",
        outcome.attempts,
        this.now(),
        outcome.error === undefined ? null : oneLineError(outcome.error),
        id,
      );
  }

  close(): void {
    if (this.#db.isOpen) this.#db.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }
}

function migrate(db: DatabaseSync, path: string): void {
  db.exec("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)");
  // IMMEDIATE: two processes opening a new catalog at once must not both migrate.
  db.exec("BEGIN IMMEDIATE");
  try {
    const row = db.prepare("SELECT version FROM schema_version").get();
    const current = row ? num(row.version) : 0;
    if (current > MIGRATIONS.length) {
      throw new StrongboxError(
        "CATALOG_TOO_NEW",
        `the run catalog ${path} has schema version ${current}; this strongbox knows up to ${MIGRATIONS.length}`,
        { hint: "upgrade strongbox, or point monitoring.catalog at another file" },
      );
    }
    for (let v = current; v < MIGRATIONS.length; v++) db.exec(MIGRATIONS[v]!);
    if (!row) db.prepare("INSERT INTO schema_version (version) VALUES (?)").run(MIGRATIONS.length);
    else if (current !== MIGRATIONS.length) {
      db.prepare("UPDATE schema_version SET version = ?").run(MIGRATIONS.length);
    }
    db.exec("COMMIT");
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}

/** Opens (creating when missing: file 0600, directory 0700) and migrates the catalog. ":memory:" works too. */
export function openCatalog(path: string, options: CatalogOptions = {}): Catalog {
  const memory = path === ":memory:";
  let db: DatabaseSync;
  try {
    if (!memory) prepareFile(path);
    db = new DatabaseSync(path);
  } catch (e) {
    if (e instanceof StrongboxError) throw e;
    throw new StrongboxError("CATALOG_OPEN", `cannot open the run catalog ${path}: ${errorMessage(e)}`, {
      cause: e,
    });
  }
  try {
    db.exec(`PRAGMA busy_timeout = ${Math.trunc(options.busyTimeoutMs ?? 10_000)}`);
    if (!memory) db.exec("PRAGMA journal_mode = WAL");
    db.exec("PRAGMA synchronous = NORMAL");
    db.exec("PRAGMA foreign_keys = ON");
    migrate(db, path);
  } catch (e) {
    db.close();
    if (e instanceof StrongboxError) throw e;
    throw new StrongboxError("CATALOG_OPEN", `the run catalog ${path} is unusable: ${errorMessage(e)}`, {
      cause: e,
      hint: "is it a strongbox catalog? move it aside and a new one is created",
    });
  }
  return new Catalog(db, path, options);
}

// ---- recording a run around a piece of work ----

export interface RunHandle {
  readonly id: number | undefined;
  /** Set by the work: the bytes written (backup size) or read. */
  bytes: number | undefined;
  /** Set by the work: facts shown with the run (backup id, LSNs…); never secrets. */
  details: Record<string, unknown> | undefined;
  /** Set by the work when decided during the run: the donor node, full or incremental. */
  node: string | undefined;
  kind: string | undefined;
}

export interface RecordRunOptions<T> {
  /** Derives bytes and details from the work's result when the handle was not set. */
  summarize?: (result: T) => { bytes?: number; details?: Record<string, unknown> };
  /** A catalog that cannot be written must not stop a backup: the error goes here instead. */
  onCatalogError?: (error: unknown) => void;
}

/** True for a run stopped on purpose (a signal, an operator); a timeout is a failure. */
export function isAbort(error: unknown): boolean {
  if (error instanceof StrongboxError) return error.code === "ABORTED";
  if (!(error instanceof Error) || error.name !== "AbortError") return false;
  // An AbortError caused by AbortSignal.timeout() is a time limit that was hit.
  return (error.cause as { name?: unknown } | undefined)?.name !== "TimeoutError";
}

function defaultCatalogError(error: unknown): void {
  process.emitWarning(`the run catalog could not be written: ${oneLineError(error)}`, "StrongboxCatalog");
}

/**
 * Records `fn` as a run: the row is written before it starts, and finished as ok, failed or aborted
 * (with the one-line, redacted error) when it ends. The work's own result or error passes through.
 */
export async function recordRun<T>(
  catalog: Catalog,
  meta: RunMeta,
  fn: (run: RunHandle) => Promise<T> | T,
  options: RecordRunOptions<T> = {},
): Promise<T> {
  const onCatalogError = options.onCatalogError ?? defaultCatalogError;
  let id: number | undefined;
  try {
    id = catalog.startRun(meta);
  } catch (e) {
    onCatalogError(e);
  }
  const handle: RunHandle = { id, bytes: undefined, details: undefined, node: undefined, kind: undefined };
  const finish = (info: FinishInfo) => {
    if (id === undefined) return;
    try {
      catalog.finishRun(id, info);
    } catch (e) {
      onCatalogError(e);
    }
  };
  let result: T;
  try {
    result = await fn(handle);
  } catch (e) {
    finish({
      result: isAbort(e) ? "aborted" : "failed",
      error: oneLineError(e),
      bytes: handle.bytes,
      details: handle.details,
      node: handle.node,
      kind: handle.kind,
    });
    throw e;
  }
  let summary: { bytes?: number; details?: Record<string, unknown> } = {};
  try {
    summary = options.summarize?.(result) ?? {};
  } catch (e) {
    onCatalogError(e);
  }
  finish({
    result: "ok",
    bytes: handle.bytes ?? summary.bytes,
    details: handle.details ?? summary.details,
    node: handle.node,
    kind: handle.kind,
  });
  return result;
}
