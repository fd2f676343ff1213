import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { applyFindings } from "../../src/monitor/alerts.ts";
import { buildRegistry, renderMetrics } from "../../src/monitor/metrics.ts";
import { evaluateRules } from "../../src/monitor/rules.ts";
import { Clock, rulesWith, seedRun, tempCatalog } from "./helpers.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

interface Exposition {
  types: Map<string, string>;
  help: Map<string, string>;
  samples: Sample[];
}

/** A strict parser of the Prometheus text format (0.0.4): every line must be understood. */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const help = new Map<string, string>();
  const samples: Sample[] = [];
  const NAME = "[a-zA-Z_:][a-zA-Z0-9_:]*";
  const sampleRe = new RegExp(`^(${NAME})(?:\\{(.*)\\})? (\\S+)$`);
  const labelRe = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)/y;
  assert.ok(text.endsWith("\n"), "ends with a newline");
  for (const line of text.slice(0, -1).split("\n")) {
    if (line === "") continue;
    let m = new RegExp(`^# HELP (${NAME}) (.*)$`).exec(line);
    if (m) {
      help.set(m[1]!, m[2]!);
      continue;
    }
    m = new RegExp(`^# TYPE (${NAME}) (counter|gauge|histogram|summary|untyped)$`).exec(line);
    if (m) {
      assert.ok(!types.has(m[1]!), `TYPE of ${m[1]} given twice`);
      types.set(m[1]!, m[2]!);
      continue;
    }
    m = sampleRe.exec(line);
    assert.ok(m, `unparsable line: ${line}`);
    const labels: Record<string, string> = {};
    const body = m[2] ?? "";
    labelRe.lastIndex = 0;
    while (labelRe.lastIndex < body.length) {
      const l = labelRe.exec(body);
      assert.ok(l, `bad labels in: ${line}`);
      labels[l[1]!] = l[2]!.replace(/\\n/g, "\n").replace(/\\"/g, '"').replace(/\\\\/g, "\\");
    }
    const value = Number(m[3]);
    assert.ok(!Number.isNaN(value) || m[3] === "NaN", `bad value in: ${line}`);
    const family = m[1]!;
    assert.ok(types.has(family), `sample before its TYPE: ${line}`);
    samples.push({ name: family, labels, value });
  }
  return { types, help, samples };
}

function find(e: Exposition, name: string, labels: Record<string, string>): Sample[] {
  return e.samples.filter(
    (s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v),
  );
}

function value(e: Exposition, name: string, labels: Record<string, string>): number {
  const s = find(e, name, labels);
  assert.equal(s.length, 1, `${name} ${JSON.stringify(labels)}: ${s.length} samples`);
  return s[0]!.value;
}

