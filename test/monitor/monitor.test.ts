// Monitoring driven by a real strongbox.yaml: the config section, secret files, and the wrappers the
// commands use (runMonitored, statusOf, metricsOf) against real HTTP and SMTP receivers.

import assert from "node:assert/strict";
import { statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadConfig, parseConfigText } from "../../src/config/load.ts";
import {
  alertSettings,
  catalogPathOf,
  monitorSettingsOf,
  ruleSettings,
} from "../../src/config/monitoring.ts";
import { ConfigError, type StrongboxError } from "../../src/errors.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { metricsOf, runMonitored, sendTestAlert, statusOf } from "../../src/monitor/monitor.ts";
import { tempDir } from "./helpers.ts";
import { type HttpReceiver, type SmtpReceiver, startHttpReceiver, startSmtpReceiver } from "./receivers.ts";

const BASE = `
version: 1
cluster:
  nodes:
    - { name: db1, host: db1.example }
  credentials:
    backup: { user: backup }
repositories:
  - name: main
    storage: { type: local, path: /var/backups/strongbox }
keys:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
  signingKey: signing.key
`;

function writePrivate(path: string, text: string, mode = 0o600): void {
  writeFileSync(path, text, { mode });
}

describe("monitoring config", () => {
  it("is optional; defaults are filled in", () => {
    const c = parseConfigText(BASE, "t.yaml");
    assert.equal(c.monitoring, undefined);
    const r = ruleSettings(c.monitoring);
    assert.equal(r.maxBackupAgeMs, 26 * 3_600_000);
    assert.equal(r.maxVerifyAgeMs, 8 * 86_400_000);
    assert.equal(r.maxRestoreTestAgeMs, 8 * 86_400_000);
    assert.equal(r.maxCopyAgeMs, undefined);
    assert.deepEqual(r.longRun, {
      k: 3,
      minHistory: 5,
      window: 20,
      minRelativeSpread: 0.2,
      minSpreadMs: 30_000,
    });
    assert.deepEqual(r.size, { lowFactor: 0.5, highFactor: 2, minHistory: 5, window: 20 });
  });

  it("accepts a full section, 'off', and reports every problem with its path", () => {
    const c = parseConfigText(
      `${BASE}
monitoring:
  catalog: /var/lib/strongbox/runs.db
  rules:
    maxBackupAge: 50h
    maxVerifyAge: "off"
    longRun: { k: 4, minHistory: 8 }
    size: { lowFactor: 0.3 }
  alerts:
    webhook: { url: "https://hooks.example.com/T000/B000/XXXX", tokenFile: hook.token }
    email: { host: smtp.example.com, user: alerts, passwordFile: smtp.pw, from: a@example.com, to: [b@example.com] }
    attempts: 5
`,
      "t.yaml",
    );
    const r = ruleSettings(c.monitoring);
    assert.equal(r.maxBackupAgeMs, 50 * 3_600_000);
    assert.equal(r.maxVerifyAgeMs, undefined);
    assert.equal(r.longRun.k, 4);
    assert.equal(r.longRun.window, 20);
    assert.equal(r.size.lowFactor, 0.3);
    assert.equal(c.monitoring!.alerts.email!.port, 587);

    assert.throws(
      () =>
        parseConfigText(
          `${BASE}
monitoring:
  rules:
    maxBackupAge: tomorrow
    repositories: [main, nope]
    size: { lowFactor: 2 }
  alerts:
    webhook: { url: "ftp://x" }
    email: { host: smtp.example.com, from: a@example.com, to: [] }
`,
          "t.yaml",
        ),
      (e: ConfigError) => {
        assert.ok(e instanceof ConfigError);
        const text = e.problems.join("\n");
        for (const path of [
          "monitoring.rules.maxBackupAge",
          "monitoring.rules.size.lowFactor",
          "monitoring.alerts.webhook.url",
          "monitoring.alerts.email.to",
        ]) {
          assert.ok(text.includes(path), `${path} in ${text}`);
        }
        return true;
      },
    );
    // Cross-checks run once the shape is right.
    assert.throws(
      () => parseConfigText(`${BASE}\nmonitoring:\n  rules:\n    repositories: [main, nope]\n`, "t.yaml"),
      (e: ConfigError) =>
        e.problems.some((p) => p.startsWith("monitoring.rules.repositories[1]: no repository named")),
    );
  });
});

