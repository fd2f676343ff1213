// Issue 21 without a cluster, against real receivers on 127.0.0.1 (an HTTP webhook receiver and an
// SMTP server): a problem already open when a channel is configured is alerted once it exists;
// binlog archive lag and gaps raise alerts; a usage error is no run; the stall watchdog; the
// unnamed option file handed to a child.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { after, before, beforeEach, describe, it } from "node:test";
import { archiveLag, archiveState } from "../../src/binlog/state.ts";
import { StrongboxError, UsageError } from "../../src/errors.ts";
import type { Catalog } from "../../src/monitor/catalog.ts";
import { type AlertChannel, emailChannel, webhookChannel } from "../../src/monitor/channels.ts";
import { checkAndAlert } from "../../src/monitor/monitor.ts";
import { BINLOG_COMMAND } from "../../src/monitor/pitr.ts";
import { recordRun } from "../../src/monitor/record-run.ts";
import { evaluateRules } from "../../src/monitor/rules.ts";
import type { BinlogEntry } from "../../src/repository/binlog-index.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { OPTION_FD, OPTION_FILE, optionFileFd } from "../../src/util/optionfile.ts";
import { watchStall } from "../../src/util/stall.ts";
import { Clock, rulesWith, seedRun, tempCatalog, tempDir } from "./helpers.ts";
import {
  type HttpReceiver,
  type SmtpReceiver,
  startHttpReceiver,
  startSmtpReceiver,
  until,
} from "./receivers.ts";

const FAST = { attempts: 2, backoffMs: 20 };
let http: HttpReceiver;
let smtp: SmtpReceiver;

before(async () => {
  http = await startHttpReceiver();
  smtp = await startSmtpReceiver();
});
after(async () => {
  await http.close();
  await smtp.close();
});
beforeEach(() => {
  http.requests.length = 0;
  smtp.mails.length = 0;
});

const webhook = (): AlertChannel => webhookChannel({ url: http.url, timeoutMs: 2000 });
const email = (): AlertChannel =>
  emailChannel({
    host: smtp.host,
    port: smtp.port,
    secure: false,
    user: smtp.user,
    password: smtp.password,
    from: "strongbox@backup.example",
    to: ["dba@example.com"],
  });

function check(catalog: Catalog, channels: AlertChannel[], clock: Clock, lagMax?: number) {
  return checkAndAlert(catalog, {
    repositories: ["main"],
    rules: rulesWith({ binlogLagMaxMs: lagMax }),
    channels,
    now: clock.now(),
    ...FAST,
  });
}

describe("alert state follows the channels", () => {
  it("a problem open before any channel existed is alerted once a channel exists, once, then resolved", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const meta = { command: "backup", repository: "main", kind: "full" };
      seedRun(catalog, clock, meta, { result: "failed", error: "mariabackup exited with code 1" });
      let report = await check(catalog, [], clock);
      assert.equal(report.opened.length, 1, "the incident opens without channels");
      assert.deepEqual(catalog.notifications(), []);

      // The operator configures the webhook: the open problem reaches it.
      report = await check(catalog, [webhook()], clock);
      assert.equal(report.opened.length, 0);
      assert.equal(http.accepted().length, 1);
      assert.equal(http.accepted()[0]!.body.event, "open");
      assert.match(
        String(http.accepted()[0]!.body.text),
        /^CRITICAL .*backup \(full\) of repository "main" failed/,
      );
      // Then e-mail too: only the new channel hears of it.
      await check(catalog, [webhook(), email()], clock);
      assert.equal(http.accepted().length, 1);
      assert.equal(smtp.mails.length, 1);
      assert.equal(smtp.mails[0]!.subject, "[strongbox] CRITICAL main: backup failed");
      // Nothing more while it lasts.
      await check(catalog, [webhook(), email()], clock);
      assert.equal(http.accepted().length + smtp.mails.length, 2);

      seedRun(catalog, clock, meta);
      report = await check(catalog, [webhook(), email()], clock);
      assert.equal(report.resolved.length, 1);
      assert.equal(http.accepted()[1]!.body.event, "resolved");
      await until(() => smtp.mails.length === 2, 5000, "the recovery mail");
      assert.match(smtp.mails[1]!.subject, /^\[strongbox\] RESOLVED main: backup failed/);
    } finally {
      await cleanup();
    }
  });

  it("a recovery goes only to channels that heard of the problem", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const meta = { command: "verify", repository: "main" };
      seedRun(catalog, clock, meta, { result: "failed" });
      await check(catalog, [], clock);
      seedRun(catalog, clock, meta);
      const report = await check(catalog, [webhook()], clock);
      assert.equal(report.resolved.length, 1);
      assert.deepEqual(http.requests, [], "no RESOLVED for a problem never announced");
    } finally {
      await cleanup();
    }
  });
});

