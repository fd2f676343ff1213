// The scheduler: on time, never overlapping itself, SIGTERM waits for running jobs; JSON logs.
// First with an injected runner (exact timing, no database), then the real daemon process running
// `verify` against a real sandbox cluster.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import type { LoadedConfig } from "../../src/config/load.ts";
import { parseConfigText } from "../../src/config/load.ts";
import { jobsFromConfig } from "../../src/config/schedule.ts";
import type { JobSpec } from "../../src/daemon/jobs.ts";
import { createLogger, humanLine } from "../../src/daemon/log.ts";
import type { StepOutcome, StepRunner } from "../../src/daemon/runner.ts";
import { Scheduler } from "../../src/daemon/scheduler.ts";
import type { ConfigError } from "../../src/errors.ts";
import { BIN, cli, editConfig, FIXTURES } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

type Event = Record<string, unknown> & { event?: string; job?: string; time: string; level: number };

function memoryLog() {
  const lines: string[] = [];
  const log = createLogger({ sink: { write: (l) => lines.push(l) }, human: false });
  const events = () => lines.map((l) => JSON.parse(l) as Event);
  return { lines, log, events };
}

/** A runner whose steps take `ms` (or until aborted, then `cleanupMs` more), tracking concurrency. */
function fakeRunner(ms: number, cleanupMs = 0) {
  const state = { active: 0, maxActive: 0, calls: 0, aborted: 0 };
  const run: StepRunner = (_args, signal) =>
    new Promise<StepOutcome>((resolve) => {
      const started = Date.now();
      state.calls++;
      state.active++;
      state.maxActive = Math.max(state.maxActive, state.active);
      const finish = (result: StepOutcome["result"]) => {
        state.active--;
        resolve({
          result,
          exitCode: result === "ok" ? 0 : 2,
          signal: null,
          durationMs: Date.now() - started,
        });
      };
      const timer = setTimeout(() => finish("ok"), ms);
      signal.addEventListener(
        "abort",
        () => {
          clearTimeout(timer);
          state.aborted++;
          setTimeout(() => finish("aborted"), cleanupMs);
        },
        { once: true },
      );
    });
  return { run, state };
}

const job = (name: string, cron: string): JobSpec => ({ name, cron, steps: [[name]] });

const BASE = `
version: 1
cluster:
  nodes: [{ name: db1, host: db1.example }]
  credentials: { backup: { user: backup } }
repositories:
  - { name: main, storage: { type: local, path: /srv/a } }
  - { name: offsite, storage: { type: local, path: /srv/b }, retention: { keepLast: 3 } }
keys:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
  signingKey: signing.key
`;
const loadedOf = (text: string): LoadedConfig => ({
  path: "/etc/strongbox/strongbox.yaml",
  dir: "/etc/strongbox",
  config: parseConfigText(text, "t.yaml"),
  resolvePath: (p) => p,
});

describe("schedule config", () => {
  it("turns each scheduled job into CLI steps", () => {
    const jobs = jobsFromConfig(
      loadedOf(`${BASE}
backup: { copyTo: [offsite] }
schedule:
  full: "0 2 * * 0"
  incremental: "0 2 * * 1-6"
  verify: "0 6 * * *"
  restoreTest: "0 7 * * 6"
  copy: "30 2 * * *"
  prune: "0 5 * * *"
  binlog: "*/5 * * * *"
`),
    );
    const byName = Object.fromEntries(jobs.map((j) => [j.name, j]));
    assert.deepEqual(byName.full?.steps, [["backup", "--full"]]);
    assert.deepEqual(byName.incremental?.steps, [["backup", "--incremental"]]);
    assert.deepEqual(byName.verify?.steps, [
      ["verify", "--repo", "main"],
      ["verify", "--repo", "offsite"],
    ]);
    assert.deepEqual(byName.restoreTest?.steps, [["restore-test", "--repo", "main"]]);
    assert.deepEqual(byName.copy?.steps, [["copy", "--missing", "--to", "offsite"]]);
    assert.deepEqual(byName.prune?.steps, [["prune", "--repo", "offsite"]]);
    assert.deepEqual(byName.binlog?.steps, [["binlog", "archive"]]);
    assert.equal(byName.binlog?.unavailable, undefined);
  });

  it("reports every problem at once, with its path", () => {
    assert.throws(
      () =>
        jobsFromConfig(
          loadedOf(`${BASE}
schedule: { full: "every night", verify: "61 * * * *", copy: "0 3 * * *" }
`),
        ),
      (e: ConfigError) => {
        assert.equal(e.code, "CONFIG_INVALID");
        assert.equal(e.problems.length, 3);
        assert.match(e.problems[0]!, /^schedule\.full: "every night" is not a valid cron expression/);
        assert.match(e.problems[1]!, /^schedule\.verify:/);
        assert.match(e.problems[2]!, /^schedule\.copy: nothing to copy to/);
        return true;
      },
    );
    assert.throws(() => jobsFromConfig(loadedOf(BASE)), /schedules no jobs/);
    assert.throws(
      () => parseConfigText(`${BASE}\nschedule: { nightly: "0 2 * * *" }\n`, "t.yaml"),
      (e: ConfigError) => e.problems.some((p) => p.startsWith("schedule")),
    );
  });
});