describe("runMonitored, statusOf, metricsOf with a real config", () => {
  let http: HttpReceiver;
  let smtp: SmtpReceiver;
  let t: Awaited<ReturnType<typeof tempDir>>;
  let configPath: string;

  before(async () => {
    http = await startHttpReceiver();
    smtp = await startSmtpReceiver();
    t = await tempDir();
    writePrivate(join(t.dir, "hook.token"), "tok-abcdef-123456\n");
    writePrivate(join(t.dir, "smtp.pw"), `${smtp.password}\n`);
    configPath = join(t.dir, "strongbox.yaml");
    writePrivate(
      configPath,
      `${BASE}
stateDir: state
monitoring:
  rules:
    maxRestoreTestAge: "off"
    maxVerifyAge: "off"
    requireOffsite: false
  alerts:
    webhook: { url: "${http.url}", tokenFile: hook.token, timeout: 5s }
    email: { host: 127.0.0.1, port: ${smtp.port}, user: ${smtp.user}, passwordFile: smtp.pw, from: sb@example.com, to: [dba@example.com] }
    attempts: 2
    backoff: 1s
`,
    );
  });
  after(async () => {
    await http.close();
    await smtp.close();
    await t.cleanup();
  });

  it("reads the token and password files, and refuses them when others can read them", async () => {
    const loaded = await loadConfig(configPath);
    const a = await alertSettings(loaded);
    assert.equal(a.webhook!.token, "tok-abcdef-123456");
    assert.equal(a.email!.password, smtp.password);
    assert.equal(a.backoffMs, 1000);
    const loose = join(t.dir, "loose.token");
    writePrivate(loose, "x", 0o644);
    const cfg = structuredClone(loaded.config);
    cfg.monitoring!.alerts.webhook!.tokenFile = "loose.token";
    await assert.rejects(
      alertSettings({ ...loaded, config: cfg }),
      (e: StrongboxError) => e.code === "FILE_TOO_OPEN",
    );
    const noUser = structuredClone(loaded.config);
    delete noUser.monitoring!.alerts.email!.user;
    await assert.rejects(
      alertSettings({ ...loaded, config: noUser }),
      (e: StrongboxError) => e.code === "SMTP_CONFIG",
    );
  });

  it("records runs in state/catalog.db, alerts on failure (once), and sends a recovery; status and metrics follow", async () => {
    const loaded = await loadConfig(configPath);
    const warnings: string[] = [];
    const meta = { command: "backup", repository: "main", kind: "full", node: "db1" };

    let status = statusOf(monitorSettingsOf(loaded));
    assert.equal(status.level, "CRITICAL", "no backup yet");

    for (let i = 0; i < 2; i++) {
      await assert.rejects(
        runMonitored(
          monitorSettingsOf(loaded),
          meta,
          () => {
            throw new Error("mariabackup: Got error 2003 connecting to db1");
          },
          { warn: (w) => warnings.push(w) },
        ),
        /Got error 2003/,
      );
    }
    assert.equal(warnings.join("\n"), "");
    assert.equal(http.accepted().length, 1, "one alert for two failures");
    assert.equal(http.accepted()[0]!.headers.authorization, "Bearer tok-abcdef-123456");
    assert.equal(smtp.mails.length, 1);
    assert.equal(smtp.mails[0]!.subject, "[strongbox] CRITICAL main: backup failed");
    assert.match(smtp.mails[0]!.text, /Got error 2003 connecting to db1/);

    const path = catalogPathOf(loaded);
    assert.equal(path, join(t.dir, "state", "catalog.db"));
    assert.equal(statSync(path).mode & 0o777, 0o600);

    status = statusOf(monitorSettingsOf(loaded));
    assert.equal(status.exitCode, 2);

    const out = await runMonitored(
      monitorSettingsOf(loaded),
      meta,
      (run) => {
        run.details = { backupId: "b-1" };
        return { bytes: 123_456 };
      },
      { summarize: (r) => ({ bytes: r.bytes }), warn: (w) => warnings.push(w) },
    );
    assert.deepEqual(out, { bytes: 123_456 });
    assert.equal(http.accepted().length, 2);
    assert.equal(http.accepted()[1]!.body.event, "resolved");
    assert.equal(smtp.mails.length, 2);

    status = statusOf(monitorSettingsOf(loaded));
    assert.equal(status.level, "OK");
    assert.equal(status.exitCode, 0);
    const last = status.repositories[0]!.checks.backup.lastRun!;
    assert.equal(last.bytes, 123_456);
    assert.equal(last.node, "db1");

    const metrics = await metricsOf(monitorSettingsOf(loaded));
    assert.match(
      metrics,
      /^strongbox_last_size_bytes\{repository="main",command="backup",kind="full"\} 123456$/m,
    );
    assert.match(metrics, /^strongbox_runs_total\{repository="main",command="backup",result="failed"\} 2$/m);
    const c = openCatalog(path);
    assert.deepEqual(c.lastRun("backup", "main")!.details, { backupId: "b-1" });
    c.close();
    assert.equal(warnings.join("\n"), "");
  });

  it("sendTestAlert reaches every configured channel", async () => {
    const loaded = await loadConfig(configPath);
    const before = { hooks: http.accepted().length, mails: smtp.mails.length };
    const r = await sendTestAlert(monitorSettingsOf(loaded));
    assert.deepEqual(
      r.map((d) => [d.channel, d.ok, d.attempts]),
      [
        ["webhook", true, 1],
        ["email", true, 1],
      ],
    );
    assert.equal(http.accepted().length, before.hooks + 1);
    assert.match(
      http.accepted().at(-1)!.body.text as string,
      /test alert from strongbox on .*alerts reach you/,
    );
    assert.equal(smtp.mails.length, before.mails + 1);
    assert.equal(smtp.mails.at(-1)!.subject, "[strongbox] WARNING main: test alert");
  });

  it("a catalog that cannot be opened is a warning: the command still runs; status is UNKNOWN", async () => {
    const loaded = await loadConfig(configPath);
    writeFileSync(join(t.dir, "not-a-dir"), "");
    const cfg = structuredClone(loaded.config);
    cfg.monitoring!.catalog = "not-a-dir/catalog.db";
    const broken = monitorSettingsOf({ ...loaded, config: cfg });
    const warnings: string[] = [];
    const out = await runMonitored(broken, { command: "verify", repository: "main" }, () => "verified", {
      warn: (w) => warnings.push(w),
    });
    assert.equal(out, "verified");
    assert.equal(warnings.length, 1);
    assert.match(warnings[0]!, /this run is not recorded: cannot open the run catalog/);
    const s = statusOf(broken);
    assert.equal(s.level, "UNKNOWN");
    assert.equal(s.exitCode, 3);
  });
});
