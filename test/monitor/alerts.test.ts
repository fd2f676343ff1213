// Alerts end to end against real receivers on 127.0.0.1: an HTTP server for the webhook and an SMTP
// server (npm smtp-server) for e-mail.
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, beforeEach, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { processAlerts } from "../../src/monitor/alerts.ts";
import { type Catalog, openCatalog } from "../../src/monitor/catalog.ts";
import { type AlertChannel, emailChannel, webhookChannel } from "../../src/monitor/channels.ts";
import { checkAndAlert } from "../../src/monitor/monitor.ts";
import { BINLOG_COMMAND } from "../../src/monitor/pitr.ts";
import { recordRun } from "../../src/monitor/record-run.ts";
import { evaluateRules, watchRunInCatalog } from "../../src/monitor/rules.ts";
import type { RuleSettings } from "../../src/monitor/settings.ts";
import { Clock, DAY, rulesWith, seedRun, tempCatalog, tempDir } from "./helpers.ts";
import {
  type HttpReceiver,
  type SmtpReceiver,
  startHttpReceiver,
  startSmtpReceiver,
  until,
} from "./receivers.ts";

const TOKEN = "hook-token-0123456789";
const FAST = { attempts: 3, backoffMs: 30 };

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
  http.failNext.length = 0;
  smtp.mails.length = 0;
  smtp.failNext.length = 0;
});

function webhook(url = http.url): AlertChannel {
  return webhookChannel({ url, token: TOKEN, timeoutMs: 2000 });
}

function email(password = smtp.password): AlertChannel {
  return emailChannel({
    host: smtp.host,
    port: smtp.port,
    secure: false,
    user: smtp.user,
    password,
    from: "strongbox@backup.example",
    to: ["dba@example.com", "oncall@example.com"],
  });
}

async function check(catalog: Catalog, channels: AlertChannel[], rules: RuleSettings = rulesWith()) {
  return checkAndAlert(catalog, { repositories: ["main"], rules, channels, ...FAST });
}

