// Issue 21 without a cluster: a usage error is no run; the stall watchdog; the unnamed option file
// handed to a child; the archive's recoverable window and lag. (Alerts: alerts.test.ts.)
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { describe, it } from "node:test";
import { archiveLag, archiveState } from "../../src/binlog/state.ts";
import { StrongboxError, UsageError } from "../../src/errors.ts";
import { recordRun } from "../../src/monitor/record-run.ts";
import type { BinlogEntry } from "../../src/repository/binlog-index.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { OPTION_FD, OPTION_FILE, optionFileFd } from "../../src/util/optionfile.ts";
import { watchStall } from "../../src/util/stall.ts";
import { tempCatalog, tempDir } from "./helpers.ts";

describe("runs that are no runs", () => {
  it("a usage error leaves no row; a discarded run neither; a failure does", async () => {
    const { catalog, cleanup } = await tempCatalog();
    try {
      const meta = { command: "verify", repository: "main" };
      await assert.rejects(
        recordRun(catalog, meta, () => {
          throw new UsageError("--sample must be a percentage");
        }),
        UsageError,
      );
      await recordRun(catalog, meta, (run) => {
        run.discard = true;
      });
      assert.deepEqual(catalog.runs(), []);
      await assert.rejects(
        recordRun(catalog, meta, () => {
          throw new StrongboxError("VERIFY_FAILED", "backup x: part 0 hash mismatch");
        }),
      );
      assert.deepEqual(
        catalog.runs().map((r) => [r.result, r.error]),
        [["failed", "backup x: part 0 hash mismatch"]],
      );
    } finally {
      await cleanup();
    }
  });
});

describe("the stall watchdog and the unnamed option file", () => {
  it("fires once the counter stops moving for the limit, and not while it moves", async () => {
    let n = 0;
    const mover = setInterval(() => n++, 20);
    const moving = watchStall({ timeoutMs: 200, progress: () => n, onStall: () => new Error("stalled") });
    let fired = false;
    moving.stalled.catch(() => (fired = true));
    await new Promise((r) => setTimeout(r, 600));
    assert.equal(fired, false, "a moving counter is progress");
    clearInterval(mover);
    await assert.rejects(moving.stalled, /stalled/);
    const stopped = watchStall({ timeoutMs: 50, progress: () => 1, onStall: () => new Error("x") });
    stopped.stop();
    await stopped.stalled;
  });

  it("the child reads the options on fd 3 as often as it likes; no file has a name, none is left", async () => {
    const t = await tempDir();
    try {
      const fd = optionFileFd({ client: { user: "backup", password: 'pa"ss\\word' } }, [], t.dir);
      assert.deepEqual(readdirSync(t.dir), [], "nothing on disk even while it is open");
      const child = spawn("sh", ["-c", `cat ${OPTION_FILE}; cat ${OPTION_FILE}; readlink ${OPTION_FILE}`], {
        stdio: ["ignore", "pipe", "inherit", fd],
      });
      const out: Buffer[] = [];
      child.stdout!.on("data", (c: Buffer) => out.push(c));
      await new Promise((r) => child.once("close", r));
      const text = Buffer.concat(out).toString();
      const body = '[client]\nuser="backup"\npassword="pa\\"ss\\\\word"\n';
      assert.ok(text.startsWith(body + body), text);
      assert.match(text, /\(deleted\)\n$/);
      assert.equal(OPTION_FD, 3);
      assert.deepEqual(readdirSync(t.dir), []);
      assert.equal(readFileSync(`/proc/self/fd/${fd}`, "utf8"), body);
    } finally {
      await t.cleanup();
    }
  });
});

describe("the archive's state (pure)", () => {
  const entry = (
    seq: number,
    kind: BinlogEntry["kind"],
    first: number,
    last: number,
    at: string,
  ): BinlogEntry =>
    ({
      format: 1,
      seq,
      kind,
      node: "node1",
      file: kind === "gap" ? "" : `binlog.00000${seq}`,
      key: null,
      rawSize: 0,
      size: 0,
      sha256: null,
      domain: 1,
      gtidFirst: kind === "gap" ? null : `1-1-${first}`,
      gtidLast: kind === "gap" ? null : `1-1-${last}`,
      transactions: last - first + 1,
      firstEventAt: at,
      lastEventAt: at,
      gap: kind === "gap" ? { after: `1-1-${first}`, before: `1-1-${last}` } : null,
      archivedAt: at,
    }) as BinlogEntry;
  const backup = (id: string, gtidSeq: number, finishedAt: string) =>
    ({ id, type: "full", gtid: `1-1-${gtidSeq}`, finishedAt }) as Manifest;

  it("the window runs from the oldest backup with an unbroken archive after it to the newest event", () => {
    const entries = [
      entry(1, "file", 1, 10, "2025-03-01T01:00:00.000Z"),
      entry(2, "file", 11, 20, "2025-03-01T02:00:00.000Z"),
    ];
    const s = archiveState(entries, [
      backup("b2", 15, "2025-03-01T01:30:00.000Z"),
      backup("b1", 5, "2025-03-01T00:30:00.000Z"),
    ]);
    assert.deepEqual(s.window, {
      from: "2025-03-01T00:30:00.000Z",
      to: "2025-03-01T02:00:00.000Z",
      backupId: "b1",
    });
    assert.deepEqual(s.end, { gtid: "1-1-20", at: "2025-03-01T02:00:00.000Z" });
    assert.equal(archiveLag(s, { gtid: "1-1-20", at: null }), 0, "the archive holds the newest transaction");
    assert.equal(archiveLag(s, { gtid: "1-1-23", at: "2025-03-01T02:01:30.000Z" }), 90);
    assert.equal(archiveLag(s, { gtid: null, at: null }), 0, "no transaction on the cluster");
    assert.equal(archiveLag(s, undefined), null, "not measured");
  });

  it("a gap cuts the window to the backups after it; without one there is no window", () => {
    const entries = [
      entry(1, "file", 1, 10, "2025-03-01T01:00:00.000Z"),
      entry(2, "gap", 10, 31, "2025-03-01T03:00:00.000Z"),
      entry(3, "file", 31, 40, "2025-03-01T04:00:00.000Z"),
    ];
    const before = archiveState(entries, [backup("b1", 5, "2025-03-01T00:30:00.000Z")]);
    assert.equal(before.window, null);
    assert.equal(before.gaps.length, 1);
    const after = archiveState(entries, [
      backup("b1", 5, "2025-03-01T00:30:00.000Z"),
      backup("b3", 35, "2025-03-01T03:30:00.000Z"),
    ]);
    assert.deepEqual(after.window, {
      from: "2025-03-01T03:30:00.000Z",
      to: "2025-03-01T04:00:00.000Z",
      backupId: "b3",
    });
  });
});
