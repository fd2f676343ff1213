// Backup ids sort in the order the backups were taken, also within one second, and every id is a
// valid storage key; ids of earlier versions (to the second) are still recognised.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { BACKUP_ID_RE, newBackupId } from "../../src/repository/manifest.ts";
import { validateKey } from "../../src/storage/types.ts";

describe("backup ids", () => {
  it("sort chronologically within one second, whatever their random part", () => {
    const base = Date.parse("2026-12-07T05:04:35.000Z");
    for (let round = 0; round < 50; round++) {
      const ids = [0, 1, 2, 999].map((ms) => newBackupId(new Date(base + ms)));
      assert.deepEqual([...ids].sort(), ids);
    }
  });

  it("are valid storage keys and match the id pattern", () => {
    const id = newBackupId(new Date("2026-12-07T05:04:35.123Z"));
    assert.match(id, /^20261207T050435\.123Z-[0-9a-f]{6}$/);
    assert.ok(BACKUP_ID_RE.test(id));
    validateKey(`backups/${id}/manifest.json`);
  });

  it("ids of earlier versions are recognised, malformed ones are not", () => {
    assert.ok(BACKUP_ID_RE.test("20261126T171300Z-3f9a1c"));
    for (const bad of ["20261126T171300Z", "20261126T171300.1Z-3f9a1c", "x20261126T171300Z-3f9a1c"]) {
      assert.ok(!BACKUP_ID_RE.test(bad), bad);
    }
  });
});