describe("alerts: one per incident, and a recovery notice", () => {
  it("three failing backups send one alert per channel; the next success sends one recovery", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const channels = [webhook(), email()];
      const meta = { command: "backup", repository: "main", kind: "full", node: "db2" };
      seedRun(catalog, clock, meta); // a healthy start: no alert
      let report = await check(catalog, channels);
      assert.deepEqual(report.opened, []);
      assert.equal(http.requests.length, 0);

      for (let i = 1; i <= 3; i++) {
        seedRun(catalog, clock, meta, { result: "failed", error: `mariabackup exited 1 (attempt ${i})` });
        report = await check(catalog, channels);
        assert.equal(report.opened.length, i === 1 ? 1 : 0, `run ${i}`);
      }
      assert.equal(http.accepted().length, 1);
      assert.equal(smtp.mails.length, 1);

      const hook = http.accepted()[0]!;
      assert.equal(hook.method, "POST");
      assert.equal(hook.headers["content-type"], "application/json");
      assert.equal(hook.headers.authorization, `Bearer ${TOKEN}`);
      const body = hook.body;
      assert.equal(body.event, "open");
      assert.equal(body.status, "firing");
      assert.equal(body.rule, "run-failed");
      assert.equal(body.severity, "critical");
      assert.equal(body.repository, "main");
      assert.equal(body.subject, "backup");
      assert.equal(body.closedAt, null);
      assert.equal(typeof body.text, "string");
      assert.match(
        body.text as string,
        /^CRITICAL strongbox on .*: backup \(full\) of repository "main" failed on db2/,
      );
      assert.match(body.text as string, /mariabackup exited 1 \(attempt 1\)/);
      assert.equal((body.details as Record<string, unknown>).node, "db2");

      const mail = smtp.mails[0]!;
      assert.equal(mail.user, smtp.user, "logged in with the password");
      assert.equal(mail.from, "strongbox@backup.example");
      assert.deepEqual(mail.to, ["dba@example.com", "oncall@example.com"]);
      assert.equal(mail.subject, "[strongbox] CRITICAL main: backup failed");
      assert.match(mail.text, /backup \(full\) of repository "main" failed on db2/);
      assert.match(mail.text, /rule: +run-failed/);

      // The incident keeps the latest wording.
      assert.match(catalog.openIncidents()[0]!.message, /attempt 3/);

      seedRun(catalog, clock, meta, { durationMs: 60_000 });
      report = await check(catalog, channels);
      assert.equal(report.resolved.length, 1);
      assert.equal(http.accepted().length, 2);
      assert.equal(smtp.mails.length, 2);
      const recovery = http.accepted()[1]!.body;
      assert.equal(recovery.event, "resolved");
      assert.equal(recovery.status, "resolved");
      assert.equal(typeof recovery.closedAt, "string");
      assert.match(
        recovery.text as string,
        /^RESOLVED strongbox on .*: backup failed for repository "main" is healthy again after/,
      );
      assert.equal(smtp.mails[1]!.subject, "[strongbox] RESOLVED main: backup failed");
      assert.deepEqual(catalog.openIncidents(), []);

      // Healthy and quiet: nothing more is sent.
      await check(catalog, channels);
      assert.equal(http.requests.length, 2);
      assert.equal(smtp.mails.length, 2);
      assert.ok(catalog.notifications().every((n) => n.status === "sent" && n.attempts === 1));

      // A new failure is a new incident.
      seedRun(catalog, clock, meta, { result: "failed" });
      report = await check(catalog, channels);
      assert.equal(report.opened.length, 1);
      assert.equal(catalog.incidents().length, 2);
    } finally {
      await cleanup();
    }
  });

  it("two processes evaluating at the same time send the alert once", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    const second = openCatalog(catalog.path, { now: clock.now });
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" }, { result: "failed" });
      await Promise.all([check(catalog, [webhook()]), check(second, [webhook()])]);
      assert.equal(http.accepted().length, 1);
      assert.equal(catalog.openIncidents().length, 1);
    } finally {
      second.close();
      await cleanup();
    }
  });

  it("three processes checking at the same moment send the alert once", async () => {
    const t = await tempDir();
    const path = join(t.dir, "catalog.db");
    const catalog = openCatalog(path);
    try {
      const r = await recordRun(catalog, { command: "backup", repository: "main" }, () => {
        throw new Error("boom");
      }).catch((e: Error) => e.message);
      assert.equal(r, "boom");
      const script = `
        import { openCatalog } from ${JSON.stringify(new URL("../../src/monitor/catalog.ts", import.meta.url).href)};
        import { webhookChannel } from ${JSON.stringify(new URL("../../src/monitor/channels.ts", import.meta.url).href)};
        import { checkAndAlert } from ${JSON.stringify(new URL("../../src/monitor/monitor.ts", import.meta.url).href)};
        import { ruleSettings } from ${JSON.stringify(new URL("../../src/config/monitoring.ts", import.meta.url).href)};
        const c = openCatalog(${JSON.stringify(path)});
        const channel = webhookChannel({ url: ${JSON.stringify(http.url)}, timeoutMs: 5000 });
        // Start together: wait for the next 300 ms boundary.
        await new Promise((r) => setTimeout(r, 300 - (Date.now() % 300) + 300));
        const report = await checkAndAlert(c, { repositories: ["main"], rules: ruleSettings(), channels: [channel], attempts: 2, backoffMs: 50 });
        process.stdout.write(JSON.stringify({ opened: report.opened.length, sent: report.deliveries.length }));
        c.close();
      `;
      const results = await Promise.all(
        [1, 2, 3].map(
          () =>
            new Promise<{ opened: number; sent: number }>((resolve, reject) => {
              execFile(process.execPath, ["--input-type=module", "-e", script], (err, stdout) =>
                err ? reject(err) : resolve(JSON.parse(stdout) as { opened: number; sent: number }),
              );
            }),
        ),
      );
      assert.equal(
        results.reduce((n, x) => n + x.opened, 0),
        1,
        JSON.stringify(results),
      );
      assert.equal(
        results.reduce((n, x) => n + x.sent, 0),
        1,
        JSON.stringify(results),
      );
      assert.equal(http.requests.length, 1);
      assert.equal(catalog.incidents().length, 1);
    } finally {
      catalog.close();
      await t.cleanup();
    }
  });
});

