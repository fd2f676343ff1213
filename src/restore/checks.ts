// The checks of a restore test: CHECK TABLE everywhere, the inventory recorded at backup time,
// and the operator's own SQL assertions.
import { type Inventory, takeInventory } from "../backup/inventory.ts";
import { type Connection, queryRows } from "../galera/connection.ts";
import { ident } from "../mariadb/sql.ts";

export interface CheckProblem {
  check: "check-table" | "inventory" | "assertion";
  message: string;
}

export interface Assertion {
  name: string;
  sql: string;
  expect: string;
}

export async function checkTables(conn: Connection): Promise<{ checked: number; problems: CheckProblem[] }> {
  const tables = await queryRows<{ s: string; t: string }>(
    conn,
    "SELECT table_schema AS s, table_name AS t FROM information_schema.tables WHERE table_type = 'BASE TABLE' AND table_schema NOT IN ('information_schema','performance_schema') ORDER BY 1, 2",
  );
  const problems: CheckProblem[] = [];
  for (const { s, t } of tables) {
    const rows = await queryRows<{ Msg_type: string; Msg_text: string }>(
      conn,
      `CHECK TABLE ${ident(s)}.${ident(t)}`,
    );
    const status = rows.find((r) => r.Msg_type === "status");
    const errors = rows.filter((r) => r.Msg_type === "error");
    if (errors.length > 0 || (status && status.Msg_text !== "OK")) {
      problems.push({
        check: "check-table",
        message: `CHECK TABLE ${s}.${t}: ${[...errors.map((e) => e.Msg_text), status?.Msg_text].filter(Boolean).join("; ")}`,
      });
    }
  }
  return { checked: tables.length, problems };
}

/** Compares the restored server with the inventory recorded at backup time. */
export interface RowTolerance {
  /** For exact counts: allowed relative difference (writes during the backup). */
  exact: number;
  /** For estimated counts (tables above backup.exactCountMaxRows). */
  estimate: number;
}

export function compareInventory(
  recorded: Inventory,
  restored: Inventory,
  tolerance: RowTolerance,
): CheckProblem[] {
  const problems: CheckProblem[] = [];
  const p = (message: string) => problems.push({ check: "inventory", message });
  for (const s of recorded.schemas) if (!restored.schemas.includes(s)) p(`schema ${s} is missing`);
  const key = (t: { schema: string; table: string }) => `${t.schema}.${t.table}`;
  const got = new Map(restored.tables.map((t) => [key(t), t]));
  const want = new Map(recorded.tables.map((t) => [key(t), t]));
  for (const [k, t] of want) {
    const r = got.get(k);
    if (!r) {
      p(`table ${k} is missing`);
      continue;
    }
    if (t.rows !== null && r.rows !== null) {
      const share = t.estimated ? Math.max(tolerance.exact, tolerance.estimate) : tolerance.exact;
      if (Math.abs(r.rows - t.rows) > Math.floor(t.rows * share))
        p(
          t.estimated
            ? `table ${k} has ${r.rows} rows, about ${t.rows} were estimated at backup time (±${Math.round(share * 100)}%)`
            : `table ${k} has ${r.rows} rows, ${t.rows} were recorded at backup time`,
        );
    }
  }
  for (const k of got.keys()) if (!want.has(k)) p(`table ${k} exists but was not recorded at backup time`);
  for (const what of ["routines", "triggers", "events"] as const) {
    if (recorded[what] !== restored[what])
      p(`${restored[what]} ${what} restored, ${recorded[what]} recorded`);
  }
  return problems;
}

export async function inventoryProblems(
  conn: Connection,
  recorded: Inventory,
  tolerance: RowTolerance,
): Promise<CheckProblem[]> {
  // The restored copy is ours and throw-away: every table is counted exactly there.
  return compareInventory(recorded, await takeInventory(conn, { eventsFromCatalog: true }), tolerance);
}

export async function runAssertions(conn: Connection, assertions: Assertion[]): Promise<CheckProblem[]> {
  const problems: CheckProblem[] = [];
  for (const a of assertions) {
    try {
      const [rows] = (await conn.query({ sql: a.sql, rowsAsArray: true })) as unknown as [unknown[][]];
      const value = rows[0]?.[0];
      const text = value === null || value === undefined ? "NULL" : String(value);
      if (text !== a.expect)
        problems.push({
          check: "assertion",
          message: `assertion "${a.name}": got ${text}, expected ${a.expect}`,
        });
    } catch (e) {
      problems.push({
        check: "assertion",
        message: `assertion "${a.name}" failed to run: ${(e as Error).message}`,
      });
    }
  }
  return problems;
}
