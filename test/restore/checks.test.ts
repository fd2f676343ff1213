// The restore test's inventory comparison: exact counts within rowCountTolerance, estimated ones
// (tables above backup.exactCountMaxRows) within the looser estimate tolerance, missing and extra
// tables, and routine/trigger/event counts.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Inventory } from "../../src/backup/inventory.ts";
import { compareInventory } from "../../src/restore/checks.ts";

function inventory(tables: Inventory["tables"]): Inventory {
  return { schemas: ["shop"], tables, routines: 1, triggers: 2, events: 0 };
}

const table = (name: string, rows: number, estimated = false): Inventory["tables"][number] => ({
  schema: "shop",
  table: name,
  engine: "InnoDB",
  type: "BASE TABLE",
  rows,
  ...(estimated ? { estimated: true as const } : {}),
});

const strict = { exact: 0, estimate: 0.5 };

describe("compareInventory", () => {
  it("exact counts must match within rowCountTolerance", () => {
    const recorded = inventory([table("orders", 1000)]);
    assert.deepEqual(compareInventory(recorded, inventory([table("orders", 1000)]), strict), []);
    assert.deepEqual(
      compareInventory(recorded, inventory([table("orders", 999)]), strict).map((p) => p.message),
      ["table shop.orders has 999 rows, 1000 were recorded at backup time"],
    );
    assert.deepEqual(
      compareInventory(recorded, inventory([table("orders", 990)]), { exact: 0.01, estimate: 0.5 }),
      [],
    );
  });

  it("estimated counts are compared within the estimate tolerance, and still catch a gross loss", () => {
    const recorded = inventory([table("items", 4_000_000, true)]);
    // InnoDB's estimate was 10% off: fine.
    assert.deepEqual(compareInventory(recorded, inventory([table("items", 4_400_000)]), strict), []);
    // Most of the table is gone: caught.
    assert.deepEqual(
      compareInventory(recorded, inventory([table("items", 1_000_000)]), strict).map((p) => p.message),
      ["table shop.items has 1000000 rows, about 4000000 were estimated at backup time (±50%)"],
    );
    // A larger rowCountTolerance also applies to estimates.
    assert.deepEqual(
      compareInventory(recorded, inventory([table("items", 1_000_000)]), { exact: 0.8, estimate: 0.5 }),
      [],
    );
  });

  it("missing and unexpected tables, and changed routine counts, are problems", () => {
    const recorded = inventory([table("orders", 10), table("items", 20)]);
    const restored = { ...inventory([table("orders", 10), table("extra", 1)]), routines: 0 };
    assert.deepEqual(
      compareInventory(recorded, restored, strict).map((p) => p.message),
      [
        "table shop.items is missing",
        "table shop.extra exists but was not recorded at backup time",
        "0 routines restored, 1 recorded",
      ],
    );
  });
});