describe("point-in-time recovery alerts", () => {
  const pass = (
    catalog: Catalog,
    clock: Clock,
    details: Record<string, unknown>,
    result: "ok" | "failed" = "ok",
  ) => {
    const id = catalog.startRun({ command: BINLOG_COMMAND, repository: "main", kind: "flush" });
    clock.advance(2000);
    return catalog.finishRun(id, {
      result,
      details,
      ...(result === "failed" ? { error: "binlog archive has 1 gap(s)" } : {}),
    });
  };
  const window = { from: "2025-02-28T23:00:00.000Z", to: "2025-03-01T00:00:00.000Z", backupId: "x" };

  it("alerts when the measured lag passes binlogLagMax, and when no pass succeeds for that long", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" });
      pass(catalog, clock, {
        lagSeconds: 3,
        window,
        openGaps: [],
        archiveEnd: { gtid: "1-1-9", at: window.to },
      });
      let report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(report.opened, []);

      pass(catalog, clock, {
        lagSeconds: 600,
        window,
        openGaps: [],
        archiveEnd: { gtid: "1-1-9", at: window.to },
      });
      report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.opened.map((i) => i.rule),
        ["binlog-lag"],
      );
      assert.match(
        String(http.accepted()[0]!.body.text),
        /binlog archive of repository "main" is 10m00s behind the cluster .*the limit is 1m00s/,
      );

      pass(catalog, clock, {
        lagSeconds: 0,
        window,
        openGaps: [],
        archiveEnd: { gtid: "1-1-12", at: window.to },
      });
      report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["binlog-lag"],
      );

      // Archiving stopped: after the limit without a successful pass, the lag is unknown, and alerted.
      clock.advance(61_000);
      report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.opened.map((i) => i.rule),
        ["binlog-lag"],
      );
      assert.match(report.opened[0]!.message, /no successful pass for 1m\d+s/);
      // binlogLagMax: off turns the rule off.
      assert.deepEqual(
        evaluateRules(catalog, {
          repositories: ["main"],
          rules: rulesWith({ binlogLagMaxMs: undefined }),
        }).filter((f) => f.rule === "binlog-lag"),
        [],
      );
    } finally {
      await cleanup();
    }
  });

  it("alerts on a gap until a backup bridges it; repositories without archiving are not judged", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" });
      assert.deepEqual(
        evaluateRules(catalog, {
          repositories: ["main"],
          rules: rulesWith({ binlogLagMaxMs: 60_000 }),
        }).filter((f) => f.rule.startsWith("binlog")),
        [],
      );
      const gap = { after: "1-1-40", before: "1-1-77", archivedAt: "2025-03-01T00:00:00.000Z" };
      pass(
        catalog,
        clock,
        { lagSeconds: 0, gaps: [gap], openGaps: [gap], window: null, archiveEnd: null },
        "failed",
      );
      let report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(report.opened.map((i) => i.rule).sort(), ["binlog-gap", "run-failed"]);
      const text = http
        .accepted()
        .map((r) => String(r.body.text))
        .join("\n");
      assert.match(text, /CRITICAL .*gap after 1-1-40 up to 1-1-77/);
      // The next pass succeeds, but the gap stays open until a backup after it gives a window.
      pass(catalog, clock, { lagSeconds: 0, gaps: [], openGaps: [gap], window: null, archiveEnd: null });
      report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["run-failed"],
      );
      pass(catalog, clock, { lagSeconds: 0, gaps: [], openGaps: [], window, archiveEnd: null });
      report = await check(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["binlog-gap"],
      );
    } finally {
      await cleanup();
    }
  });
});

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
