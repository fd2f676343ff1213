// What the run catalog records: runs of commands, incidents (alert state) and their notifications.
export type RunResult = "running" | "ok" | "failed" | "aborted" | "killed";
export type FinishedResult = "ok" | "failed" | "aborted";
export const RUN_RESULTS: readonly RunResult[] = ["running", "ok", "failed", "aborted", "killed"];

/** The commands recorded as runs: every one that changes or proves something. */
export const RUN_COMMANDS = [
  "backup",
  "verify",
  "restore-test",
  "restore",
  "copy",
  "prune",
  "key-rotate",
  "binlog-archive",
] as const;

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
