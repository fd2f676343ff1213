// What a backup contains, recorded at backup time so a restore test can compare: schemas,
// tables with engine and row counts, and counts of routines, triggers and events.
//
// An exact row count is a COUNT(*), a scan of the table's smallest index, on the donor, while the
// backup runs. For small tables that is nothing; for a table of millions of rows it competes with
// the backup for CPU and the buffer pool, every day, and it is not exact anyway while writes go on
// during the backup. So tables above `exactCountMaxRows` (by InnoDB's estimate) get the estimate,
// marked `estimated`, and restore tests compare those loosely.
import { type Connection, queryRows } from "../galera/connection.ts";
import { ident } from "../mariadb/sql.ts";
import type { ManifestDetails } from "../repository/manifest.ts";

export const SYSTEM_SCHEMAS = ["mysql", "information_schema", "performance_schema", "sys"];

export type Inventory = ManifestDetails["inventory"];

export async function takeInventory(
  conn: Connection,
  options: {
    exactCounts?: boolean;
    /** Tables estimated above this many rows are not counted exactly (default: all are). */
    exactCountMaxRows?: number;
    eventsFromCatalog?: boolean;
  } = {},
): Promise<Inventory> {
  const placeholders = SYSTEM_SCHEMAS.map(() => "?").join(",");
  const schemas = (
    await queryRows<{ s: string }>(
      conn,
      `SELECT schema_name AS s FROM information_schema.schemata WHERE schema_name NOT IN (${placeholders}) ORDER BY 1`,
      SYSTEM_SCHEMAS,
    )
  ).map((r) => r.s);
  const tables = await queryRows<{ s: string; t: string; e: string | null; ty: string; r: string | null }>(
    conn,
    `SELECT table_schema AS s, table_name AS t, engine AS e, table_type AS ty, table_rows AS r
       FROM information_schema.tables WHERE table_schema NOT IN (${placeholders}) ORDER BY 1, 2`,
    SYSTEM_SCHEMAS,
  );
  const out: Inventory["tables"] = [];
  const limit = options.exactCountMaxRows ?? Number.POSITIVE_INFINITY;
  for (const t of tables) {
    const estimate: number | null = t.r === null ? null : Number(t.r);
    let rows = estimate;
    let estimated = false;
    if (options.exactCounts !== false && t.ty === "BASE TABLE") {
      if (estimate !== null && estimate > limit) estimated = true;
      else {
        const [c] = await queryRows<{ n: string }>(
          conn,
          `SELECT COUNT(*) AS n FROM ${ident(t.s)}.${ident(t.t)}`,
        );
        rows = Number(c?.n ?? 0);
      }
    }
    out.push({
      schema: t.s,
      table: t.t,
      engine: t.e,
      type: t.ty,
      rows: t.ty === "BASE TABLE" ? rows : null,
      ...(estimated ? { estimated: true as const } : {}),
    });
  }
  const count = async (sql: string) =>
    Number((await queryRows<{ n: string }>(conn, sql, SYSTEM_SCHEMAS))[0]?.n ?? 0);
  return {
    schemas,
    tables: out,
    routines: await count(
      `SELECT COUNT(*) AS n FROM information_schema.routines WHERE routine_schema NOT IN (${placeholders})`,
    ),
    triggers: await count(
      `SELECT COUNT(*) AS n FROM information_schema.triggers WHERE trigger_schema NOT IN (${placeholders})`,
    ),
    // A server started with --skip-grant-tables (restore tests) shows no events in
    // information_schema; mysql.event has them.
    events: await count(
      options.eventsFromCatalog
        ? `SELECT COUNT(*) AS n FROM mysql.event WHERE db NOT IN (${placeholders})`
        : `SELECT COUNT(*) AS n FROM information_schema.events WHERE event_schema NOT IN (${placeholders})`,
    ),
  };
}
