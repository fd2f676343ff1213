import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Catalog } from "../../src/monitor/catalog.ts";
import { evaluateRules, type Finding, watchRun, watchRunInCatalog } from "../../src/monitor/rules.ts";
import type { RuleSettings } from "../../src/monitor/settings.ts";
import { Clock, DAY, HOUR, rulesWith, seedRun, tempCatalog } from "./helpers.ts";

const MIN = 60_000;
const GIB = 1024 ** 3;

function evaluate(catalog: Catalog, rules: RuleSettings = rulesWith(), repositories = ["main"]): Finding[] {
  return evaluateRules(catalog, { repositories, rules });
}

function rulesOf(findings: Finding[]): string[] {
  return findings.map((f) => `${f.rule}:${f.repository}:${f.subject}`).sort();
}

describe("rules: failures", () => {
  it("the latest run of a command failed or was killed; a later success clears it; an abort is no failure", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const main = { command: "backup", repository: "main", kind: "full", node: "db2" };
      seedRun(catalog, clock, main, { result: "failed", error: "mariabackup exited 1: disk full" });
      let f = evaluate(catalog);
      const failed = f.find((x) => x.rule === "run-failed")!;
      assert.equal(failed.severity, "critical");
      assert.equal(failed.subject, "backup");
      assert.match(
        failed.message,
        /backup \(full\) of repository "main" failed on db2 at .*: mariabackup exited 1: disk full/,
      );

      seedRun(catalog, clock, main);
      f = evaluate(catalog);
      assert.equal(f.filter((x) => x.rule === "run-failed").length, 0);

      seedRun(catalog, clock, main, { result: "aborted", error: "backup aborted by SIGTERM" });
      assert.equal(evaluate(catalog).filter((x) => x.rule === "run-failed").length, 0);

      // A copy that fails is a warning; a verify that fails is critical.
      seedRun(catalog, clock, { command: "copy", repository: "main" }, { result: "failed" });
      seedRun(catalog, clock, { command: "verify", repository: "main" }, { result: "failed" });
      f = evaluate(catalog).filter((x) => x.rule === "run-failed");
      assert.deepEqual(f.map((x) => [x.subject, x.severity]).sort(), [
        ["copy", "warning"],
        ["verify", "critical"],
      ]);
      // Other repositories are not judged unless asked for.
      assert.deepEqual(
        evaluate(catalog, rulesWith(), ["offsite"]).filter((x) => x.rule === "run-failed"),
        [],
      );
    } finally {
      await cleanup();
    }
  });
});

describe("rules: ages", () => {
  it("no backup at all, then fresh, then too old; a copy into the repository counts as a backup", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      let f = evaluate(catalog);
      assert.deepEqual(rulesOf(f), ["backup-too-old:main:backup"]);
      assert.match(f[0]!.message, /no backup of repository "main" has been recorded/);
      assert.equal(f[0]!.severity, "critical");

      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" }, { thenMs: HOUR });
      assert.deepEqual(evaluate(catalog), []);

      clock.advance(26 * HOUR);
      f = evaluate(catalog);
      assert.deepEqual(rulesOf(f), ["backup-too-old:main:backup"]);
      assert.match(
        f[0]!.message,
        /last successful backup of repository "main" finished 1d3h ago .*the limit is 1d2h/,
      );

      // A failed backup does not reset the age.
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" }, { result: "failed" });
      assert.ok(rulesOf(evaluate(catalog)).includes("backup-too-old:main:backup"));

      seedRun(catalog, clock, { command: "copy", repository: "main" });
      assert.ok(!rulesOf(evaluate(catalog)).includes("backup-too-old:main:backup"));
    } finally {
      await cleanup();
    }
  });

  it("a repository whose backups keep failing from the start is overdue after maxBackupAge", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      seedRun(catalog, clock, { command: "backup", repository: "main" }, { result: "failed", thenMs: HOUR });
      assert.ok(!rulesOf(evaluate(catalog)).includes("backup-too-old:main:backup"));
      clock.advance(26 * HOUR);
      const f = evaluate(catalog).find((x) => x.rule === "backup-too-old")!;
      assert.match(f.message, /no successful backup of repository "main" since/);
    } finally {
      await cleanup();
    }
  });

  it("verify and restore-test are due maxAge after the first backup; off disables; copy only where copies go", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const rules = rulesWith({ maxBackupAgeMs: 30 * DAY, maxCopyAgeMs: 2 * DAY });
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" });
      assert.deepEqual(evaluate(catalog, rules), [], "nothing is due yet");
      clock.advance(8 * DAY + HOUR);
      const f = evaluate(catalog, rules);
      assert.deepEqual(rulesOf(f), ["restore-test-too-old:main:restore-test", "verify-too-old:main:verify"]);
      assert.ok(f.every((x) => x.severity === "warning"));

      seedRun(catalog, clock, { command: "verify", repository: "main" });
      seedRun(catalog, clock, { command: "restore-test", repository: "main" });
      assert.deepEqual(evaluate(catalog, rules), []);

      clock.advance(9 * DAY);
      assert.deepEqual(rulesOf(evaluate(catalog, { ...rules, maxVerifyAgeMs: undefined })), [
        "restore-test-too-old:main:restore-test",
      ]);
      assert.deepEqual(evaluate(catalog, { ...rules, ageRepositories: ["offsite"] }), []);

      // Copies: only a repository that has received copies is expected to keep receiving them.
      seedRun(catalog, clock, { command: "copy", repository: "offsite" });
      seedRun(catalog, clock, { command: "verify", repository: "main" });
      seedRun(catalog, clock, { command: "restore-test", repository: "main" });
      assert.deepEqual(evaluate(catalog, rules, ["main", "offsite"]), []);
      clock.advance(3 * DAY);
      assert.deepEqual(rulesOf(evaluate(catalog, rules, ["main", "offsite"])), ["copy-too-old:offsite:copy"]);
    } finally {
      await cleanup();
    }
  });
});

