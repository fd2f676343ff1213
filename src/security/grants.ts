// The least-privilege backup account for MariaDB 10.11: which global privileges each backup method
// needs and why, the exact GRANT statements, and a SHOW GRANTS parser to compare an account with
// them (privilege-errors.ts explains a denied privilege in one line).
// Every entry below was proved on a real 10.11 node by revoking it alone (test/security/grants.test.ts).
import { createHash } from "node:crypto";
import { StrongboxError } from "../errors.ts";
import { type Connection, queryRows } from "../galera/connection.ts";

/** How the account is used: physical or logical backups, and binlog archiving for point-in-time recovery. */
export type BackupMethod = "physical" | "logical" | "binlog";
/** What "both" means: the two backup methods (binlog archiving is asked for by name). */
export const BACKUP_METHODS: readonly BackupMethod[] = ["physical", "logical"];

export interface PrivilegeNeed {
  privilege: string;
  /** The methods that need it. */
  methods: readonly BackupMethod[];
  /** A few words for error messages. */
  short: string;
  /** Who needs it, for people: the statement that fails without it. */
  why: string;
  /** What goes wrong without it. */
  without: string;
}

/**
 * The minimum, in MariaDB's own SHOW GRANTS order. Strongbox's inventory (exact row counts, routine,
 * trigger and event counts that restore-test compares) runs for both methods.
 */
export const PRIVILEGE_NEEDS: readonly PrivilegeNeed[] = [
  {
    privilege: "SELECT",
    short: "to read every table (inventory row counts, mariadb-dump)",
    methods: ["physical", "logical"],
    why: "the inventory's SELECT COUNT(*) of every table and information_schema visibility; mariadb-dump reads every row, mysql.* included (accounts, routines)",
    without:
      "mariadb-dump: SELECT command denied (1142); inventory: SELECT command denied, or an empty inventory that fails every restore-test",
  },
  {
    privilege: "RELOAD",
    short: "for mariabackup's BACKUP STAGE and FLUSH statements",
    methods: ["physical"],
    why: "mariabackup: BACKUP STAGE, BACKUP LOCK, FLUSH BINARY LOGS, FLUSH ENGINE LOGS",
    without: "mariabackup: Error: missing required privilege RELOAD on *.*",
  },
  {
    privilege: "PROCESS",
    short: "for mariabackup's SHOW ENGINE INNODB STATUS",
    methods: ["physical"],
    why: "mariabackup: SHOW ENGINE INNODB STATUS (checkpoint LSN) and its start-up privilege check",
    without: "mariabackup: Error: missing required privilege PROCESS on *.*",
  },
  {
    privilege: "REPLICATION SLAVE",
    short: "for the binlog dump that binlog archive receives events with",
    methods: ["binlog"],
    why: "binlog archive: mariadb-binlog --read-from-remote-server (--stop-never) asks for a binlog dump, as a replica does",
    without:
      "mariadb-binlog: Access denied; you need (at least one of) the REPLICATION SLAVE privilege(s) for this operation (1227)",
  },
  {
    privilege: "BINLOG MONITOR",
    short: "for SHOW MASTER STATUS / SHOW BINARY LOGS",
    methods: ["physical", "binlog"],
    why: "mariabackup: SHOW MASTER STATUS for the binlog file, position and GTID recorded with the backup; binlog archive: SHOW BINARY LOGS",
    without:
      "mariabackup: failed to execute query SHOW MASTER STATUS: Access denied (1227); binlog archive: SHOW BINARY LOGS failed (BINLOG_NOT_ENABLED)",
  },
  {
    privilege: "SHOW VIEW",
    short: "for mariadb-dump's SHOW CREATE of views",
    methods: ["logical"],
    why: "mariadb-dump: SHOW CREATE TABLE of views (mysql.user is a view)",
    without: "mariadb-dump: SHOW VIEW command denied (1142)",
  },
  {
    privilege: "EVENT",
    short: "to see events (mariadb-dump --events, the inventory)",
    methods: ["physical", "logical"],
    why: "mariadb-dump --events: SHOW EVENTS; the inventory counts events in information_schema.EVENTS",
    without: "mariadb-dump: Access denied to database (1044) at SHOW EVENTS",
  },
  {
    privilege: "TRIGGER",
    short: "to see triggers (mariadb-dump --triggers, the inventory)",
    methods: ["physical", "logical"],
    why: "mariadb-dump --triggers: SHOW TRIGGERS; the inventory counts triggers in information_schema.TRIGGERS",
    without:
      "nothing fails: mariadb-dump and information_schema silently leave the triggers out, so only the grant check catches it",
  },
];

