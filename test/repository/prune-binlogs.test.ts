// prune keeps every archived binlog a kept backup needs for recovery up to now.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { appendEntry, BINLOG_INDEX_FORMAT, type BinlogEntry } from "../../src/repository/binlog-index.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { binlogsBefore } from "../../src/repository/prune.ts";
import { tempRepository } from "../helpers/repo.ts";

function entry(seq: number, file: string, first: number, last: number): BinlogEntry {
  return {
    format: BINLOG_INDEX_FORMAT,
    seq,
    kind: "file",
    node: "node3",
    file,
    key: `binlogs/node3/${file}.zst.age`,
    rawSize: 1,
    size: 1,
    sha256: "00",
    domain: 1,
    gtidFirst: `1-1-${first}`,
    gtidLast: `1-1-${last}`,
    transactions: last - first + 1,
    firstEventAt: null,
    lastEventAt: null,
    gap: null,
    archivedAt: new Date().toISOString(),
  };
}

describe("prune and the binlog archive", () => {
  it("removes only files entirely before the oldest kept backup's GTID", async () => {
    const { repo } = await tempRepository("prune-binlogs");
    await appendEntry(repo, entry(1, "binlog.000001", 1, 10));
    await appendEntry(repo, entry(2, "binlog.000002", 11, 20));
    await appendEntry(repo, entry(3, "binlog.000003", 21, 30));
    const kept = (gtid: string, type: Manifest["type"] = "full") => ({ gtid, type }) as Manifest;
    let old = await binlogsBefore(repo, [kept("1-1-15"), kept("1-1-25")]);
    assert.deepEqual(
      old.map((e) => e.file),
      ["binlog.000001"],
    );
    old = await binlogsBefore(repo, [kept("1-1-20")]);
    assert.deepEqual(
      old.map((e) => e.file),
      ["binlog.000001", "binlog.000002"],
      "a file ending at the backup's GTID is not needed",
    );
    assert.deepEqual(await binlogsBefore(repo, []), [], "no kept backup: keep everything");
    assert.deepEqual(
      await binlogsBefore(repo, [kept("1-1-29", "logical")]),
      [],
      "logical backups do not anchor replay",
    );
  });
});