describe("scheduler (injected runner)", () => {
  it("runs jobs on time, never overlaps a slow job (skips and logs it), logs JSON lines", async () => {
    const { log, lines, events } = memoryLog();
    const fast = fakeRunner(50);
    const slow = fakeRunner(2_300);
    const s = new Scheduler({
      jobs: [
        job("fast", "* * * * * *"),
        job("slow", "* * * * * *"),
        {
          ...job("binlog", "* * * * * *"),
          unavailable: "binary log archiving is not available in this version",
        },
      ],
      run: (args, signal) => (args[0] === "slow" ? slow.run(args, signal) : fast.run(args, signal)),
      log,
    });
    s.start();
    await sleep(5_400);
    await s.stop();

    for (const l of lines) assert.doesNotThrow(() => JSON.parse(l), l);
    assert.ok(
      lines.every((l) => l.endsWith("\n") && !l.slice(0, -1).includes("\n")),
      "one line per event",
    );
    const ev = events();
    const starts = (name: string) => ev.filter((e) => e.event === "job-start" && e.job === name);

    // fast: once a second, close to the start of each second
    const fastStarts = starts("fast").map((e) => Date.parse(e.time));
    assert.ok(fastStarts.length >= 4 && fastStarts.length <= 6, `fast ran ${fastStarts.length} times`);
    for (const t of fastStarts) assert.ok(t % 1000 < 250, `started ${t % 1000} ms after the second`);
    for (let i = 1; i < fastStarts.length; i++) {
      const gap = fastStarts[i]! - fastStarts[i - 1]!;
      assert.ok(gap > 800 && gap < 1_200, `gap ${gap} ms`);
    }
    // slow: never two at once; the runs due meanwhile were skipped and logged
    assert.equal(slow.state.maxActive, 1);
    assert.ok(starts("slow").length >= 2 && starts("slow").length <= 3);
    const skips = ev.filter((e) => e.event === "job-skip" && e.job === "slow");
    assert.ok(skips.length >= 2, `${skips.length} skips`);
    assert.equal(skips[0]!.reason, "previous run still going");
    assert.equal(ev.filter((e) => e.event === "job-skip" && e.job === "fast").length, 0);
    // unavailable jobs are logged when due and never run
    assert.ok(ev.some((e) => e.event === "job-unavailable" && e.job === "binlog"));
    assert.ok(!ev.some((e) => e.event === "job-start" && e.job === "binlog"));
    const end = ev.find((e) => e.event === "job-end" && e.job === "fast");
    assert.equal(end?.result, "ok");
    assert.equal(typeof end?.durationMs, "number");
  });

  it("stop() aborts the running job, waits for its cleanup, and schedules nothing more", async () => {
    const { log, events } = memoryLog();
    const slow = fakeRunner(60_000, 700);
    const s = new Scheduler({ jobs: [job("backup", "* * * * * *")], run: slow.run, log });
    s.start();
    while (slow.state.calls === 0) await sleep(50);
    const t0 = Date.now();
    await s.stop("SIGTERM");
    const waited = Date.now() - t0;
    assert.ok(waited >= 650, `stop returned after ${waited} ms, before the job cleaned up`);
    assert.equal(slow.state.aborted, 1);
    assert.equal(slow.state.active, 0);
    await sleep(1_300);
    assert.equal(slow.state.calls, 1, "nothing started after stop");
    const order = events()
      .map((e) => e.event)
      .filter((e) => e !== "job-skip");
    assert.deepEqual(order, ["daemon-start", "job-start", "daemon-stopping", "job-end", "daemon-stop"]);
    const ev = events();
    assert.deepEqual(ev.find((e) => e.event === "daemon-stopping")?.waitingFor, ["backup"]);
    assert.equal(ev.find((e) => e.event === "job-end")?.result, "aborted");
  });

  it("checks the alert rules on an interval, one check at a time", async () => {
    const { log, events } = memoryLog();
    let checks = 0;
    let failNext = true;
    const s = new Scheduler({
      jobs: [job("verify", "0 0 1 1 *")],
      run: fakeRunner(10).run,
      log,
      checkIntervalMs: 200,
      check: async () => {
        checks++;
        if (failNext) {
          failNext = false;
          throw new Error("catalog locked");
        }
        return { opened: [] };
      },
    });
    s.start();
    await sleep(1_100);
    await s.stop();
    assert.ok(checks >= 4 && checks <= 7, `${checks} checks`);
    assert.ok(events().some((e) => e.event === "check-failed" && e.error === "catalog locked"));
  });

  it("formats events as readable lines for a terminal", () => {
    const line = humanLine(
      JSON.stringify({
        level: 30,
        time: "2025-01-02T03:04:05.678Z",
        pid: 1,
        event: "job-end",
        job: "verify",
        result: "ok",
        msg: "verify: ok in 1.0 s",
      }),
    );
    assert.equal(line, "03:04:05 INFO  verify: ok in 1.0 s  event=job-end job=verify result=ok\n");
  });
});

