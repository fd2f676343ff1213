import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyFindings } from "../../src/monitor/alerts.ts";
import type { Catalog } from "../../src/monitor/catalog.ts";
import { computeHealth, formatHealth, type HealthReport, unknownHealth } from "../../src/monitor/health.ts";
import { evaluateRules } from "../../src/monitor/rules.ts";
import { Clock, DAY, HOUR, rulesWith, seedRun, tempCatalog } from "./helpers.ts";

const REPOS = ["main", "offsite"];

function health(catalog: Catalog, rules = rulesWith()): HealthReport {
  return computeHealth(catalog, { repositories: REPOS, rules });
}

describe("status / health", () => {
  it("walks through OK, WARNING and CRITICAL with Nagios exit codes", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      // Nothing recorded: no backup exists, which is critical.
      let h = health(catalog);
      assert.equal(h.level, "CRITICAL");
      assert.equal(h.exitCode, 2);
      assert.match(
        h.summary,
        /^STRONGBOX CRITICAL - no backup of repository "main" has been recorded; 1 more problem\(s\)$/,
      );

      const full = { command: "backup", kind: "full", node: "db2" };
      seedRun(catalog, clock, { ...full, repository: "main" }, { durationMs: 10 * 60_000, bytes: 1e9 });
      seedRun(catalog, clock, { command: "copy", repository: "offsite" }, { durationMs: 0, thenMs: HOUR });
      h = health(catalog);
      assert.equal(h.level, "OK");
      assert.equal(h.exitCode, 0);
      assert.match(h.summary, /^STRONGBOX OK - 2 repositories healthy \| 'main_backup_age'=3600s;;93600$/);
      const main = h.repositories.find((r) => r.repository === "main")!;
      assert.equal(main.checks.backup.lastSuccess!.kind, "full");
      assert.equal(main.checks.backup.lastSuccess!.ageSeconds, 3600);
      assert.equal(main.checks.backup.lastRun!.durationSeconds, 600);
      assert.equal(main.checks.backup.maxAgeSeconds, 26 * 3600);
      assert.equal(main.checks.verify.lastRun, null);
      assert.equal(main.checks.copy.maxAgeSeconds, null, "copy age is off by default");
      const offsite = h.repositories.find((r) => r.repository === "offsite")!;
      assert.equal(offsite.level, "OK", "a copy into it counts as its backup");

      // Daily backups, but no verify or restore-test for more than 8 days: WARNING.
      for (let d = 0; d < 9; d++) {
        clock.advance(DAY - 11 * 60_000);
        seedRun(catalog, clock, { ...full, repository: "main" }, { durationMs: 10 * 60_000, bytes: 1e9 });
        seedRun(catalog, clock, { command: "copy", repository: "offsite" });
      }
      h = health(catalog);
      assert.equal(h.level, "WARNING");
      assert.equal(h.exitCode, 1);
      const m = h.repositories.find((r) => r.repository === "main")!;
      assert.equal(m.checks.verify.level, "WARNING");
      assert.equal(m.checks["restore-test"].level, "WARNING");
      assert.equal(m.checks.backup.level, "OK");
      assert.match(m.checks.verify.problems[0]!, /no successful verify of repository "main" since/);

      // Every repository is checked, offsite copies too.
      for (const repository of REPOS) {
        seedRun(catalog, clock, { command: "verify", repository });
        seedRun(catalog, clock, { command: "restore-test", repository });
      }
      assert.deepEqual(
        health(catalog).repositories.flatMap((r) => r.problems.map((p) => p.message)),
        [],
      );
      assert.equal(health(catalog).level, "OK");

      // The last backup failed: CRITICAL, although an older one succeeded.
      seedRun(
        catalog,
        clock,
        { ...full, repository: "main" },
        { result: "failed", error: "donor db2 unreachable" },
      );
      h = health(catalog);
      assert.equal(h.level, "CRITICAL");
      assert.equal(h.exitCode, 2);
      assert.match(
        h.summary,
        /STRONGBOX CRITICAL - backup \(full\) of repository "main" failed on db2 .*donor db2 unreachable/,
      );
      const failed = h.repositories.find((r) => r.repository === "main")!.checks.backup;
      assert.equal(failed.lastRun!.result, "failed");
      assert.equal(failed.lastRun!.error, "donor db2 unreachable");
      assert.equal(failed.lastSuccess!.result, "ok");
      const text = formatHealth(h);
      assert.match(text, /repository main: CRITICAL/);
      assert.match(text, /!! backup +failed .* ago \(run \d+, full, db2, took 1m00s\); last success .* ago/);
      assert.match(text, /repository offsite: OK/);
      assert.match(text, /CRITICAL: backup \(full\) of repository "main" failed/);

      // A good backup, then nothing for 27 hours: CRITICAL for age.
      seedRun(catalog, clock, { ...full, repository: "main" }, { durationMs: 10 * 60_000, bytes: 1e9 });
      seedRun(catalog, clock, { command: "copy", repository: "offsite" });
      assert.equal(health(catalog).level, "OK");
      clock.advance(27 * HOUR);
      h = health(catalog);
      assert.equal(h.level, "CRITICAL");
      assert.deepEqual(
        h.repositories.map((r) => [r.repository, r.checks.backup.level]),
        [
          ["main", "CRITICAL"],
          ["offsite", "CRITICAL"],
        ],
      );
    } finally {
      await cleanup();
    }
  });

  it("a run unusually long (still going) makes it WARNING, and shows as running", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const meta = { command: "backup", repository: "main", kind: "full" };
      for (let i = 0; i < 5; i++) seedRun(catalog, clock, meta, { durationMs: 10 * 60_000, thenMs: HOUR });
      seedRun(catalog, clock, { command: "copy", repository: "offsite" });
      catalog.startRun(meta);
      clock.advance(5 * 60_000);
      assert.equal(health(catalog).level, "OK");
      clock.advance(60 * 60_000);
      const h = health(catalog);
      assert.equal(h.level, "WARNING");
      const main = h.repositories[0]!;
      assert.equal(main.checks.backup.level, "WARNING");
      assert.equal(main.running.length, 1);
      assert.equal(main.running[0]!.ageSeconds, 65 * 60);
      assert.match(formatHealth(h), /▶ {2}backup\/full running for 1h05m/);
      // Incidents opened by the alert path agree with status.
      const changes = applyFindings(
        catalog,
        evaluateRules(catalog, { repositories: REPOS, rules: rulesWith() }),
        REPOS,
        [],
      );
      assert.deepEqual(
        changes.opened.map((i) => i.rule),
        ["long-run"],
      );
    } finally {
      await cleanup();
    }
  });

  it("status --json is plain data; an unreadable catalog is UNKNOWN (3)", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" });
      const h = health(catalog);
      const round = JSON.parse(JSON.stringify(h)) as HealthReport;
      assert.deepEqual(round, h);
      assert.equal(typeof round.checkedAt, "string");
      const u = unknownHealth(new Error("cannot open the run catalog /x: disk I/O error"));
      assert.equal(u.level, "UNKNOWN");
      assert.equal(u.exitCode, 3);
      assert.equal(u.summary, "STRONGBOX UNKNOWN - cannot open the run catalog /x: disk I/O error");
    } finally {
      await cleanup();
    }
  });
});