export interface NotNeeded {
  privilege: string;
  why: string;
}

/** Privileges often recommended for backups that MariaDB 10.11 with Strongbox's options does not need. */
export const NOT_NEEDED: readonly NotNeeded[] = [
  {
    privilege: "LOCK TABLES",
    why: "mariabackup 10.11 uses BACKUP STAGE and BACKUP LOCK (RELOAD); mariadb-dump --single-transaction takes no table locks",
  },
  {
    privilege: "SLAVE MONITOR",
    why: "--galera-info reads wsrep status (SHOW STATUS, no privilege); mariabackup prints a warning without it but does not use it (only --slave-info and --safe-slave-backup do)",
  },
  {
    privilege: "RELOAD, BINLOG MONITOR for logical backups",
    why: "with --single-transaction --master-data mariadb-dump reads Binlog_snapshot_file/position inside its snapshot: no FLUSH TABLES WITH READ LOCK, no SHOW MASTER STATUS",
  },
  {
    privilege: "SUPER",
    why: "only SET GLOBAL wsrep_desync needs it; that runs on the separate, optional admin account",
  },
];

export type MethodChoice = BackupMethod | "both";

export function methodsOf(choice: MethodChoice | readonly BackupMethod[]): BackupMethod[] {
  if (typeof choice !== "string") return [...new Set(choice)];
  return choice === "both" ? [...BACKUP_METHODS] : [choice];
}

export function requiredPrivileges(methods: readonly BackupMethod[]): PrivilegeNeed[] {
  return PRIVILEGE_NEEDS.filter((p) => p.methods.some((m) => methods.includes(m)));
}

/** 'user'@'host' with SQL string quoting. */
export function accountName(user: string, host: string): string {
  const q = (s: string) => `'${s.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
  return `${q(user)}@${q(host)}`;
}

export function grantStatement(methods: readonly BackupMethod[], user: string, host: string): string {
  const privs = requiredPrivileges(methods).map((p) => p.privilege);
  return `GRANT ${privs.join(", ")} ON *.* TO ${accountName(user, host)};`;
}

/**
 * The mysql_native_password hash of a password ('*' + SHA1(SHA1(pw)) in upper-case hex), so that
 * CREATE USER … IDENTIFIED BY PASSWORD sends neither the password over the wire nor into the
 * server's general log or binary log.
 */
export function nativePasswordHash(password: string): string {
  const inner = createHash("sha1").update(password, "utf8").digest();
  return `*${createHash("sha1").update(inner).digest("hex").toUpperCase()}`;
}

// ---- SHOW GRANTS ----

export interface ParsedGrant {
  /** Upper-case privilege names, aliases folded (REPLICATION CLIENT → BINLOG MONITOR). */
  privileges: string[];
  /** "*.*", "`db`.*", "`db`.`t`", "PROCEDURE `db`.`p`", or "" for a role grant. */
  on: string;
  /** Role names for GRANT role TO …. */
  roles: string[];
  grantOption: boolean;
  proxy: boolean;
  text: string;
}

const ALIASES: Record<string, string> = {
  "REPLICATION CLIENT": "BINLOG MONITOR",
  "REPLICA MONITOR": "SLAVE MONITOR",
  "REPLICATION REPLICA": "REPLICATION SLAVE",
  "ALL PRIVILEGES": "ALL",
};

export function normalizePrivilege(p: string): string {
  const name = p
    .replace(/\s*\(.*\)\s*$/s, "")
    .trim()
    .replace(/\s+/g, " ")
    .toUpperCase();
  return ALIASES[name] ?? name;
}

/** Splits at `sep` where not inside backquotes, quotes or parentheses. */
function splitTop(text: string, sep: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quote = "";
  let start = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (quote) {
      if (c === quote) quote = "";
      continue;
    }
    if (c === "`" || c === "'" || c === '"') quote = c;
    else if (c === "(") depth++;
    else if (c === ")") depth--;
    else if (depth === 0 && text.startsWith(sep, i)) {
      out.push(text.slice(start, i));
      start = i + sep.length;
      i += sep.length - 1;
    }
  }
  out.push(text.slice(start));
  return out;
}

