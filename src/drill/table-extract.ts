// restore-table, the scratch side: the chain restored and rolled forward into a throw-away server
// (scratch-restore.ts), the chosen tables found there as they were at the target, renamed to
// what they will be called in the cluster, counted and checksummed, and dumped to private files.
// The scratch server is gone when this returns: only the dumps are left for the load.
import { stat } from "node:fs/promises";
import { join } from "node:path";
import type { RestoreToPointResult } from "../binlog/replay.ts";
import { dumpTables } from "../mariadb/table-dump.ts";
import type { TableDump } from "../mariadb/table-load.ts";
import {
  checksumTable,
  columnSignature,
  describeTables,
  missingTable,
  parseSchemaName,
  parseTableList,
  readyForDump,
  schemaCharset,
  type TableFacts,
  type TableRef,
  tableName,
  withSuffix,
} from "../mariadb/tables.ts";
import { restoreToScratch, type ScratchRestoreOptions } from "./scratch-restore.ts";

export type TableSelection =
  | { kind: "tables"; tables: TableRef[]; suffix: string }
  /** A whole schema, restored into `schema + suffix` under the tables' own names. */
  | { kind: "schema"; schema: string; suffix: string };

export type ExtractedTable = TableDump;

/** The tables (or the schema) named on the command line, and the suffix of their restored names. */
export function selectTables(o: {
  tables?: string | undefined;
  schema?: string | undefined;
  suffix: string;
}): TableSelection {
  return o.schema !== undefined
    ? { kind: "schema", schema: parseSchemaName(o.schema), suffix: o.suffix }
    : { kind: "tables", tables: parseTableList(o.tables ?? ""), suffix: o.suffix };
}

/** The names the load creates, as far as they are known before the restore. */
export function plannedTargets(s: TableSelection): { tables: { target: TableRef }[]; schema?: string } {
  if (s.kind === "schema") return { tables: [], schema: `${s.schema}${s.suffix}` };
  return { tables: s.tables.map((t) => ({ target: { db: t.db, table: `${t.table}${s.suffix}` } })) };
}

export interface ExtractResult {
  tables: ExtractedTable[];
  /** Schema mode: the source schema's defaults, for creating the restored schema. */
  charset: { charset: string; collation: string } | undefined;
  replay: RestoreToPointResult | undefined;
  /** Seconds: restore (extract + prepare of the chain, or a dump's load), rollForward, start, extract. */
  timings: Record<string, number>;
}

const since = (t: number) => Math.round(performance.now() - t) / 1000;

export async function extractTables(
  o: ScratchRestoreOptions & {
    selection: TableSelection;
    /** A private directory for the dump files. */
    outDir: string;
    /** The target in words ("at 2026-12-07T14:03:00.000Z"), for a table that is not there. */
    at: string;
  },
): Promise<ExtractResult> {
  const scratch = await restoreToScratch({ ...o, prefix: "restore-table-" });
  const steps = scratch.timings;
  const timings: Record<string, number> = {
    restore:
      Math.round(
        Object.entries(steps)
          .filter(([k]) => /^(extract |prepare$|apply |load$)/.test(k))
          .reduce((s, [, v]) => s + v, 0) * 1000,
      ) / 1000,
    rollForward: steps.replay ?? 0,
    start: steps.start ?? 0,
  };
  try {
    const t = performance.now();
    const conn = await scratch.server.connect({ multipleStatements: false });
    let found: { facts: TableFacts; target: TableRef }[];
    let charset: ExtractResult["charset"];
    const tables: ExtractedTable[] = [];
    try {
      found = await findTables(conn, o.selection, o.at);
      if (o.selection.kind === "schema") charset = await schemaCharset(conn, o.selection.schema);
      for (const f of found) {
        // A renamed table keeps its schema; its triggers get the suffix too (unique per schema).
        // A schema keeps its tables' and triggers' names: it is loaded into another schema.
        const sel = o.selection;
        const here = await readyForDump(
          conn,
          f.facts,
          f.target.table,
          sel.kind === "tables" ? sel.suffix : "",
        );
        tables.push({
          source: { db: f.facts.db, table: f.facts.table },
          target: f.target,
          engine: here.engine,
          triggers: here.triggers,
          columns: await columnSignature(conn, here),
          scratch: await checksumTable(conn, here),
          files: { definition: "", rows: "", triggers: "" },
          dumpBytes: 0,
        });
        o.log?.(`found ${tableName(f.facts)}: ${tables[tables.length - 1]!.scratch.rows} row(s)`);
      }
    } finally {
      await conn.end().catch(() => {});
    }
    for (const [i, x] of tables.entries()) {
      const inScratch = x.target.table;
      for (const part of ["definition", "rows", "triggers"] as const) {
        const file = join(o.outDir, `${String(i).padStart(4, "0")}-${part}.sql`);
        await dumpTables({
          node: {
            name: "scratch",
            host: "127.0.0.1",
            port: scratch.server.port,
            socket: scratch.server.socket,
          },
          creds: scratch.server.account,
          db: x.source.db,
          tables: [inScratch],
          part,
          file,
          signal: o.signal,
        });
        x.files[part] = file;
        x.dumpBytes += (await stat(file)).size;
      }
    }
    timings.extract = since(t);
    return { tables, charset, replay: scratch.replay, timings };
  } finally {
    await scratch.close();
  }
}

async function findTables(
  conn: Parameters<typeof describeTables>[0],
  sel: TableSelection,
  at: string,
): Promise<{ facts: TableFacts; target: TableRef }[]> {
  if (sel.kind === "schema") {
    const facts = await describeTables(conn, sel.schema);
    if (facts.length === 0) throw missingTable(`schema ${sel.schema}`, at);
    const db = withSuffix(sel.schema, sel.suffix, "schema");
    return facts.map((f) => ({ facts: f, target: { db, table: f.table } }));
  }
  const out: { facts: TableFacts; target: TableRef }[] = [];
  for (const ref of sel.tables) {
    const [facts] = await describeTables(conn, ref.db, [ref.table]);
    if (!facts) throw missingTable(`table ${tableName(ref)}`, at);
    out.push({ facts, target: { db: ref.db, table: withSuffix(ref.table, sel.suffix, "table") } });
  }
  return out;
}
