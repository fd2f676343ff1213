// Single tables on a server, for restore-table: names given on the command line, what a server
// holds of them (engine, triggers, columns), their row count and checksum, and renaming a table
// with its triggers on the throw-away scratch server before it is dumped under its new name.
import { StrongboxError, UsageError } from "../errors.ts";
import type { Connection } from "../galera/connection.ts";
import { ident } from "./sql.ts";

export interface TableRef {
  db: string;
  table: string;
}

/** MariaDB's limit for schema, table and trigger names. */
export const MAX_NAME = 64;

export function tableName(t: TableRef): string {
  return `${t.db}.${t.table}`;
}

export function qualified(t: TableRef): string {
  return `${ident(t.db)}.${ident(t.table)}`;
}

function checkName(name: string, what: string): void {
  if (name.length === 0 || name.length > MAX_NAME || /[\0/\\]/.test(name) || name !== name.trim()) {
    throw new UsageError(`${what} "${name}" is not a valid name (1 to ${MAX_NAME} characters)`);
  }
}

/** A schema name from the command line. */
export function parseSchemaName(name: string): string {
  const m = /^`([^`]+)`$/.exec(name);
  const db = m ? m[1]! : name;
  checkName(db, "schema");
  return db;
}

/** "db.t1,db.t2" (a name may be `back-quoted` when it holds a dot) into table references. */
export function parseTableList(list: string): TableRef[] {
  const refs: TableRef[] = [];
  for (const item of list.split(",").map((s) => s.trim())) {
    const m = /^(?:`([^`]+)`|([^.`]+))\.(?:`([^`]+)`|([^`]+))$/.exec(item);
    if (!m) throw new UsageError(`"${item}" is not DB.TABLE`);
    const ref = { db: (m[1] ?? m[2])!, table: (m[3] ?? m[4])! };
    checkName(ref.db, "schema");
    checkName(ref.table, "table");
    if (refs.some((r) => r.db === ref.db && r.table === ref.table)) {
      throw new UsageError(`${tableName(ref)} is named twice`);
    }
    refs.push(ref);
  }
  return refs;
}

/** Appends a suffix to a name, refusing one MariaDB would not accept. */
export function withSuffix(name: string, suffix: string, what: string): string {
  const out = `${name}${suffix}`;
  if (out.length > MAX_NAME) {
    throw new UsageError(
      `${what} "${out}" would be longer than ${MAX_NAME} characters: choose a shorter --rename suffix`,
    );
  }
  return out;
}

/** A chosen table or schema that the restored server does not have. */
export function missingTable(what: string, at: string): StrongboxError {
  return new StrongboxError("RESTORE_TABLE_MISSING", `${what} did not exist ${at}`, {
    hint: "check the name, or choose a target time when it existed (strongbox list shows the backups)",
  });
}

export interface TableFacts extends TableRef {
  engine: string;
  /** Trigger names, in their action order. */
  triggers: string[];
}

type Rows<T> = [T[], unknown];

/** The base tables of `db` (all, or those named), with engine and triggers. Views are not tables here. */
export async function describeTables(conn: Connection, db: string, names?: string[]): Promise<TableFacts[]> {
  const [tables] = (await conn.query(
    "SELECT TABLE_NAME AS t, ENGINE AS e FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_TYPE IN ('BASE TABLE', 'SYSTEM VERSIONED') ORDER BY TABLE_NAME",
    [db],
  )) as unknown as Rows<{ t: string; e: string | null }>;
  const [triggers] = (await conn.query(
    "SELECT TRIGGER_NAME AS n, EVENT_OBJECT_TABLE AS t FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? ORDER BY EVENT_OBJECT_TABLE, ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
    [db],
  )) as unknown as Rows<{ n: string; t: string }>;
  return tables
    .filter((r) => !names || names.includes(r.t))
    .map((r) => ({
      db,
      table: r.t,
      engine: r.e ?? "",
      triggers: triggers.filter((g) => g.t === r.t).map((g) => g.n),
    }));
}

/** Which of the names exist in `db` as a table or view, and which as a trigger. */
export async function existingNames(
  conn: Connection,
  db: string,
  names: { tables: string[]; triggers: string[] },
): Promise<{ tables: string[]; triggers: string[] }> {
  const [t] = (await conn.query(
    "SELECT TABLE_NAME AS n FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
    [db],
  )) as unknown as Rows<{ n: string }>;
  const [g] = (await conn.query(
    "SELECT TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ?",
    [db],
  )) as unknown as Rows<{ n: string }>;
  // Table names compare as the server does on case-insensitive file systems only; be strict here.
  return {
    tables: names.tables.filter((n) => t.some((r) => r.n === n)),
    triggers: names.triggers.filter((n) => g.some((r) => r.n === n)),
  };
}

export async function schemaExists(conn: Connection, db: string): Promise<boolean> {
  const [r] = (await conn.query("SELECT 1 AS x FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?", [
    db,
  ])) as unknown as Rows<{ x: number }>;
  return r.length > 0;
}

/** The schema's default character set and collation, to create its restored copy with. */
export async function schemaCharset(
  conn: Connection,
  db: string,
): Promise<{ charset: string; collation: string }> {
  const [[r]] = (await conn.query(
    "SELECT DEFAULT_CHARACTER_SET_NAME AS c, DEFAULT_COLLATION_NAME AS l FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
    [db],
  )) as unknown as Rows<{ c: string; l: string }>;
  if (!r) throw missingTable(`schema ${db}`, "on this server");
  return { charset: r.c, collation: r.l };
}

/** Column names and types in order: what must match for --replace to load rows into a live table. */
export async function columnSignature(conn: Connection, t: TableRef): Promise<string> {
  const [cols] = (await conn.query(
    "SELECT COLUMN_NAME AS n, COLUMN_TYPE AS y FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
    [t.db, t.table],
  )) as unknown as Rows<{ n: string; y: string }>;
  return cols.map((c) => `${c.n} ${c.y}`).join(", ");
}

export interface TableSum {
  rows: number;
  /** CHECKSUM TABLE … EXTENDED: over every row's contents, whatever the engine. */
  checksum: string;
}

export async function checksumTable(conn: Connection, t: TableRef): Promise<TableSum> {
  const [[count]] = (await conn.query(`SELECT COUNT(*) AS n FROM ${qualified(t)}`)) as unknown as Rows<{
    n: string;
  }>;
  const [[sum]] = (await conn.query(`CHECKSUM TABLE ${qualified(t)} EXTENDED`)) as unknown as Rows<{
    Checksum: string | null;
  }>;
  return { rows: Number(count!.n), checksum: String(sum?.Checksum ?? "") };
}

interface TriggerDef {
  TRIGGER_NAME: string;
  ACTION_TIMING: string;
  EVENT_MANIPULATION: string;
  ACTION_STATEMENT: string;
  DEFINER: string;
  SQL_MODE: string;
  CHARACTER_SET_CLIENT: string;
  COLLATION_CONNECTION: string;
}

function definer(d: string): string {
  const at = d.lastIndexOf("@");
  if (at < 0) return "CURRENT_USER";
  return `${ident(d.slice(0, at))}@${ident(d.slice(at + 1))}`;
}

/**
 * On the scratch server only, before the dump: renames a table to `to` (when it differs) and
 * re-creates each of its triggers, in order, as `name + suffix` with unqualified names. Trigger
 * names are unique per schema, so a restored copy's must not collide with the live table's; and
 * mariadb-dump writes a trigger as it was written: `CREATE TRIGGER crm.t_ai … ON crm.t` would
 * land in the live schema when a schema is loaded under another name. A trigger cannot be renamed
 * or requalified: it is dropped and created again from its definition.
 */
export async function readyForDump(
  conn: Connection,
  from: TableFacts,
  to: string,
  suffix: string,
): Promise<TableFacts> {
  const target = { db: from.db, table: to };
  if (to !== from.table) await conn.query(`RENAME TABLE ${qualified(from)} TO ${qualified(target)}`);
  const [defs] = (await conn.query(
    "SELECT TRIGGER_NAME, ACTION_TIMING, EVENT_MANIPULATION, ACTION_STATEMENT, DEFINER, SQL_MODE, CHARACTER_SET_CLIENT, COLLATION_CONNECTION FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA = ? AND EVENT_OBJECT_TABLE = ? ORDER BY ACTION_TIMING, EVENT_MANIPULATION, ACTION_ORDER",
    [from.db, to],
  )) as unknown as Rows<TriggerDef>;
  await conn.query(`USE ${ident(from.db)}`);
  const names: string[] = [];
  for (const d of defs) {
    const name = withSuffix(d.TRIGGER_NAME, suffix, "trigger");
    await conn.query(`DROP TRIGGER ${ident(d.TRIGGER_NAME)}`);
    await conn.query("SET SESSION sql_mode = ?", [d.SQL_MODE]);
    await conn.query(`SET NAMES ${d.CHARACTER_SET_CLIENT} COLLATE ${d.COLLATION_CONNECTION}`);
    await conn.query(
      `CREATE DEFINER=${definer(d.DEFINER)} TRIGGER ${ident(name)} ${d.ACTION_TIMING} ${d.EVENT_MANIPULATION} ON ${ident(to)} FOR EACH ROW ${d.ACTION_STATEMENT}`,
    );
    names.push(name);
  }
  return { ...target, engine: from.engine, triggers: names };
}