describe("rules: an offsite copy of the primary repository", () => {
  it("warns without a configured offsite copy, before the first copy, and when the newest copy is too old", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const repos = ["main", "offsite"];
      // Only this rule: the backup-age rule has its own tests.
      const offsite = (rules: RuleSettings) =>
        evaluate(catalog, rules, repos).filter((x) => x.rule === "offsite-missing");
      const base = rulesWith({
        maxBackupAgeMs: 30 * DAY,
        maxVerifyAgeMs: undefined,
        maxRestoreTestAgeMs: undefined,
      });
      const none = { ...base, offsite: { primary: "main", targets: [] } };
      const f = offsite(none)[0];
      assert.equal(f?.severity, "warning");
      assert.match(
        f?.message ?? "",
        /repository "main" has no offsite copy configured: add .* to backup\.copyTo/,
      );

      const rules = { ...base, offsite: { primary: "main", targets: ["offsite"] } };
      assert.deepEqual(offsite(rules), [], "nothing to copy before the first backup");
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" });
      const never = offsite(rules);
      assert.deepEqual(rulesOf(never), ["offsite-missing:main:copy"]);
      assert.match(never[0]!.message, /never been copied to its offsite repository "offsite"/);

      seedRun(catalog, clock, { command: "copy", repository: "offsite" });
      assert.deepEqual(offsite(rules), []);
      // Without maxCopyAge, the limit is maxBackupAge.
      clock.advance(31 * DAY);
      seedRun(catalog, clock, { command: "backup", repository: "main", kind: "full" });
      const old = offsite(rules);
      assert.equal(old.length, 1);
      assert.match(
        old[0]!.message,
        /newest copy of repository "main" to "offsite" finished .* ago .*; the limit is 30d/,
      );
      assert.deepEqual(
        evaluate(catalog, { ...rules, offsite: undefined }, repos).filter(
          (x) => x.rule === "offsite-missing",
        ),
        [],
      );
    } finally {
      await cleanup();
    }
  });
});

