// Nothing unwatched (issue 21), against a real one-node cluster through the real CLI: every command
// that changes or proves something is a run in the catalog (history, status, list, /metrics), a
// usage error is no run, a stalled backup tool is stopped, and no file holding a secret survives a
// kill -9 at any of several points.
import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadConfig } from "../../src/config/load.ts";
import { monitorSettingsOf } from "../../src/config/monitoring.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { RUN_COMMANDS, type Run } from "../../src/monitor/catalog-types.ts";
import { metricsOf } from "../../src/monitor/monitor.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { BIN, cli, editConfig, FIXTURES, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { lockHeld } from "../helpers/repo.ts";
import { sshFieldsOf, startSshd } from "../helpers/sshd.ts";
import { startHttpReceiver, startSmtpReceiver } from "./receivers.ts";

/** Every regular file under `dir` whose bytes contain `needle`. */
function filesHolding(dir: string, needle: string): string[] {
  const out: string[] = [];
  if (!existsSync(dir)) return out;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...filesHolding(p, needle));
    else if (e.isFile() && readFileSync(p).includes(needle)) out.push(p);
  }
  return out;
}

/** Whether `ancestor` is `pid`'s parent, grandparent, … */
function descendsFrom(pid: number, ancestor: number): boolean {
  let p = pid;
  for (let i = 0; i < 10 && p > 1; i++) {
    const stat = readFileSync(`/proc/${p}/stat`, "utf8");
    p = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (p === ancestor) return true;
  }
  return false;
}

