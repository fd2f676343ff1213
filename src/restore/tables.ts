// restore-table, the last step: the extracted tables (drill/table-extract.ts) loaded into the live
// cluster through one Synced node and checked there, or written as one age-encrypted SQL file.
import { createWriteStream } from "node:fs";
import { link, unlink } from "node:fs/promises";
import { pipeline } from "node:stream/promises";
import { createEncryptStream } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import {
  type Connection,
  type Credentials,
  connectNode,
  type NodeEndpoint,
  type TlsOptions,
} from "../galera/connection.ts";
import { describeHealth, isEligible, probeNode } from "../galera/health.ts";
import { ident } from "../mariadb/sql.ts";
import {
  checkTargets,
  loadTable,
  sqlStream,
  type TableDump,
  type TargetCheck,
  tableSql,
} from "../mariadb/table-load.ts";
import { checksumTable, type TableSum, tableName } from "../mariadb/tables.ts";

export interface LiveNode {
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions | undefined;
}

export interface RestoredTable {
  source: string;
  target: string;
  engine: string;
  triggers: string[];
  scratch: TableSum;
  /** What the node holds after the load (--into-node). */
  loaded: TableSum | null;
  replaced: boolean;
  /** Loaded rows and checksum equal the scratch server's (null for --out). */
  match: boolean | null;
}

const since = (t: number) => Math.round(performance.now() - t) / 1000;

/** A connection to the node, which must be Synced in a Primary component: what it gets, all get. */
export async function syncedConnection(live: LiveNode): Promise<{ conn: Connection; clusterSize: number }> {
  const h = await probeNode(live.node, live.creds, { tls: live.tls });
  if (!isEligible(h)) {
    throw new StrongboxError(
      "NODE_NOT_SYNCED",
      `node ${live.node.name} is not usable: ${describeHealth(h)}`,
      {
        hint: "load through a node that is Synced in the Primary component",
      },
    );
  }
  const conn = await connectNode(live.node, live.creds, { tls: live.tls });
  return { conn, clusterSize: h.clusterSize };
}

/** Before the restore starts: the node is Synced and no planned name exists (unless --replace). */
export async function checkNodeBeforeRestore(
  live: LiveNode,
  planned: { tables: TargetCheck[]; schema?: string | undefined },
  replace: boolean,
): Promise<void> {
  const { conn } = await syncedConnection(live);
  try {
    await checkTargets(conn, { ...planned, replace });
  } finally {
    await conn.end().catch(() => {});
  }
}

/**
 * Loads each table through the node in its own session (definition, rows in one transaction,
 * triggers; or DELETE + rows for --replace), then compares row count and checksum with the
 * scratch server's. The node is asked again first: the restore took a while.
 */
export async function loadIntoNode(o: {
  live: LiveNode;
  tables: TableDump[];
  /** --schema: the restored schema to create, with the source schema's defaults. */
  schema?: { name: string; charset: string; collation: string } | undefined;
  replace: boolean;
  signal?: AbortSignal | undefined;
  log?: (m: string) => void;
}): Promise<{ tables: RestoredTable[]; timings: { load: number; verify: number } }> {
  const { conn, clusterSize } = await syncedConnection(o.live);
  try {
    if (clusterSize > 1) {
      const other = o.tables.find((t) => t.engine.toLowerCase() !== "innodb");
      if (other) {
        throw new StrongboxError(
          "RESTORE_TABLE_ENGINE",
          `${tableName(other.source)} uses ${other.engine}, whose rows Galera does not replicate`,
          { hint: "restore it with --out FILE, convert it to InnoDB and load it yourself" },
        );
      }
    }
    const replaced = await checkTargets(conn, {
      tables: o.tables,
      schema: o.schema?.name,
      replace: o.replace,
    });
    let t = performance.now();
    if (o.schema) {
      await conn.query(
        `CREATE DATABASE ${o.replace ? "IF NOT EXISTS " : ""}${ident(o.schema.name)} CHARACTER SET ${o.schema.charset} COLLATE ${o.schema.collation}`,
      );
    }
    for (const tb of o.tables) {
      const replace = replaced.has(tableName(tb.target));
      o.log?.(
        `${replace ? "replacing the rows of" : "loading"} ${tableName(tb.target)} through ${o.live.node.name}`,
      );
      await loadTable({ ...o.live, target: tb.target, files: tb.files, replace, signal: o.signal });
    }
    const load = since(t);
    t = performance.now();
    const tables: RestoredTable[] = [];
    for (const tb of o.tables) {
      const loaded = await checksumTable(conn, tb.target);
      tables.push({
        ...summary(tb),
        loaded,
        replaced: replaced.has(tableName(tb.target)),
        match: loaded.rows === tb.scratch.rows && loaded.checksum === tb.scratch.checksum,
      });
    }
    return { tables, timings: { load, verify: since(t) } };
  } finally {
    await conn.end().catch(() => {});
  }
}

/**
 * --out: one SQL file (USE per table, then definition, rows in one transaction, triggers) encrypted
 * to the recipients, mode 0600, written aside and linked into place: an existing file is never
 * overwritten, and a failed write leaves nothing.
 */
export async function writeDumpFile(o: {
  tables: TableDump[];
  file: string;
  recipients: AgeRecipient[];
  signal?: AbortSignal | undefined;
}): Promise<{ tables: RestoredTable[]; seconds: number }> {
  const t = performance.now();
  const tmp = `${o.file}.tmp-${process.pid}`;
  const parts = [
    `-- strongbox restore-table: ${o.tables.map((tb) => tableName(tb.target)).join(", ")}\n`,
    ...o.tables.flatMap((tb) => tableSql(tb.target, tb.files, { replace: false, use: true })),
  ];
  try {
    await pipeline(
      sqlStream(parts),
      createEncryptStream(o.recipients),
      createWriteStream(tmp, { mode: 0o600, flags: "wx" }),
      { signal: o.signal },
    );
    await link(tmp, o.file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EEXIST") throw new StrongboxError("RESTORE_OUT_EXISTS", `${o.file} already exists`);
      throw e;
    });
  } finally {
    await unlink(tmp).catch(() => {});
  }
  return {
    tables: o.tables.map((tb) => ({ ...summary(tb), loaded: null, replaced: false, match: null })),
    seconds: since(t),
  };
}

function summary(
  tb: TableDump,
): Pick<RestoredTable, "source" | "target" | "engine" | "triggers" | "scratch"> {
  return {
    source: tableName(tb.source),
    target: tableName(tb.target),
    engine: tb.engine,
    triggers: tb.triggers,
    scratch: tb.scratch,
  };
}
