// The run catalog: every run of every command (failed and killed ones too) plus the alert state, in
// one SQLite file through Node's built-in node:sqlite, so there is no native addon to build.
// Several processes (a cron backup, the daemon, `status`) may use it at once: WAL mode and a busy
// timeout let readers and one writer proceed without "database is locked" errors.
import { hostname } from "node:os";
import { DatabaseSync, type SQLInputValue } from "node:sqlite";
import { errorMessage, StrongboxError } from "../errors.ts";
import { pidAlive, processStartTime } from "../util/liveness.ts";
import { oneLineError } from "../util/redact.ts";
import {
  migrate,
  num,
  numOrNull,
  prepareFile,
  str,
  strOrNull,
  toIncident,
  toNotification,
  toRun,
} from "./catalog-schema.ts";
import type {
  CatalogOptions,
  FinishInfo,
  Incident,
  IncidentKey,
  Notification,
  NotificationEvent,
  Run,
  RunFilter,
  RunMeta,
  RunResult,
  Severity,
} from "./catalog-types.ts";

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

  /** Forgets a run that never was one (a usage error: nothing was attempted). */
  deleteRun(id: number): void {
    this.#db.prepare("DELETE FROM runs WHERE id = ?").run(id);
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
      if (pidAlive(pid, strOrNull(row.pid_start))) continue;
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
    q: {
      since?: number;
      limit?: number;
      repository?: string;
      command?: string;
      excludeCommand?: string;
      result?: RunResult;
    } = {},
  ): Run[] {
    let sql = "SELECT * FROM runs WHERE started_at >= ?";
    const params: SQLInputValue[] = [q.since ?? 0];
    if (q.excludeCommand !== undefined) {
      sql += " AND command <> ?";
      params.push(q.excludeCommand);
    }
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

  /** The channels an incident's `event` was queued for (whatever became of the delivery). */
  notifiedChannels(incidentId: number, event: NotificationEvent): Set<string> {
    return new Set(
      this.#db
        .prepare("SELECT DISTINCT channel FROM notifications WHERE incident_id = ? AND event = ?")
        .all(incidentId, event)
        .map((r) => str(r.channel)),
    );
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