describe("alerts: delivery problems", () => {
  it("retries after the receiver first answers 500, with backoff", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" }, { result: "failed" });
      http.failNext.push(500, 503);
      const started = Date.now();
      const report = await check(catalog, [webhook()]);
      assert.deepEqual(
        http.requests.map((r) => r.status),
        [500, 503, 200],
      );
      assert.ok(Date.now() - started >= 0.8 * (30 + 60), "waited between attempts");
      assert.equal(report.deliveries[0]!.ok, true);
      assert.equal(report.deliveries[0]!.attempts, 3);
      assert.equal(catalog.notifications()[0]!.status, "sent");
    } finally {
      await cleanup();
    }
  });

  it("a rejected delivery is recorded, does not throw, and is delivered by a later check", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" }, { result: "failed" });
      http.failNext.push(400);
      let report = await check(catalog, [webhook()]);
      assert.equal(http.requests.length, 1, "a 400 is not retried");
      assert.equal(report.deliveries[0]!.ok, false);
      assert.match(report.deliveries[0]!.error!, /answered 400: receiver says no/);
      const n = catalog.notifications()[0]!;
      assert.equal(n.status, "failed");
      assert.equal(n.attempts, 1);
      assert.ok(
        !n.error!.includes("/hooks/strongbox"),
        "the hook path (a Slack secret) is not recorded in full",
      );

      // The incident is open; the next check (after the next run) delivers the queued alert.
      report = await check(catalog, [webhook()]);
      assert.deepEqual(report.opened, []);
      assert.equal(http.accepted().length, 1);
      assert.equal(http.accepted()[0]!.body.event, "open");
      assert.equal(catalog.notifications()[0]!.status, "sent");
      assert.equal(catalog.notifications()[0]!.attempts, 2);
    } finally {
      await cleanup();
    }
  });

  it("an unreachable webhook and a wrong SMTP password are recorded failures, not crashes", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, "127.0.0.1", r));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    try {
      seedRun(catalog, clock, { command: "verify", repository: "main" }, { result: "failed" });
      const report = await check(catalog, [webhook(`http://127.0.0.1:${port}/x`), email("wrong-password")]);
      const byChannel = Object.fromEntries(report.deliveries.map((d) => [d.channel, d]));
      assert.equal(byChannel.webhook!.ok, false);
      assert.equal(byChannel.webhook!.attempts, 3);
      assert.match(byChannel.webhook!.error!, /unreachable.*ECONNREFUSED/);
      assert.equal(byChannel.email!.ok, false);
      assert.equal(byChannel.email!.attempts, 1, "a rejected login is permanent");
      assert.match(byChannel.email!.error!, /535|Invalid username or password/);
      assert.ok(!byChannel.email!.error!.includes("wrong-password"));
      assert.equal(smtp.mails.length, 0);
      assert.ok(catalog.notifications().every((n) => n.status === "failed"));
    } finally {
      await cleanup();
    }
  });

  it("an SMTP server that says 'try later' (451) gets the mail on the next attempt", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "restore-test", repository: "main" }, { result: "failed" });
      smtp.failNext.push(451);
      const report = await check(catalog, [email()]);
      assert.equal(report.deliveries[0]!.ok, true);
      assert.equal(report.deliveries[0]!.attempts, 2);
      assert.equal(smtp.mails.length, 1);
      assert.equal(smtp.mails[0]!.subject, "[strongbox] CRITICAL main: restore-test failed");
    } finally {
      await cleanup();
    }
  });
});

