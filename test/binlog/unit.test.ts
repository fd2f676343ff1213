// The pure parts of point-in-time recovery: header parsing, GTID lists, replay planning,
// continuity, backup choice and index signatures.
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { archiveCompleteAt, chooseBackupFor, planReplay } from "../../src/binlog/plan.ts";
import { parseHeaderLine } from "../../src/binlog/scan.ts";
import { continuity } from "../../src/binlog/verify.ts";
import { generateSigningKey } from "../../src/crypto/sign.ts";
import { gtidInList, parseGtid } from "../../src/mariadb/gtid.ts";
import { type BinlogEntry, entryVerifies, signEntry } from "../../src/repository/binlog-index.ts";
import type { Manifest } from "../../src/repository/manifest.ts";

function entry(
  seq: number,
  node: string,
  first: number,
  last: number,
  lastAt = "2026-11-26T10:00:00.000Z",
): BinlogEntry {
  return {
    format: 1,
    seq,
    kind: "file",
    node,
    file: `binlog.${String(seq).padStart(6, "0")}`,
    key: `binlogs/${node}/binlog.${seq}.zst.age`,
    rawSize: 100,
    size: 80,
    sha256: "00",
    domain: 1,
    gtidFirst: `1-1-${first}`,
    gtidLast: `1-1-${last}`,
    transactions: last - first + 1,
    firstEventAt: "2026-11-26T09:00:00.000Z",
    lastEventAt: lastAt,
    gap: null,
    archivedAt: "2026-11-26T10:00:00.000Z",
  };
}

describe("binlog text parsing", () => {
  it("reads GTID headers as UTC, with a space-padded hour", () => {
    const e = parseHeaderLine(
      "#261126  9:01:02 server id 1  end_log_pos 385 CRC32 0x3f2a11aa \tGTID 1-1-5 trans",
    );
    assert.deepEqual(e, { gtid: { domain: 1, server: 1, seq: 5 }, at: Date.UTC(2026, 10, 26, 9, 1, 2) });
    const ddl = parseHeaderLine(
      "#261126 18:56:06 server id 1  end_log_pos 1 CRC32 0x00000000 \tGTID 1-1-194 ddl thread_id=9",
    );
    assert.equal(ddl?.gtid.seq, 194);
  });
  it("ignores Gtid list, checkpoints and row lines", () => {
    assert.equal(
      parseHeaderLine("#261126 18:56:06 server id 1  end_log_pos 256 CRC32 0x1 \tGtid list [1-1-4]"),
      undefined,
    );
    assert.equal(
      parseHeaderLine(
        "#261126 18:56:06 server id 1  end_log_pos 300 CRC32 0x1 \tBinlog checkpoint binlog.000001",
      ),
      undefined,
    );
    assert.equal(parseHeaderLine("### INSERT INTO `t` GTID 1-1-5"), undefined);
  });
  it("finds a domain in a GTID position list and refuses junk", () => {
    assert.deepEqual(gtidInList("101-1-3,1-1-194", 1), { domain: 1, server: 1, seq: 194 });
    assert.equal(gtidInList("101-1-3", 1), undefined);
    assert.throws(() => parseGtid("1-1"), /not a GTID/);
  });
});