describe("daemon process against a real cluster", () => {
  const cluster = useCluster({ nodes: 1 });
  const children: ReturnType<typeof spawn>[] = [];
  after(() => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
  });

  it("runs verify every 2 s; SIGTERM waits for the running verify and exits 0", {
    timeout: 300_000,
  }, async () => {
    for (const args of [["init"], ["backup", "--full"]]) {
      const r = await cli(["--config", cluster.configPath, ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    const cfg = editConfig(cluster.configPath, `${cluster.dir}/daemon.yaml`, (c) => {
      c.schedule = { verify: "*/2 * * * * *" };
    });
    // Every verify takes a second longer (a fixture), so the SIGTERM below lands while one runs.
    const child = spawn(BIN, ["--config", cfg, "daemon"], {
      stdio: ["ignore", "pipe", "pipe"],
      env: {
        ...process.env,
        STRONGBOX_NODE: process.execPath,
        NODE_OPTIONS: `--import ${join(FIXTURES, "slow-verify.mjs")}`,
        SLOW_VERIFY_MS: "1000",
      },
    });
    children.push(child);
    let out = "";
    let err = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (err += c.toString()));
    const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
    const events = () =>
      out
        .split("\n")
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Event);
    const waitFor = async (pred: (e: Event[]) => boolean, what: string, ms = 60_000) => {
      const until = Date.now() + ms;
      while (!pred(events())) {
        if (Date.now() > until)
          assert.fail(`timed out waiting for ${what}; stdout:\n${out}\nstderr:\n${err}`);
        await sleep(25);
      }
    };

    await waitFor(
      (e) => e.filter((x) => x.event === "job-end" && x.result === "ok").length >= 2,
      "two verify runs",
    );
    const ends = events().filter((e) => e.event === "job-end");
    assert.ok(
      ends.every((e) => e.job === "verify" && e.result === "ok"),
      JSON.stringify(ends),
    );
    const verifyStarts = events()
      .filter((e) => e.event === "job-start")
      .map((e) => Date.parse(e.time));
    for (const t of verifyStarts) assert.ok(t % 2000 < 300, `verify started ${t % 2000} ms after its slot`);

    // the next verify starts: SIGTERM while it runs
    const startsBefore = events().filter((e) => e.event === "job-start").length;
    await waitFor((e) => e.filter((x) => x.event === "job-start").length > startsBefore, "next verify");
    await sleep(150);
    child.kill("SIGTERM");
    assert.equal(await exited, 0, err);

    const ev = events();
    const seq = ev.map((e) => e.event);
    const stopping = seq.indexOf("daemon-stopping");
    assert.ok(stopping > 0, seq.join(","));
    assert.deepEqual(ev[stopping]!.waitingFor, ["verify"]);
    assert.equal(seq.lastIndexOf("job-end") > stopping, true, "the running verify ended after SIGTERM");
    assert.equal(seq.at(-1), "daemon-stop");
    assert.equal(seq.filter((e) => e === "job-start").length, seq.filter((e) => e === "job-end").length);
    for (const e of ev) {
      assert.equal(typeof e.time, "string");
      assert.equal(typeof e.level, "number");
    }

    const status = await cli(["--config", cluster.configPath, "status", "--json"]);
    const report = JSON.parse(status.stdout) as { repositories: { running: unknown[] }[] };
    assert.deepEqual(report.repositories[0]!.running, [], "no run left marked running");
  });
});