describe("alerts: unusually long runs, with real slowed-down runs", () => {
  // No absolute floor: the runs here last a fraction of a second.
  const rules = rulesWith({
    maxBackupAgeMs: 365 * DAY,
    longRun: { k: 3, minHistory: 5, window: 20, minRelativeSpread: 0.2, minSpreadMs: 0 },
  });
  const meta = { command: "backup", repository: "main", kind: "full" };
  const run = (catalog: Catalog, ms: number, during?: () => Promise<void>) =>
    recordRun(catalog, meta, async (h) => {
      const work = sleep(ms);
      await during?.();
      await work;
      h.bytes = 1000;
    });

  it("five ~200 ms runs, then a ~2 s one: the watchdog sees it while running, and one alert is sent", async () => {
    const t = await tempDir();
    const catalog = openCatalog(join(t.dir, "catalog.db"));
    try {
      for (let i = 0; i < 5; i++) await run(catalog, 200);
      await check(catalog, [webhook()], rules);
      assert.equal(http.requests.length, 0, "normal runs: no alert");

      let verdictWhileRunning: ReturnType<typeof watchRunInCatalog> | undefined;
      let alertWhileRunning = 0;
      await run(catalog, 2000, async () => {
        await sleep(900);
        const running = catalog.runningRuns()[0]!;
        verdictWhileRunning = watchRunInCatalog(catalog, running, rules.longRun);
        await check(catalog, [webhook()], rules);
        alertWhileRunning = http.accepted().length;
      });
      assert.ok(verdictWhileRunning?.overdue, "overdue after 0.9 s with a usual 0.2 s");
      assert.ok(verdictWhileRunning!.thresholdMs! > 200 && verdictWhileRunning!.thresholdMs! < 500);
      assert.equal(alertWhileRunning, 1, "the daemon's check alerts while the run is still going");
      assert.match(
        http.accepted()[0]!.body.text as string,
        /backup\/full of repository "main" \(run \d+\) is still running after/,
      );

      // When it ends, the same incident continues: no second alert.
      await check(catalog, [webhook()], rules);
      assert.equal(http.accepted().length, 1);
      const incident = catalog.openIncidents()[0]!;
      assert.equal(incident.rule, "long-run");
      assert.match(incident.message, /took 2\.\ds; usually 2\d\dms/);

      // A normal run again closes it with a recovery notice.
      await run(catalog, 200);
      await check(catalog, [webhook()], rules);
      assert.equal(http.accepted().length, 2);
      assert.equal(http.accepted()[1]!.body.event, "resolved");
      assert.equal(http.accepted()[1]!.body.rule, "long-run");
    } finally {
      catalog.close();
      await t.cleanup();
    }
  });

  it("with fewer than minHistory runs a ~2 s run is not judged", async () => {
    const t = await tempDir();
    const catalog = openCatalog(join(t.dir, "catalog.db"));
    try {
      for (let i = 0; i < 4; i++) await run(catalog, 200);
      await run(catalog, 2000);
      const report = await check(catalog, [webhook()], rules);
      assert.deepEqual(report.opened, []);
      assert.equal(evaluateRules(catalog, { repositories: ["main"], rules }).length, 0);
      assert.equal(http.requests.length, 0);
    } finally {
      catalog.close();
      await t.cleanup();
    }
  });
});