describe("replay planning", () => {
  it("chains overlapping files of two nodes by GTID", () => {
    const entries = [
      entry(1, "node3", 1, 50),
      entry(2, "node3", 51, 80),
      entry(3, "node2", 1, 120),
      entry(4, "node2", 121, 150),
    ];
    const plan = planReplay(entries, 1, 60, { stopSeq: 140 });
    assert.deepEqual(
      plan.map((p) => p.entry.seq),
      [3, 4],
    );
    assert.deepEqual(
      planReplay([entry(1, "node3", 1, 50), entry(2, "node3", 51, 80), entry(3, "node2", 70, 150)], 1, 10, {
        stopSeq: 150,
      }).map((p) => p.entry.seq),
      [1, 2, 3],
    );
  });
  it("refuses to pass a gap", () => {
    assert.throws(
      () => planReplay([entry(1, "a", 1, 50), entry(2, "b", 60, 80)], 1, 10, { stopSeq: 70 }),
      /PITR_GAP|no archived binlog holds transaction 1-\*-51/,
    );
  });
  it("stops at the end of the archive, or at the file that reaches the target time", () => {
    assert.equal(planReplay([entry(1, "a", 1, 50)], 1, 10, { stopSeq: 70 }).length, 1);
    const t = Date.parse("2026-11-26T10:00:00Z");
    const plan = planReplay(
      [
        entry(1, "a", 1, 50, "2026-11-26T09:59:00.000Z"),
        entry(2, "a", 51, 60, "2026-11-26T10:00:05.000Z"),
        entry(3, "a", 61, 70),
      ],
      1,
      0,
      { stopAtMs: t },
    );
    assert.deepEqual(
      plan.map((p) => p.entry.seq),
      [1, 2],
    );
  });
  it("knows until when the archive is complete, for an idle cluster", () => {
    const a = { ...entry(1, "a", 1, 50), archivedAt: "2026-11-26T10:00:00.000Z" };
    const empty = {
      ...entry(2, "a", 0, 0),
      gtidFirst: null,
      gtidLast: null,
      archivedAt: "2026-11-26T10:05:00.000Z",
    };
    const plan = planReplay([a, empty], 1, 10, {});
    assert.equal(archiveCompleteAt([a, empty], 1, plan, 10), Date.parse("2026-11-26T10:05:00.000Z"));
    assert.equal(
      archiveCompleteAt([a, empty, entry(3, "b", 40, 60)], 1, plan, 10),
      0,
      "the plan does not reach the end",
    );
    const gap: BinlogEntry = {
      ...entry(4, "b", 0, 0),
      kind: "gap",
      gtidFirst: null,
      gtidLast: null,
      gap: { after: "1-1-50", before: "1-1-60" },
    };
    assert.equal(archiveCompleteAt([a, gap], 1, plan, 10), 0, "a gap after the end");
  });
  it("a streamed segment proves completeness up to its last event only; a checkpoint up to its time", () => {
    const seg: BinlogEntry = {
      ...entry(1, "a", 1, 50, "2026-11-26T10:00:07.000Z"),
      streamed: true,
      archivedAt: "2026-11-26T10:00:09.500Z",
    };
    const plan = planReplay([seg], 1, 10, {});
    assert.equal(archiveCompleteAt([seg], 1, plan, 10), Date.parse("2026-11-26T10:00:07.000Z"));
    const checkpoint: BinlogEntry = {
      ...entry(2, "a", 50, 50),
      kind: "skipped",
      file: "checkpoint",
      key: null,
      transactions: 0,
      firstEventAt: null,
      lastEventAt: null,
      archivedAt: "2026-11-26T10:01:00.000Z",
    };
    assert.equal(archiveCompleteAt([seg, checkpoint], 1, plan, 10), Date.parse("2026-11-26T10:01:00.000Z"));
    const later = { ...entry(3, "a", 51, 51, "2026-11-26T10:01:30.000Z"), streamed: true };
    assert.equal(
      archiveCompleteAt([seg, checkpoint, later], 1, plan, 10),
      0,
      "the plan stops before the end",
    );
  });
  it("reports holes in continuity, and whether archive recorded them", () => {
    const gap: BinlogEntry = {
      ...entry(3, "b", 0, 0),
      kind: "gap",
      gtidFirst: null,
      gtidLast: null,
      gap: { after: "1-1-50", before: "1-1-60" },
    };
    const c = continuity([entry(1, "a", 1, 50), entry(2, "b", 60, 80), gap]);
    assert.deepEqual(c.gaps, [{ domain: 1, after: 50, before: 60, recorded: true }]);
    assert.deepEqual(continuity([entry(1, "a", 1, 50), entry(2, "b", 40, 80)]).gaps, []);
  });
});

describe("choosing the backup", () => {
  const m = (id: string, finishedAt: string, gtid: string | null, type: Manifest["type"] = "full") =>
    ({ id, finishedAt, gtid, type }) as Manifest;
  const all = [
    m("a", "2026-11-26T01:00:00Z", "1-1-10"),
    m("b", "2026-11-26T02:00:00Z", "1-1-20"),
    m("c", "2026-11-26T03:00:00Z", "1-1-30", "logical"),
  ];
  it("takes the newest physical backup before the target", () => {
    assert.equal(chooseBackupFor(all, { toTime: new Date("2026-11-26T02:30:00Z") }).id, "b");
    assert.equal(chooseBackupFor(all, { toTime: new Date("2026-11-26T04:00:00Z") }).id, "b");
    assert.equal(chooseBackupFor(all, { toGtid: "1-1-15" }).id, "a");
  });
  it("refuses when none is before it, or the target is ambiguous", () => {
    assert.throws(
      () => chooseBackupFor(all, { toTime: new Date("2026-11-26T00:30:00Z") }),
      /no physical backup/,
    );
    assert.throws(() => chooseBackupFor(all, {}), /exactly one/);
  });
});

describe("index signatures", () => {
  it("detects a changed entry and a foreign key", () => {
    const k = generateSigningKey();
    const other = generateSigningKey();
    const e = signEntry(entry(1, "a", 1, 50), k.privateKeyPem, k.publicKey);
    assert.equal(entryVerifies(e, k.publicKey), true);
    assert.equal(entryVerifies({ ...e, gtidLast: "1-1-51" }, k.publicKey), false);
    assert.equal(entryVerifies(e, other.publicKey), false);
  });
});