describe("rules: unusually long runs", () => {
  const rules = rulesWith({
    maxBackupAgeMs: 365 * DAY,
    longRun: { k: 3, minHistory: 5, window: 20, minRelativeSpread: 0.2, minSpreadMs: 30_000 },
  });
  const full = { command: "backup", repository: "main", kind: "full" };

  it("judges a run against its own kind's successful history, only with minHistory runs", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      for (const d of [10, 11, 9, 10]) seedRun(catalog, clock, full, { durationMs: d * MIN, thenMs: DAY });
      // Incrementals are fast; they must not make a full look slow, and vice versa.
      for (let i = 0; i < 6; i++) {
        seedRun(catalog, clock, { ...full, kind: "incremental" }, { durationMs: MIN, thenMs: HOUR });
      }
      seedRun(catalog, clock, full, { durationMs: 60 * MIN });
      assert.deepEqual(evaluate(catalog, rules), [], "only 4 earlier fulls: not judged");

      // Make it five normal ones, then a slow one.
      seedRun(catalog, clock, full, { durationMs: 10 * MIN, thenMs: DAY });
      seedRun(catalog, clock, full, { durationMs: 10 * MIN });
      assert.deepEqual(evaluate(catalog, rules), []);
      const slow = seedRun(catalog, clock, full, { durationMs: 45 * MIN });
      const f = evaluate(catalog, rules);
      assert.deepEqual(rulesOf(f), ["long-run:main:backup/full"]);
      assert.equal(f[0]!.severity, "warning");
      assert.match(
        f[0]!.message,
        new RegExp(`backup/full of repository "main" \\(run ${slow.id}\\) took 45m00s; usually`),
      );
      assert.equal(f[0]!.details.runId, slow.id);

      // A failure afterwards neither clears nor repeats it; the next normal run clears it.
      seedRun(catalog, clock, full, { durationMs: MIN, result: "failed" });
      assert.ok(rulesOf(evaluate(catalog, rules)).includes("long-run:main:backup/full"));
      seedRun(catalog, clock, full, { durationMs: 11 * MIN });
      assert.ok(!rulesOf(evaluate(catalog, rules)).includes("long-run:main:backup/full"));
    } finally {
      await cleanup();
    }
  });

  it("the watchdog flags a run that is still going, and says when it will be overdue", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      for (let i = 0; i < 6; i++) seedRun(catalog, clock, full, { durationMs: 10 * MIN, thenMs: DAY });
      const id = catalog.startRun(full);
      const run = catalog.getRun(id)!;
      // median 10 min, spread max(0, 2 min, 30 s) = 2 min → threshold 16 min.
      clock.advance(15 * MIN);
      let v = watchRunInCatalog(catalog, run, rules.longRun);
      assert.equal(v.overdue, false);
      assert.equal(v.thresholdMs, 16 * MIN);
      assert.equal(v.deadline, run.startedAt + 16 * MIN);
      assert.equal(v.historyCount, 6);
      assert.deepEqual(evaluate(catalog, rules), []);
      clock.advance(2 * MIN);
      v = watchRunInCatalog(catalog, run, rules.longRun);
      assert.equal(v.overdue, true);
      const f = evaluate(catalog, rules);
      assert.deepEqual(rulesOf(f), ["long-run:main:backup/full"]);
      assert.match(f[0]!.message, /is still running after 17m00s/);

      // Without enough history there is no deadline.
      const none = watchRun({ startedAt: 0 }, [1, 2], rules.longRun, 10 ** 9);
      assert.equal(none.overdue, false);
      assert.equal(none.deadline, undefined);
    } finally {
      await cleanup();
    }
  });
});

describe("rules: backup size", () => {
  it("a full backup much smaller or larger than usual; a small incremental is fine, a huge one is not", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const rules = rulesWith({ maxBackupAgeMs: 365 * DAY });
      const full = { command: "backup", repository: "main", kind: "full" };
      const incr = { ...full, kind: "incremental" };
      for (const g of [10, 10.2, 10.1, 10.3]) seedRun(catalog, clock, full, { bytes: g * GIB });
      seedRun(catalog, clock, full, { bytes: 0.1 * GIB });
      assert.deepEqual(evaluate(catalog, rules), [], "4 earlier fulls: too little history");

      seedRun(catalog, clock, full, { bytes: 10.4 * GIB });
      seedRun(catalog, clock, full, { bytes: 3 * GIB });
      let f = evaluate(catalog, rules);
      assert.deepEqual(rulesOf(f), ["size-anomaly:main:backup/full"]);
      assert.match(f[0]!.message, /unusually small: 3\.0 GiB, usually about 10\.\d GiB/);
      assert.equal(f[0]!.details.anomaly, "small");

      seedRun(catalog, clock, full, { bytes: 30 * GIB });
      f = evaluate(catalog, rules);
      assert.equal(f[0]!.details.anomaly, "large");
      seedRun(catalog, clock, full, { bytes: 10.5 * GIB });
      assert.deepEqual(evaluate(catalog, rules), []);

      for (let i = 0; i < 5; i++) seedRun(catalog, clock, incr, { bytes: 100 * 1024 ** 2 });
      seedRun(catalog, clock, incr, { bytes: 1024 ** 2 });
      assert.deepEqual(evaluate(catalog, rules), []);
      seedRun(catalog, clock, incr, { bytes: 5 * GIB });
      assert.deepEqual(rulesOf(evaluate(catalog, rules)), ["size-anomaly:main:backup/incremental"]);
    } finally {
      await cleanup();
    }
  });
});