describe("alerts: backup size", () => {
  it("a backup much smaller than usual is alerted once, by webhook and e-mail", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const meta = { command: "backup", repository: "main", kind: "full" };
      for (let i = 0; i < 6; i++) seedRun(catalog, clock, meta, { bytes: 5_000_000_000 + i * 10_000_000 });
      await check(catalog, [webhook(), email()]);
      assert.equal(http.requests.length, 0);
      seedRun(catalog, clock, meta, { bytes: 1_000_000_000 });
      await check(catalog, [webhook(), email()]);
      assert.equal(http.accepted().length, 1);
      const body = http.accepted()[0]!.body;
      assert.equal(body.rule, "size-anomaly");
      assert.equal(body.severity, "warning");
      assert.equal((body.details as Record<string, unknown>).anomaly, "small");
      assert.match(
        body.text as string,
        /^WARNING .*backup\/full of repository "main" \(run \d+\) is unusually small: 953\.7 MiB, usually about 4\.7 GiB/,
      );
      assert.equal(smtp.mails[0]!.subject, "[strongbox] WARNING main: backup/full unusual size");
    } finally {
      await cleanup();
    }
  });

  it("no channels configured: incidents are still tracked, nothing is queued", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" }, { result: "failed" });
      const findings = evaluateRules(catalog, { repositories: ["main"], rules: rulesWith() });
      const report = await processAlerts(catalog, findings, { channels: [], scope: ["main"], ...FAST });
      assert.equal(report.opened.length, 1);
      assert.deepEqual(catalog.notifications(), []);
    } finally {
      await cleanup();
    }
  });
});

function checkAt(catalog: Catalog, channels: AlertChannel[], clock: Clock, lagMax?: number) {
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
      let report = await checkAt(catalog, [], clock);
      assert.equal(report.opened.length, 1, "the incident opens without channels");
      assert.deepEqual(catalog.notifications(), []);

      // The operator configures the webhook: the open problem reaches it.
      report = await checkAt(catalog, [webhook()], clock);
      assert.equal(report.opened.length, 0);
      assert.equal(http.accepted().length, 1);
      assert.equal(http.accepted()[0]!.body.event, "open");
      assert.match(
        String(http.accepted()[0]!.body.text),
        /^CRITICAL .*backup \(full\) of repository "main" failed/,
      );
      // Then e-mail too: only the new channel hears of it.
      await checkAt(catalog, [webhook(), email()], clock);
      assert.equal(http.accepted().length, 1);
      assert.equal(smtp.mails.length, 1);
      assert.equal(smtp.mails[0]!.subject, "[strongbox] CRITICAL main: backup failed");
      // Nothing more while it lasts.
      await checkAt(catalog, [webhook(), email()], clock);
      assert.equal(http.accepted().length + smtp.mails.length, 2);

      seedRun(catalog, clock, meta);
      report = await checkAt(catalog, [webhook(), email()], clock);
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
      await checkAt(catalog, [], clock);
      seedRun(catalog, clock, meta);
      const report = await checkAt(catalog, [webhook()], clock);
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
      let report = await checkAt(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(report.opened, []);

      pass(catalog, clock, {
        lagSeconds: 600,
        window,
        openGaps: [],
        archiveEnd: { gtid: "1-1-9", at: window.to },
      });
      report = await checkAt(catalog, [webhook()], clock, 60_000);
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
      report = await checkAt(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["binlog-lag"],
      );

      // Archiving stopped: after the limit without a successful pass, the lag is unknown, and alerted.
      clock.advance(61_000);
      report = await checkAt(catalog, [webhook()], clock, 60_000);
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
      let report = await checkAt(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(report.opened.map((i) => i.rule).sort(), ["binlog-gap", "run-failed"]);
      const text = http
        .accepted()
        .map((r) => String(r.body.text))
        .join("\n");
      assert.match(text, /CRITICAL .*gap after 1-1-40 up to 1-1-77/);
      // The next pass succeeds, but the gap stays open until a backup after it gives a window.
      pass(catalog, clock, { lagSeconds: 0, gaps: [], openGaps: [gap], window: null, archiveEnd: null });
      report = await checkAt(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["run-failed"],
      );
      pass(catalog, clock, { lagSeconds: 0, gaps: [], openGaps: [], window, archiveEnd: null });
      report = await checkAt(catalog, [webhook()], clock, 60_000);
      assert.deepEqual(
        report.resolved.map((i) => i.rule),
        ["binlog-gap"],
      );
    } finally {
      await cleanup();
    }
  });
});
