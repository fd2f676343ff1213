// restore-table's command line, refused before anything is read or started.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planRestoreTable } from "../../src/commands/restore-table.ts";
import { parseSchemaName, parseTableList, withSuffix } from "../../src/mariadb/tables.ts";

const at = new Date("2026-12-07T14:03:07.250Z");

describe("restore-table arguments", () => {
  it("parses DB.TABLE lists, back-quoted names with dots, and refuses the rest", () => {
    assert.deepEqual(parseTableList("shop.orders, `my.db`.`a.b`"), [
      { db: "shop", table: "orders" },
      { db: "my.db", table: "a.b" },
    ]);
    assert.throws(() => parseTableList("orders"), /"orders" is not DB\.TABLE/);
    assert.throws(() => parseTableList("shop.orders,shop.orders"), /named twice/);
    assert.throws(() => parseTableList(`shop.${"x".repeat(65)}`), /not a valid name/);
    assert.equal(parseSchemaName("`crm`"), "crm");
    assert.throws(() => withSuffix("x".repeat(60), "_restored", "table"), /longer than 64/);
  });

  it("defaults the suffix to _restored_<time> for --into-node and to none for --out", () => {
    const p = planRestoreTable({ tables: "shop.orders", toTime: at.toISOString(), intoNode: "node1" });
    assert.deepEqual(p.selection, {
      kind: "tables",
      tables: [{ db: "shop", table: "orders" }],
      suffix: "_restored_20261207_140307",
    });
    const byGtid = planRestoreTable({ schema: "crm", toGtid: "1-1-9", intoNode: "node1" }, at);
    assert.deepEqual(byGtid.selection, {
      kind: "schema",
      schema: "crm",
      suffix: "_restored_20261207_140307",
    });
    const out = planRestoreTable({ tables: "shop.orders", id: "B1", out: "/nonexistent/dir/x.age" });
    assert.equal(out.selection.suffix, "");
  });

  it("refuses ambiguous or incomplete command lines with one line each", () => {
    const base = { toTime: at.toISOString(), intoNode: "node1" };
    const cases: [Parameters<typeof planRestoreTable>[0], RegExp][] = [
      [{ ...base }, /name the tables .* or one --schema/],
      [{ ...base, tables: "a.b", schema: "c" }, /not both/],
      [{ tables: "a.b", intoNode: "n" }, /exactly one of a backup ID, --to-time/],
      [{ ...base, tables: "a.b", id: "B1" }, /exactly one of a backup ID/],
      [{ tables: "a.b", id: "B1" }, /exactly one of --out FILE and --into-node/],
      [{ tables: "a.b", id: "B1", out: "/x", intoNode: "n" }, /exactly one of --out/],
      [{ tables: "a.b", id: "B1", out: "/nonexistent/x", replace: true }, /--replace applies to --into-node/],
      [{ ...base, tables: "a.b", toTime: "yesterday" }, /"yesterday" is not a time/],
      [{ ...base, tables: "a.b", rename: "-x" }, /may hold only letters/],
    ];
    for (const [o, re] of cases) {
      assert.throws(
        () => planRestoreTable(o),
        (e: Error & { code?: string }) => {
          assert.match(e.message, re);
          assert.equal(e.code, "USAGE");
          assert.doesNotMatch(e.message, /\n/);
          return true;
        },
      );
    }
  });
});
