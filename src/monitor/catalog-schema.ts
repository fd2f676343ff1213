// The catalog's SQLite schema, its migrations, and rows read back as typed records.
import { chmodSync, closeSync, mkdirSync, openSync } from "node:fs";
import { dirname } from "node:path";
import type { DatabaseSync } from "node:sqlite";
import { StrongboxError } from "../errors.ts";
import type { Incident, Notification, NotificationEvent, Run, RunResult, Severity } from "./catalog-types.ts";

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

export type Row = Record<string, unknown>;

export function str(v: unknown): string {
  return typeof v === "string" ? v : String(v);
}
export function strOrNull(v: unknown): string | null {
  return v === null || v === undefined ? null : str(v);
}
export function num(v: unknown): number {
  return typeof v === "bigint" ? Number(v) : (v as number);
}
export function numOrNull(v: unknown): number | null {
  return v === null || v === undefined ? null : num(v);
}
export function json(v: unknown): Record<string, unknown> | null {
  if (typeof v !== "string") return null;
  try {
    const parsed: unknown = JSON.parse(v);
    return parsed && typeof parsed === "object" ? (parsed as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}

export function toRun(r: Row): Run {
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

export function toIncident(r: Row): Incident {
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

export function toNotification(r: Row): Notification {
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

export function prepareFile(path: string): void {
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

export function migrate(db: DatabaseSync, path: string): void {
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
