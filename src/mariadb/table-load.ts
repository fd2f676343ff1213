// restore-table, the live side: what would collide in the cluster, and loading one restored table's
// dump into a node (Galera replicates it: DDL by TOI, the rows as one writeset) in one session.
// A new table gets its definition, then its rows in one transaction, then its triggers. With
// --replace an existing table keeps its definition and gets DELETE + the rows in one transaction
// (readers see the old rows or the new, never a mix), which needs a transactional engine.
import { createReadStream } from "node:fs";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrongboxError } from "../errors.ts";
import type { Connection, Credentials, NodeEndpoint, TlsOptions } from "../galera/connection.ts";
import { startSqlClient } from "./client.ts";
import { ident } from "./sql.ts";
import type { DumpPart } from "./table-dump.ts";
import {
  columnSignature,
  describeTables,
  existingNames,
  schemaExists,
  type TableRef,
  type TableSum,
  tableName,
} from "./tables.ts";

/** One table as extracted from the scratch server: its dump files and what it held there. */
export interface TableDump {
  /** Its name at the target time. */
  source: TableRef;
  /** The name it is loaded (or written) under. */
  target: TableRef;
  engine: string;
  /** Trigger names as they will be created. */
  triggers: string[];
  /** Column names and types, for --replace into an existing table. */
  columns: string;
  scratch: TableSum;
  files: Record<DumpPart, string>;
  /** The size of those files: what the load reads. */
  dumpBytes: number;
}

export interface TargetCheck {
  target: TableRef;
  /** Known once the tables were found in the scratch server; the preflight has neither. */
  triggers?: string[] | undefined;
  columns?: string | undefined;
}

function collision(what: string): StrongboxError {
  return new StrongboxError("RESTORE_TABLE_EXISTS", `${what} already exists in the cluster`, {
    hint: "choose another --rename suffix, or pass --replace to load the restored rows into it",
  });
}

/**
 * Throws when loading would overwrite anything without --replace, or when --replace cannot load
 * into an existing table safely (its own triggers would fire, or its columns differ). Returns the
 * names (db.table) of the tables that exist and will be replaced.
 */
export async function checkTargets(
  conn: Connection,
  o: { tables: TargetCheck[]; schema?: string | undefined; replace: boolean },
): Promise<Set<string>> {
  if (o.schema !== undefined && !o.replace && (await schemaExists(conn, o.schema))) {
    throw collision(`schema ${o.schema}`);
  }
  const replaced = new Set<string>();
  for (const db of new Set(o.tables.map((t) => t.target.db))) {
    const here = o.tables.filter((t) => t.target.db === db);
    const found = await existingNames(conn, db, {
      tables: here.map((t) => t.target.table),
      triggers: here.flatMap((t) => t.triggers ?? []),
    });
    const trigger = found.triggers[0];
    if (trigger !== undefined) throw collision(`trigger ${db}.${trigger}`);
    for (const t of here.filter((x) => found.tables.includes(x.target.table))) {
      const name = tableName(t.target);
      if (!o.replace) throw collision(`table ${name}`);
      const [live] = await describeTables(conn, db, [t.target.table]);
      if (!live) {
        throw new StrongboxError(
          "RESTORE_TABLE_REPLACE",
          `${name} is a view: --replace loads only into tables`,
        );
      }
      if (live.triggers.length > 0) {
        throw new StrongboxError(
          "RESTORE_TABLE_REPLACE",
          `${name} has trigger(s) ${live.triggers.join(", ")} that would fire on every replaced row`,
          { hint: "drop them first, or restore under a new name (--rename)" },
        );
      }
      if (t.columns !== undefined && (await columnSignature(conn, t.target)) !== t.columns) {
        throw new StrongboxError(
          "RESTORE_TABLE_REPLACE",
          `${name} in the cluster has other columns than the restored table`,
          { hint: "restore under a new name (--rename) and copy what you need" },
        );
      }
      replaced.add(name);
    }
  }
  return replaced;
}

async function* sqlOf(parts: (string | { file: string })[]): AsyncGenerator<Buffer> {
  for (const p of parts) {
    if (typeof p === "string") yield Buffer.from(p);
    else for await (const chunk of createReadStream(p.file)) yield chunk as Buffer;
  }
}

/** The SQL of one restored table, in load order: for a new table or for replacing an existing one. */
export function tableSql(
  target: TableRef,
  files: Record<DumpPart, string>,
  o: { replace: boolean; use?: boolean },
): (string | { file: string })[] {
  return [
    ...(o.use ? [`USE ${ident(target.db)};\n`] : []),
    // Without foreign key checks a DELETE neither fails on nor cascades into referencing tables.
    ...(o.replace
      ? [`SET FOREIGN_KEY_CHECKS=0;\nSET autocommit=0;\nDELETE FROM ${ident(target.table)};\n`]
      : [{ file: files.definition }]),
    { file: files.rows },
    // The rows' own COMMIT is missing when the table is empty; the DELETE must commit too.
    "\nCOMMIT;\n",
    { file: files.triggers },
  ];
}

/** The SQL pieces as one stream (for an encrypted dump file). */
export function sqlStream(parts: (string | { file: string })[]): Readable {
  return Readable.from(sqlOf(parts), { objectMode: false });
}

/** Loads one table's SQL into `node` in one mariadb session with `target.db` as its schema. */
export async function loadTable(o: {
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions | undefined;
  target: TableRef;
  files: Record<DumpPart, string>;
  replace: boolean;
  signal?: AbortSignal | undefined;
}): Promise<void> {
  const client = await startSqlClient({ node: o.node, creds: o.creds, tls: o.tls, database: o.target.db });
  try {
    await pipeline(sqlStream(tableSql(o.target, o.files, { replace: o.replace })), client.stdin, {
      signal: o.signal,
    });
  } catch (e) {
    // EPIPE: the client stopped first (an SQL error), and its own message says why.
    if ((e as NodeJS.ErrnoException).code === "EPIPE") await client.done;
    // The client has not seen COMMIT: killing it rolls the rows back.
    client.kill();
    await client.done.catch(() => {});
    throw e;
  }
  await client.done;
}