describe("metrics", () => {
  it("renders the catalog as valid Prometheus text with the expected series", async () => {
    const clock = new Clock();
    const { catalog, cleanup } = await tempCatalog(clock);
    try {
      const full = { command: "backup", repository: "main", kind: "full" };
      const incr = { command: "backup", repository: "main", kind: "incremental" };
      const ok = seedRun(catalog, clock, full, { durationMs: 90_000, bytes: 5_000_000 });
      seedRun(catalog, clock, incr, { durationMs: 10_000, bytes: 100_000 });
      const bad = seedRun(catalog, clock, incr, { durationMs: 3_000, result: "failed" });
      seedRun(catalog, clock, { command: "verify", repository: "main" }, { durationMs: 20_000 });
      seedRun(
        catalog,
        clock,
        { command: "copy", repository: "offsite" },
        { durationMs: 5_000, bytes: 5_000_000 },
      );
      catalog.startRun({ command: "restore-test", repository: "main" });
      clock.advance(42_000);
      applyFindings(
        catalog,
        evaluateRules(catalog, { repositories: ["main"], rules: rulesWith() }),
        ["main"],
        [],
      );

      const text = await renderMetrics(catalog);
      const e = parseExposition(text);
      for (const [name, type] of [
        ["strongbox_last_success_timestamp_seconds", "gauge"],
        ["strongbox_last_run_timestamp_seconds", "gauge"],
        ["strongbox_last_duration_seconds", "gauge"],
        ["strongbox_last_success_duration_seconds", "gauge"],
        ["strongbox_last_size_bytes", "gauge"],
        ["strongbox_last_run_success", "gauge"],
        ["strongbox_last_result", "gauge"],
        ["strongbox_run_in_progress", "gauge"],
        ["strongbox_run_in_progress_seconds", "gauge"],
        ["strongbox_runs_total", "counter"],
        ["strongbox_open_incidents", "gauge"],
        ["strongbox_incident_open", "gauge"],
      ] as const) {
        assert.equal(e.types.get(name), type, name);
        assert.ok(e.help.get(name), `HELP of ${name}`);
      }

      const fullL = { repository: "main", command: "backup", kind: "full" };
      const incrL = { repository: "main", command: "backup", kind: "incremental" };
      assert.equal(value(e, "strongbox_last_success_timestamp_seconds", fullL), ok.endedAt! / 1000);
      assert.equal(value(e, "strongbox_last_duration_seconds", fullL), 90);
      assert.equal(value(e, "strongbox_last_size_bytes", fullL), 5_000_000);
      assert.equal(value(e, "strongbox_last_run_success", fullL), 1);
      // The incremental: last run failed; its last success and size are still reported.
      assert.equal(value(e, "strongbox_last_run_success", incrL), 0);
      assert.equal(value(e, "strongbox_last_result", { ...incrL, result: "failed" }), 1);
      assert.equal(value(e, "strongbox_last_result", { ...incrL, result: "ok" }), 0);
      assert.equal(value(e, "strongbox_last_duration_seconds", incrL), 3);
      assert.equal(value(e, "strongbox_last_success_duration_seconds", incrL), 10);
      assert.equal(value(e, "strongbox_last_size_bytes", incrL), 100_000);
      assert.equal(value(e, "strongbox_last_run_timestamp_seconds", incrL), bad.endedAt! / 1000);
      // Commands without a kind have an empty kind label, which Prometheus treats as absent.
      assert.equal(value(e, "strongbox_last_duration_seconds", { command: "verify", kind: "" }), 20);

      assert.equal(
        value(e, "strongbox_runs_total", { repository: "main", command: "backup", result: "ok" }),
        2,
      );
      assert.equal(
        value(e, "strongbox_runs_total", { repository: "main", command: "backup", result: "failed" }),
        1,
      );
      assert.equal(
        value(e, "strongbox_runs_total", { repository: "main", command: "restore-test", result: "running" }),
        1,
      );

      const rt = { repository: "main", command: "restore-test", kind: "" };
      assert.equal(value(e, "strongbox_run_in_progress", rt), 1);
      assert.equal(value(e, "strongbox_run_in_progress_seconds", rt), 42);
      assert.equal(value(e, "strongbox_run_in_progress", fullL), 0);
      assert.equal(find(e, "strongbox_last_run_success", rt).length, 0, "nothing finished yet");

      assert.equal(value(e, "strongbox_open_incidents", { repository: "main", severity: "critical" }), 1);
      assert.equal(value(e, "strongbox_open_incidents", { repository: "main", severity: "warning" }), 0);
      assert.equal(value(e, "strongbox_incident_open", { rule: "run-failed", subject: "backup" }), 1);

      // Limited to the configured repositories.
      const onlyMain = parseExposition(await renderMetrics(catalog, { repositories: ["main", "empty"] }));
      assert.equal(find(onlyMain, "strongbox_last_duration_seconds", { repository: "offsite" }).length, 0);
      assert.equal(
        value(onlyMain, "strongbox_open_incidents", { repository: "empty", severity: "critical" }),
        0,
      );

      // Each call has its own registry: nothing accumulates between scrapes.
      const again = parseExposition(await renderMetrics(catalog));
      assert.equal(
        value(again, "strongbox_runs_total", { repository: "main", command: "backup", result: "ok" }),
        2,
      );
      assert.notEqual(buildRegistry(catalog), buildRegistry(catalog));
    } finally {
      await cleanup();
    }
  });

  it("an empty catalog renders valid text with no samples", async () => {
    const { catalog, cleanup } = await tempCatalog();
    try {
      const e = parseExposition(await renderMetrics(catalog));
      assert.equal(e.samples.length, 0);
      assert.ok(e.types.size >= 10);
    } finally {
      await cleanup();
    }
  });
});