export function parseGrant(line: string): ParsedGrant | undefined {
  const text = line.trim();
  if (!/^GRANT\s/i.test(text)) return undefined;
  const body = text.slice(6);
  const [head, ...afterTo] = splitTop(body, " TO ");
  if (head === undefined || afterTo.length === 0) return undefined;
  const tail = afterTo.join(" TO ");
  const grantOption = /\bWITH\b.*\bGRANT OPTION\b/i.test(tail.replace(/'[^']*'/g, "''"));
  const parts = splitTop(head, " ON ");
  if (parts.length === 1) {
    const roles = splitTop(head, ",").map((r) => r.trim().replace(/^[`']|[`']$/g, ""));
    return { privileges: [], on: "", roles, grantOption, proxy: false, text };
  }
  const on = parts.slice(1).join(" ON ").trim();
  const privileges = splitTop(parts[0]!, ",")
    .map(normalizePrivilege)
    .filter((p) => p !== "");
  const proxy = privileges.includes("PROXY");
  return { privileges, on, roles: [], grantOption, proxy, text };
}

export function parseGrants(lines: readonly string[]): ParsedGrant[] {
  return lines.map(parseGrant).filter((g): g is ParsedGrant => g !== undefined);
}

export type AuditSeverity = "info" | "low" | "medium" | "high" | "critical";

/** How much harm an unneeded privilege of the backup account can do. */
export function privilegeRisk(privilege: string): AuditSeverity {
  const p = normalizePrivilege(privilege);
  if (
    [
      "ALL",
      "SUPER",
      "FILE",
      "GRANT OPTION",
      "CREATE USER",
      "SET USER",
      "PROXY",
      "SHUTDOWN",
      "BINLOG REPLAY",
    ].includes(p)
  ) {
    return "critical";
  }
  if (
    [
      "INSERT",
      "UPDATE",
      "DELETE",
      "DELETE HISTORY",
      "CREATE",
      "DROP",
      "ALTER",
      "INDEX",
      "CREATE VIEW",
      "CREATE ROUTINE",
      "ALTER ROUTINE",
      "EXECUTE",
      "CREATE TEMPORARY TABLES",
      "CREATE TABLESPACE",
      "BINLOG ADMIN",
      "CONNECTION ADMIN",
      "REPLICATION SLAVE ADMIN",
      "REPLICATION MASTER ADMIN",
      "READ_ONLY ADMIN",
      "FEDERATED ADMIN",
      "REPLICATION SLAVE",
    ].includes(p)
  ) {
    return "high";
  }
  if (
    [
      "LOCK TABLES",
      "SLAVE MONITOR",
      "SHOW DATABASES",
      "BINLOG MONITOR",
      "RELOAD",
      "SHOW VIEW",
      "REFERENCES",
    ].includes(p)
  ) {
    return "low";
  }
  return "medium";
}

export const SEVERITY_ORDER: readonly AuditSeverity[] = ["info", "low", "medium", "high", "critical"];

export function worstSeverity(list: readonly AuditSeverity[]): AuditSeverity | undefined {
  let worst: AuditSeverity | undefined;
  for (const s of list) {
    if (worst === undefined || SEVERITY_ORDER.indexOf(s) > SEVERITY_ORDER.indexOf(worst)) worst = s;
  }
  return worst;
}

export interface ExtraPrivilege {
  privilege: string;
  on: string;
  risk: AuditSeverity;
}

export interface GrantComparison {
  /** Required global privileges the account does not have. */
  missing: string[];
  /** What it has beyond the minimum (global, per database or table, roles, GRANT OPTION). */
  extra: ExtraPrivilege[];
}

export function compareGrants(
  grants: readonly ParsedGrant[],
  methods: readonly BackupMethod[],
): GrantComparison {
  const required = requiredPrivileges(methods).map((p) => p.privilege);
  const global = new Set<string>();
  const extra: ExtraPrivilege[] = [];
  for (const g of grants) {
    if (g.roles.length > 0) {
      for (const r of g.roles) extra.push({ privilege: `role ${r}`, on: "", risk: "medium" });
    }
    if (g.grantOption) extra.push({ privilege: "GRANT OPTION", on: g.on || "(role)", risk: "critical" });
    if (g.on === "*.*") for (const p of g.privileges) global.add(p);
  }
  const all = global.has("ALL");
  for (const p of global) {
    if (p === "USAGE" || required.includes(p)) continue;
    extra.push({ privilege: p, on: "*.*", risk: privilegeRisk(p) });
  }
  for (const g of grants) {
    if (g.on === "*.*" || g.roles.length > 0) continue;
    for (const p of g.privileges) {
      // A required privilege repeated on a database or table adds nothing.
      if (p === "USAGE" || (required.includes(p) && global.has(p))) continue;
      extra.push({ privilege: p, on: g.on, risk: privilegeRisk(p) });
    }
  }
  const missing = all ? [] : required.filter((p) => !global.has(p));
  return { missing, extra };
}

/** SHOW GRANTS of the connected account (no privilege needed to see one's own). */
export async function showOwnGrants(conn: Connection): Promise<string[]> {
  const rows = await queryRows<Record<string, string>>(conn, "SHOW GRANTS");
  return rows.map((r) => String(Object.values(r)[0] ?? ""));
}

/** SHOW GRANTS FOR an account (needs SELECT on mysql.* or being that account); undefined when it does not exist. */
export async function showGrantsFor(
  conn: Connection,
  user: string,
  host: string,
): Promise<string[] | undefined> {
  try {
    const rows = await queryRows<Record<string, string>>(conn, "SHOW GRANTS FOR ?@?", [user, host]);
    return rows.map((r) => String(Object.values(r)[0] ?? ""));
  } catch (e) {
    if ((e as { errno?: number }).errno === 1141) return undefined;
    throw e;
  }
}

/**
 * The check to run before a backup with the backup account's own connection: what it lacks for
 * these methods. It is the only way to notice a missing TRIGGER, which fails nothing.
 */
export async function checkAccountGrants(
  conn: Connection,
  methods: readonly BackupMethod[],
): Promise<GrantComparison & { account: string; grants: string[] }> {
  const [row] = await queryRows<{ a: string }>(conn, "SELECT CURRENT_USER() AS a");
  const grants = await showOwnGrants(conn);
  const at = String(row?.a ?? "").lastIndexOf("@");
  const cu = String(row?.a ?? "");
  const account = at > 0 ? accountName(cu.slice(0, at), cu.slice(at + 1)) : cu;
  return { ...compareGrants(parseGrants(grants), methods), account, grants };
}

/**
 * For the start of every backup, on the backup account's own connection to the donor: throws
 * BACKUP_PRIVILEGES naming what is missing (also TRIGGER, whose absence fails nothing), else
 * returns the account as the server sees it ('user'@'host'), for explainPrivilegeError.
 */
export async function preflightBackupGrants(
  conn: Connection,
  methods: readonly BackupMethod[],
): Promise<string> {
  const r = await checkAccountGrants(conn, methods);
  if (r.missing.length > 0) {
    throw new StrongboxError("BACKUP_PRIVILEGES", missingGrantsMessage(r.missing, r.account), {
      stage: "grants",
      hint: "strongbox user grants prints the minimal grants",
      details: { missing: r.missing, account: r.account },
    });
  }
  return r.account;
}

/** One line for a missing privilege found by checkAccountGrants. */
export function missingGrantsMessage(missing: readonly string[], account: string): string {
  const why = missing
    .map((p) => PRIVILEGE_NEEDS.find((n) => n.privilege === p))
    .filter((n): n is PrivilegeNeed => n !== undefined)
    .map((n) => (missing.length > 1 ? `${n.privilege} ${n.short}` : n.short))
    .join("; ");
  return `the backup account lacks ${plural(missing)}, needed ${why}: GRANT ${missing.join(", ")} ON *.* TO ${account};`;
}

export function plural(privs: readonly string[]): string {
  return privs.length === 1 ? `the ${privs[0]} privilege` : `the ${privs.join(", ")} privileges`;
}