async function until(
  what: string,
  check: () => boolean | Promise<boolean>,
  timeoutMs = 120_000,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting until ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("nothing unwatched", () => {
  const cluster = useCluster({ nodes: 1 });
  let cfg = "";
  const run = async (...args: string[]) => {
    const r = await cli(["--config", cfg, ...args]);
    assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    return r;
  };
  const catalogRuns = (): Run[] => {
    const c = openCatalog(join(cluster.dir, "state", "catalog.db"));
    try {
      return c.runs();
    } finally {
      c.close();
    }
  };
  let full = "";
  /** Uncommitted backups that have objects in the repository. */
  const uncommitted = () => {
    const dir = join(cluster.dir, "repository", "backups");
    return readdirSync(dir).filter(
      (id) => !existsSync(join(dir, id, "manifest.json")) && readdirSync(join(dir, id)).length > 0,
    );
  };
  const partsInFlight = () => uncommitted().length > 0;

  it("records every command that changes or proves something, with outcome, duration and bytes", async () => {
    cfg = editConfig(cluster.configPath, join(cluster.dir, "two.yaml"), (c) => {
      c.repositories.push({
        name: "offsite",
        storage: { type: "local", path: "offsite" },
        retention: { keepLast: 5 },
      });
    });
    const conn = await cluster.connect(1);
    await loadDataset(conn, { sizeBytes: 1_000_000, seed: 21 });
    await run("init");
    full = JSON.parse((await run("backup", "--full", "--json")).stdout).id;
    await conn.query(
      "CREATE TABLE logs.after_backup (id INT PRIMARY KEY); INSERT INTO logs.after_backup VALUES (1),(2)",
    );
    await conn.end();
    await run("binlog", "archive");
    await run("verify");
    await run("restore-test");
    await run("restore", full, "--target-dir", join(cluster.dir, "restored"));
    await run("copy", "--to", "offsite");
    await run("prune", "--repo", "offsite");
    await run("key", "rotate");

    const runs = catalogRuns();
    const byCommand = (c: string) => runs.filter((r) => r.command === c);
    for (const c of RUN_COMMANDS) {
      const rs = byCommand(c);
      assert.ok(rs.length >= 1, `${c} recorded`);
      for (const r of rs) {
        assert.equal(r.result, "ok", `${c}: ${r.error}`);
        assert.ok(r.durationMs !== null && r.durationMs >= 0, `${c} has a duration`);
      }
    }
    assert.deepEqual(
      byCommand("key-rotate")
        .map((r) => r.repository)
        .sort(),
      ["local", "offsite"],
    );
    const restore = byCommand("restore")[0]!;
    assert.equal(restore.kind, "full");
    assert.ok(restore.bytes! > 1_000_000, "a restore records the bytes it wrote");
    assert.equal(restore.details?.backupId, full);
    const copy = byCommand("copy")[0]!;
    assert.equal(copy.repository, "offsite");
    assert.ok(copy.bytes! > 0);
    const pass = byCommand("binlog-archive")[0]!;
    assert.equal(pass.kind, "flush");
    assert.equal(pass.node, "node1");
    assert.ok(pass.bytes! > 0, "the pass stored binlog bytes");
    assert.match(String(pass.details?.gtidFirst), /^1-1-\d+$/);
    assert.match(String(pass.details?.gtidLast), /^1-1-\d+$/);
    assert.deepEqual(pass.details?.gaps, []);
    assert.equal(pass.details?.lagSeconds, 0, "an idle cluster right after a flush: nothing left to archive");
    const window = pass.details?.window as { from: string; to: string; backupId: string };
    assert.equal(window.backupId, full);
    assert.ok(Date.parse(window.from) <= Date.parse(window.to));
  });

  it("history lists them newest first and filters by command, repository and result", async () => {
    const all = JSON.parse((await run("history", "--json")).stdout).runs as Run[];
    assert.deepEqual(
      all.map((r) => r.id),
      catalogRuns().map((r) => r.id),
    );
    const passes = JSON.parse((await run("history", "--command", "binlog archive", "--json")).stdout)
      .runs as Run[];
    assert.ok(passes.length >= 1 && passes.every((r) => r.command === "binlog-archive"));
    const offsite = JSON.parse((await run("history", "--repo", "offsite", "--json")).stdout).runs as Run[];
    assert.deepEqual([...new Set(offsite.map((r) => r.command))].sort(), ["copy", "key-rotate", "prune"]);
    const failed = JSON.parse((await run("history", "--result", "failed", "--json")).stdout).runs as Run[];
    assert.deepEqual(failed, []);
    const text = (await run("history", "--command", "restore-test")).stdout;
    assert.match(text, /restore-test\s+full\s+local\s+-\s+ok\s+.*RTO \d+\.\d s/);
    for (const [args, message] of [
      [
        ["--result", "great"],
        /^strongbox: error: --result must be one of running, ok, failed, aborted, killed/,
      ],
      [["--command", "backpu"], /^strongbox: error: --command must be one of backup, verify/],
      [["--repo", "nowhere"], /^strongbox: error: no repository named "nowhere"/],
      [["--since", "last tuesday"], /^strongbox: error: --since must be a time/],
    ] as const) {
      const r = await cli(["--config", cfg, "history", ...args]);
      assert.equal(r.code, 64, r.stderr);
      assert.match(r.stderr, message);
      assert.equal(r.stderr.trim().split("\n").length, 1);
    }
  });

  it("status, list and /metrics show the runs, the recoverable window, the lag, the RTO and the copy age", async () => {
    const status = JSON.parse((await cli(["--config", cfg, "status", "--json"])).stdout);
    const local = status.repositories.find((r: { repository: string }) => r.repository === "local");
    assert.deepEqual(local.otherRuns.map((r: { command: string }) => r.command).sort(), [
      "binlog-archive",
      "key-rotate",
      "restore",
    ]);
    assert.equal(local.pitr.window.backupId, full);
    assert.equal(local.pitr.lagSeconds, 0);
    assert.deepEqual(local.pitr.openGaps, []);
    const text = (await cli(["--config", cfg, "status"])).stdout;
    assert.match(text, /binlog-archive\s+ok .* ago \(run \d+, flush/);
    assert.match(text, /point-in-time window \d{4}-\d\d-\d\dT\S+Z \.\. \d{4}-\d\d-\d\dT\S+Z \(from backup /);
    assert.match(status.summary, /'local_binlog_lag'=0s/, "the lag is Nagios performance data");

    const list = JSON.parse((await run("list", "--json")).stdout);
    assert.equal(list.pointInTime.window.backupId, full);
    assert.equal(list.pointInTime.window.from, local.pitr.window.from);
    assert.match((await run("list")).stdout, /point-in-time window .* \(from backup /);

    const metrics = await metricsOf(monitorSettingsOf(await loadConfig(cfg)));
    const value = (name: string, repo: string) => {
      const m = new RegExp(`^${name}\\{repository="${repo}"\\} (\\S+)$`, "m").exec(metrics);
      assert.ok(m, `${name} for ${repo} in\n${metrics}`);
      return Number(m[1]);
    };
    assert.equal(value("strongbox_binlog_archive_lag_seconds", "local"), 0);
    assert.equal(value("strongbox_binlog_archive_gaps", "local"), 0);
    assert.equal(
      value("strongbox_pitr_window_start_timestamp_seconds", "local"),
      Date.parse(local.pitr.window.from) / 1000,
    );
    const rto = catalogRuns().find((r) => r.command === "restore-test")!.details!.rtoSeconds as number;
    assert.equal(value("strongbox_restore_test_rto_seconds", "local"), rto);
    const copyAge = value("strongbox_offsite_copy_age_seconds", "offsite");
    assert.ok(copyAge >= 0 && copyAge < 3600, String(copyAge));
  });

  it("a usage error is no run: verify --read-data without an identity exits 64, records and alerts nothing", async () => {
    const noId = editConfig(cfg, join(cluster.dir, "noid.yaml"), (c) => delete c.keys.identity);
    const before = catalogRuns().length;
    const r = await cli(["--config", noId, "verify", "--read-data"]);
    assert.equal(r.code, 64, r.stderr);
    assert.match(r.stderr, /^strongbox: error: no identity to decrypt with \(pass --identity FILE/m);
    assert.equal(catalogRuns().length, before, "no run recorded");
    for (const [args, message] of [
      [
        ["backup", "--full", "--node", "node9"],
        /^strongbox: error: no node named "node9" in the configuration/m,
      ],
      [["verify", "--sample", "250%"], /^strongbox: error: --sample must be a percentage between 0 and 100/m],
      [
        ["restore-test", "--to-time", "yesterday-ish"],
        /^strongbox: error: --to-time "yesterday-ish" is not a valid time/m,
      ],
    ] as const) {
      const u = await cli(["--config", cfg, ...args]);
      assert.equal(u.code, 64, `${args.join(" ")}: ${u.stderr}`);
      assert.match(u.stderr, message);
    }
    assert.equal(catalogRuns().length, before, "usage errors are no runs");
    const c = openCatalog(join(cluster.dir, "state", "catalog.db"));
    try {
      assert.deepEqual(
        c.openIncidents().filter((i) => i.rule === "run-failed"),
        [],
      );
    } finally {
      c.close();
    }
  });

  it("a backup tool that stops making progress is stopped after backup.stallTimeout; nothing committed", async () => {
    const before = JSON.parse((await run("list", "--json")).stdout).backups.length;
    const pidFile = join(cluster.dir, "stall.pid");
    const stalls = editConfig(cfg, join(cluster.dir, "stalls.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-stalls.sh");
      c.backup.stallTimeout = "2s";
    });
    const r = await cli(["--config", stalls, "backup", "--full"], { STALL_PIDFILE: pidFile });
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.match(
      lines[lines.length - 1]!,
      /^strongbox: error: mariabackup stalled: no output for \d+ s \(backup\.stallTimeout\); stopped it, nothing was committed/,
    );
    assert.equal(JSON.parse((await run("list", "--json")).stdout).backups.length, before);
    assert.equal(partsInFlight(), false, "the stalled run's parts were removed");
    const pid = Number(readFileSync(pidFile, "utf8"));
    await until("the stalled tool is gone", () => !pidAlive(pid), 10_000);
    const last = catalogRuns().find((x) => x.command === "backup")!;
    assert.equal(last.result, "failed");
    assert.match(last.error ?? "", /mariabackup stalled/);
  });

  it("the daemon: each scheduled binlog archive pass is a run; the open problem reaches channels configured later", async () => {
    // The stalled backup above left a run-failed incident open, with no channel configured then.
    const http = await startHttpReceiver();
    const smtp = await startSmtpReceiver();
    const passwordFile = join(cluster.dir, "smtp.password");
    writeFileSync(passwordFile, smtp.password, { mode: 0o600 });
    const daemonCfg = editConfig(cfg, join(cluster.dir, "daemon.yaml"), (c) => {
      c.schedule = { binlog: "*/2 * * * * *" };
      c.monitoring = {
        alerts: {
          webhook: { url: http.url },
          email: {
            host: smtp.host,
            port: smtp.port,
            user: smtp.user,
            passwordFile,
            from: "sb@backup.example",
            to: ["dba@example.com"],
          },
          attempts: 2,
          backoff: "1s",
        },
      };
    });
    const passesBefore = catalogRuns().filter((r) => r.command === "binlog-archive").length;
    const daemon = startCli(["--config", daemonCfg, "daemon", "--check-interval", "1"]);
    try {
      await until(
        "two scheduled passes recorded",
        () =>
          catalogRuns().filter((r) => r.command === "binlog-archive" && r.result === "ok").length >=
          passesBefore + 2,
      );
      await until(
        "the open problem alerted by webhook and mail",
        () => http.accepted().length >= 1 && smtp.mails.length >= 1,
      );
      const hook = http.accepted().find((r) => r.body.rule === "run-failed")!;
      assert.equal(hook.body.event, "open");
      assert.match(
        String(hook.body.text),
        /^CRITICAL strongbox on .*: backup \(full\) of repository "local" failed .*mariabackup stalled/,
      );
      assert.equal(
        smtp.mails.filter((m) => m.subject === "[strongbox] CRITICAL local: backup failed").length,
        1,
      );
    } finally {
      daemon.child.kill("SIGTERM");
      const r = await daemon.result;
      await http.close();
      await smtp.close();
      assert.equal(r.code, 0, r.stderr);
    }
    // Once only, however many checks ran.
    assert.equal(http.accepted().filter((r) => r.body.rule === "run-failed").length, 1);
    const passes = catalogRuns().filter((r) => r.command === "binlog-archive");
    assert.ok(
      passes.every((p) => p.result === "ok" && p.kind === "flush"),
      JSON.stringify(passes.map((p) => p.error)),
    );
  });

  it("binlog archive --follow records its passes, each with the GTID range it archived", async () => {
    // Continuous archiving records one run per checkpointInterval with what became durable.
    const follow = editConfig(cfg, join(cluster.dir, "follow.yaml"), (c) => {
      c.binlog = { maxDelay: "1s", checkpointInterval: "2s" };
    });
    const known = new Set(catalogRuns().map((r) => r.id));
    const fresh = () => catalogRuns().filter((r) => r.command === "binlog-archive" && !known.has(r.id));
    const f = startCli(["--config", follow, "binlog", "archive", "--follow"]);
    try {
      await until("a first pass while following", () => fresh().some((r) => r.result === "ok"));
      const conn = await cluster.connect(1);
      await conn.query("INSERT INTO logs.after_backup VALUES (3), (4)");
      const [[pos]] = (await conn.query("SELECT @@gtid_binlog_pos AS p")) as unknown as [[{ p: string }]];
      await conn.end();
      const written = /(?:^|,)(1-1-\d+)/.exec(pos.p)![1];
      await until("a pass that archived the write", () =>
        fresh().some((r) => r.details?.gtidLast === written),
      );
    } finally {
      f.child.kill("SIGTERM");
    }
    const r = await f.result;
    assert.equal(r.code, 0, r.stderr);
    // A pass that SIGTERM interrupted is recorded as aborted; every other one went well.
    const passes = fresh().filter((p) => p.result !== "aborted");
    assert.ok(fresh().length - passes.length <= 1);
    assert.ok(
      passes.every((p) => p.result === "ok" && p.kind === "poll" && p.details?.lagSeconds !== undefined),
    );
    assert.ok(passes.some((p) => p.bytes! > 0));
  });

  it("no file holding a secret survives kill -9, at several points of a backup", async () => {
    const password = cluster.backup.password!;
    assert.ok(password.length >= 8);
    const tmp = join(cluster.dir, "tmp");
    mkdirSync(tmp, { mode: 0o700 });
    const env = { TMPDIR: tmp };
    const scan = () => [
      ...filesHolding(tmp, password),
      ...filesHolding(join(cluster.dir, "state"), password),
    ];

    // 1. While the tool runs (a stalled one, so the moment is certain): the option file it reads
    //    is an unnamed file on its fd 3, and nothing on disk holds the password.
    const pidFile = join(cluster.dir, "stall2.pid");
    const stalls = editConfig(cfg, join(cluster.dir, "stalls-long.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-stalls.sh");
      c.backup.stallTimeout = "10m";
    });
    const first = startCli(["--config", stalls, "backup", "--full"], { ...env, STALL_PIDFILE: pidFile });
    await until("the tool started", () => existsSync(pidFile) && readFileSync(pidFile, "utf8").trim() !== "");
    const toolPid = Number(readFileSync(pidFile, "utf8"));
    assert.match(readlinkSync(`/proc/${toolPid}/fd/3`), /\(deleted\)$/, "fd 3 is a file without a name");
    assert.match(readFileSync(`/proc/${toolPid}/fd/3`, "utf8"), /^password="/m, "and it is the option file");
    assert.deepEqual(scan(), []);
    first.child.kill("SIGKILL");
    await first.result;
    assert.deepEqual(scan(), [], "after kill -9 of strongbox");
    process.kill(toolPid, "SIGKILL");
    await until("the orphaned tool is gone", () => !pidAlive(toolPid), 10_000);

    // 2..4. The real mariabackup (throttled): right after the lock is taken, while parts are
    //       written, and the tool itself killed.
    const slow = editConfig(cfg, join(cluster.dir, "slow.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
      c.backup.partSize = "256KiB";
    });
    const repoDir = join(cluster.dir, "repository");
    for (const point of ["lock taken", "parts being written"] as const) {
      const left = new Set(uncommitted());
      const b = startCli(["--config", slow, "backup", "--full"], { ...env, THROTTLE_BPS: "1000000" });
      const started = () => uncommitted().some((id) => !left.has(id));
      await until(point, point === "lock taken" ? () => lockHeld(repoDir) : started);
      b.child.kill("SIGKILL");
      await b.result;
      assert.deepEqual(scan(), [], `after kill -9 when ${point}`);
    }
    const b = startCli(["--config", slow, "backup", "--full"], { ...env, THROTTLE_BPS: "1000000" });
    // The tool as strongbox started it (the fixture wrapping the real mariabackup).
    const findTool = () =>
      readdirSync("/proc")
        .filter((p) => /^\d+$/.test(p))
        .map(Number)
        .find((p) => {
          try {
            return (
              readFileSync(`/proc/${p}/cmdline`, "utf8").includes("mariabackup-slow.sh") &&
              descendsFrom(p, b.child.pid!)
            );
          } catch {
            return false;
          }
        });
    await until("the backup tool runs", () => findTool() !== undefined);
    const tool = findTool();
    assert.ok(tool);
    const args = readFileSync(`/proc/${tool}/cmdline`, "utf8").split("\0");
    assert.ok(args.includes("--defaults-file=/dev/fd/3"), "it reads its options from fd 3");
    assert.match(readlinkSync(`/proc/${tool}/fd/3`), /\(deleted\)$/);
    process.kill(tool, "SIGKILL");
    const killed = await b.result;
    assert.equal(killed.code, 2, killed.stderr);
    assert.match(
      killed.stderr,
      /^strongbox: error: mariabackup (exited with code \d+|was killed by SIGKILL)/m,
    );
    assert.deepEqual(scan(), [], "after kill -9 of the tool");

    // The next backup cleans up after the killed ones and succeeds; still nothing holds the secret.
    const ok = await cli(["--config", cfg, "backup", "--full"], env);
    assert.equal(ok.code, 0, ok.stderr);
    assert.deepEqual(scan(), []);
  });

  it("through a node's agent: a stalled mariabackup is stopped; kill -9 of the backup host leaves no secret on the node", async () => {
    const password = cluster.backup.password!;
    const agentTmp = join(cluster.dir, "agent-tmp");
    mkdirSync(agentTmp, { mode: 0o700 });
    const pidFile = join(cluster.dir, "agent-stall.pid");
    const sshd = await startSshd({
      forcedCommand: `STALL_PIDFILE=${pidFile} TMPDIR=${agentTmp} STRONGBOX_NODE=${process.execPath} exec ${BIN} agent`,
    });
    await sshd.start();
    const agentCfg = (name: string, stallTimeout: string) =>
      editConfig(cfg, join(cluster.dir, name), (c) => {
        c.backup.mariabackupPath = join(FIXTURES, "mariabackup-stalls.sh");
        c.backup.stallTimeout = stallTimeout;
        for (const n of c.cluster.nodes) {
          n.agent = sshFieldsOf(sshd);
        }
      });
    const toolPid = () =>
      existsSync(pidFile) ? Number(readFileSync(pidFile, "utf8")) || undefined : undefined;
    try {
      const r = await cli(["--config", agentCfg("agent-stall.yaml", "2s"), "backup", "--full"]);
      assert.equal(r.code, 2, r.stderr);
      const lines = r.stderr.trim().split("\n");
      assert.match(
        lines[lines.length - 1]!,
        /^strongbox: error: mariabackup on node1 stalled: no output for \d+ s/,
      );
      const stalled = toolPid()!;
      await until("the agent stopped the stalled tool", () => !pidAlive(stalled), 30_000);
      assert.equal(partsInFlight(), false, "nothing committed, no part left");

      // kill -9 of the backup host while the node's tool runs: the agent stops it, nothing is left.
      writeFileSync(pidFile, "");
      const b = startCli(["--config", agentCfg("agent-long.yaml", "10m"), "backup", "--full"]);
      await until("the node's tool started", () => toolPid() !== undefined);
      const pid = toolPid()!;
      assert.match(readlinkSync(`/proc/${pid}/fd/3`), /\(deleted\)$/, "the agent's option file has no name");
      assert.deepEqual(filesHolding(agentTmp, password), []);
      b.child.kill("SIGKILL");
      await b.result;
      await until("the agent stopped the tool", () => !pidAlive(pid), 30_000);
      assert.deepEqual(filesHolding(agentTmp, password), []);
    } finally {
      await sshd.destroy();
    }
  });
});
