// Point-in-time recovery against a real 3-node cluster: full backup, steady writes, binlog archive,
// an accidental DROP TABLE, recovery to just before it; then the archiving node stops in the middle
// and archiving continues from another node by GTID, without gaps or duplicates.
import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { type ArchiveResult, archiveFollow, archiveOnce } from "../../src/binlog/archive.ts";
import { chooseBackupFor } from "../../src/binlog/plan.ts";
import { restoreToPoint } from "../../src/binlog/replay.ts";
import { verifyBinlogArchive } from "../../src/binlog/verify.ts";
import { binlogArchive } from "../../src/commands/binlog.ts";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import {
  clusterNodes,
  credentialsFor,
  identitiesOf,
  recipientsOf,
  signingKeyOf,
} from "../../src/config/context.ts";
import type { StrongboxError } from "../../src/errors.ts";
import type { Connection } from "../../src/galera/connection.ts";
import { gtidInList } from "../../src/mariadb/gtid.ts";
import { startScratchServer } from "../../src/mariadb/scratch.ts";
import { readIndex } from "../../src/repository/binlog-index.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { stopNode } from "../../src/sandbox/cluster.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { sleep } from "../../src/util/proc.ts";
import { BIN, cli, editConfig, FIXTURES, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

const LONG = { timeout: 600_000 };
const exec = promisify(execFile);

describe("point-in-time recovery", () => {
  const cluster = useCluster({ nodes: 3 });
  let work = "";
  let opened: Awaited<ReturnType<typeof openConfiguredRepository>>;
  let writer: Connection;
  let backup: Manifest;
  let seq = 0;

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strongbox-pitr-test-"));
  });
  after(async () => {
    await writer?.end().catch(() => {});
    await opened?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Inserts `n` rows, one transaction each, ~25 ms apart; returns the seqs written. */
  const write = async (n: number): Promise<void> => {
    for (let i = 0; i < n; i++) {
      seq++;
      await writer.query("INSERT INTO pitr.t (seq, ts) VALUES (?, NOW(6))", [seq]);
      await sleep(25);
    }
  };

  const archiveOptions = async () => {
    const loaded = opened.loaded;
    return {
      repo: opened.repo,
      nodes: clusterNodes(loaded),
      // The admin account has REPLICATION SLAVE (binlog dump) and RELOAD (flush).
      creds: (await credentialsFor(loaded, "admin"))!,
      preferNode: loaded.config.cluster.backupNode,
      writerNode: loaded.config.cluster.writerNode,
      recipients: (await recipientsOf(loaded)).age,
      signing: await signingKeyOf(loaded),
    };
  };
  const archive = async (): Promise<ArchiveResult> =>
    archiveOnce({ ...(await archiveOptions()), flush: true });
  const writerGtid = async (): Promise<string> => {
    const [[pos]] = (await writer.query("SELECT @@gtid_binlog_pos AS p")) as unknown as [[{ p: string }]];
    const g = gtidInList(pos.p, 1)!;
    return `1-${g.server}-${g.seq}`;
  };
  /** Rotates a node's binlog and deletes every older file, as an over-eager expire_logs_days would. */
  const purge = async (k: number) => {
    const c = await cluster.connect(k);
    await c.query("FLUSH LOCAL BINARY LOGS");
    const [[st]] = (await c.query("SHOW MASTER STATUS")) as unknown as [[{ File: string }]];
    await c.query(`PURGE BINARY LOGS TO '${st.File}'`);
    await c.end();
  };

  const restoreTo = async (
    name: string,
    target: { toTime?: Date; toGtid?: string },
  ): Promise<{ dir: string; result: Awaited<ReturnType<typeof restoreToPoint>> }> => {
    // Through the real CLI: `restore --to-time/--to-gtid` chooses the backup and replays binlogs.
    const chosen = chooseBackupFor(await opened.repo.list(), target);
    assert.equal(chosen.id, backup.id);
    const dir = join(work, name);
    const point = target.toGtid ? ["--to-gtid", target.toGtid] : ["--to-time", target.toTime!.toISOString()];
    const r = await cli(["--config", opened.loaded.path, "restore", ...point, "--target-dir", dir, "--json"]);
    if (r.code !== 0) {
      const err = JSON.parse(r.stdout || "{}").error ?? {};
      throw Object.assign(new Error(err.message ?? r.stderr), { code: err.code });
    }
    const out = JSON.parse(r.stdout) as {
      restore: { backups: string[] };
      pointInTime: Awaited<ReturnType<typeof restoreToPoint>>;
    };
    assert.deepEqual(out.restore.backups, [backup.id]);
    return { dir, result: out.pointInTime };
  };

  const inspect = async (dir: string) => {
    const server = await startScratchServer(dir, join(work, `${dir.split("/").pop()}-check`));
    try {
      const c = await server.connect();
      try {
        const [[rows]] = (await c.query(
          "SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MIN(seq) AS lo, MAX(seq) AS hi, MAX(UNIX_TIMESTAMP(ts)) AS lastTs FROM pitr.t",
        )) as unknown as [[{ n: string; d: string; lo: string; hi: string; lastTs: string }]];
        const [tables] = (await c.query(
          "SELECT TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'pitr' ORDER BY 1",
        )) as unknown as [{ t: string }[]];
        return {
          n: Number(rows.n),
          distinct: Number(rows.d),
          lo: Number(rows.lo),
          hi: Number(rows.hi),
          lastTs: Number(rows.lastTs),
          tables: tables.map((r) => r.t),
        };
      } finally {
        await c.end();
      }
    } finally {
      await server.stop();
    }
  };

  let dropAt = 0; // server clock, epoch seconds with microseconds
  let beforeDrop = 0;

  it("recovers to just before an accidental DROP TABLE", LONG, async () => {
    writer = await cluster.connect(1);
    await writer.query(
      "CREATE DATABASE pitr; CREATE TABLE pitr.t (id INT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL, ts DATETIME(6) NOT NULL);" +
        "CREATE TABLE pitr.victim (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO pitr.victim VALUES (1, 'precious'), (2, 'data')",
    );
    const init = await cli(["--config", cluster.configPath, "init"]);
    assert.equal(init.code, 0, init.stderr);
    const b = await cli(["--config", cluster.configPath, "backup", "--full", "--json"]);
    assert.equal(b.code, 0, b.stderr);
    backup = JSON.parse(b.stdout) as Manifest;
    assert.ok(backup.gtid, "the backup records its GTID position");
    opened = await openConfiguredRepository(cluster.configPath);

    await write(40);
    const first = await archive();
    assert.equal(first.node, "node3", "archives from the configured backup node");
    assert.ok(first.archived.length >= 1);
    assert.deepEqual(first.gaps, []);
    await write(40);
    beforeDrop = seq;
    // Binlog event times have whole seconds: leave more than a second between the last write and X.
    await sleep(1600);
    const [[now]] = (await writer.query("SELECT UNIX_TIMESTAMP(NOW(6)) AS x")) as unknown as [
      [{ x: string }],
    ];
    dropAt = Number(now.x);
    await writer.query("DROP TABLE pitr.victim");
    await sleep(1100);
    await write(40);
    const second = await archive();
    assert.equal(second.node, "node3");
    assert.deepEqual(second.gaps, []);

    const { dir, result } = await restoreTo("to-time", { toTime: new Date((dropAt - 0.2) * 1000) });
    assert.equal(result.stoppedBy, "time");
    assert.ok(result.transactions >= beforeDrop, `applied ${result.transactions} transactions`);
    const got = await inspect(dir);
    assert.deepEqual(got.tables, ["t", "victim"], "the dropped table is back");
    assert.equal(got.n, beforeDrop, "every row written before X, none after");
    assert.equal(got.distinct, got.n, "no duplicates");
    assert.equal(got.lo, 1);
    assert.equal(got.hi, beforeDrop);
    assert.ok(got.lastTs < dropAt);
    assert.match(readFileSync(join(dir, "grastate.dat"), "utf8"), /seqno:\s+-1/);
  });

  it("restore-test --to-time proves the point-in-time restore on a throw-away server", LONG, async () => {
    const to = new Date((dropAt - 0.2) * 1000).toISOString();
    const r = await cli(["--config", opened.loaded.path, "restore-test", "--to-time", to, "--json"]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout);
    assert.equal(out.passed, true);
    assert.equal(out.id, backup.id);
    assert.ok(out.timings.replay > 0, "binlogs were replayed");
    assert.ok(out.tablesChecked > 0);
  });

  it("a failed or interrupted point-in-time restore leaves no bootable data directory", LONG, async () => {
    const cfg = opened.loaded.path;
    // A target just past the end of the archive: the signed index already tells (no archived
    // event at or after it, the archive not complete past it), before anything is restored.
    const late = join(work, "too-late");
    const soon = new Date(Date.now() + 60_000).toISOString();
    let r = await cli(["--config", cfg, "restore", "--to-time", soon, "--target-dir", late, "--json"]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(JSON.parse(r.stdout).error.code, "PITR_NOT_COVERED");
    assert.equal(existsSync(late), false, "nothing restored, nothing left to bootstrap from");
    // Far past the newest archiving (an hour, a typo'd year): refused from the index, before
    // anything is restored.
    const never = join(work, "far-too-late");
    const hour = new Date(Date.now() + 3_600_000).toISOString();
    r = await cli(["--config", cfg, "restore", "--to-time", hour, "--target-dir", never]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^strongbox: error: the binlog archive ends at 1-\d+-\d+ .*before the target/m);
    assert.doesNotMatch(r.stderr, /extracting/);
    assert.equal(existsSync(never), false);
    const gtidPast = `1-1-${Number((await writerGtid()).split("-")[2]) + 1000}`;
    r = await cli(["--config", cfg, "restore", "--to-gtid", gtidPast, "--target-dir", never]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, new RegExp(`before the target ${gtidPast}`));
    assert.equal(existsSync(never), false);

    // Stopped in the middle of the roll-forward (a mariadb-binlog that hangs once it applies).
    const bin = await mkdtemp(join(work, "bin-"));
    symlinkSync(join(FIXTURES, "mariadb-binlog-hangs-on-apply.sh"), join(bin, "mariadb-binlog"));
    const to = new Date((dropAt - 0.2) * 1000).toISOString();
    for (const signal of ["SIGTERM", "SIGKILL"] as const) {
      const started = join(work, `apply-started-${signal}`);
      const target = join(work, `interrupted-${signal}`);
      const run = startCli(["--config", cfg, "restore", "--to-time", to, "--target-dir", target], {
        PATH: `${bin}:${process.env.PATH}`,
        APPLY_STARTED: started,
      });
      await Promise.race([
        (async () => {
          while (!existsSync(started)) await sleep(50);
        })(),
        run.result.then((x) => {
          throw new Error(`restore ended before its roll-forward: ${x.stderr}`);
        }),
      ]);
      assert.match(readFileSync(join(target, "grastate.dat"), "utf8"), /safe_to_bootstrap: 0/);
      run.child.kill(signal);
      const ended = await run.result;
      if (signal === "SIGTERM") {
        assert.equal(ended.code, 130, ended.stderr);
        assert.match(ended.stderr, /restore aborted by SIGTERM/);
        assert.deepEqual(readdirSync(target), [], "emptied, as a failed restore is");
      } else {
        // Nothing cleans up after SIGKILL: grastate.dat still forbids a bootstrap from this data.
        assert.match(readFileSync(join(target, "grastate.dat"), "utf8"), /seqno:\s+-1\nsafe_to_bootstrap: 0/);
        // What the killed restore left running: the hanging fake and the scratch server on the target.
        process.kill(Number(readFileSync(started, "utf8")), "SIGKILL");
        const { stdout } = await exec("pgrep", ["-f", "--", `--datadir=${target}`]).catch(() => ({
          stdout: "",
        }));
        for (const pid of stdout.split("\n").filter(Boolean)) process.kill(Number(pid), "SIGTERM");
        for (const pid of stdout.split("\n").filter(Boolean)) {
          while (pidAlive(Number(pid))) await sleep(50);
        }
      }
    }
  });

  it("continues from another node by GTID when the archiving node stops", LONG, async () => {
    // node2 rotates its binlog (as max_binlog_size would): its older file holds only archived GTIDs.
    const n2 = await cluster.connect(2);
    await n2.query("FLUSH LOCAL BINARY LOGS");
    await n2.end();
    await write(30); // on node3 only in its open binlog: never archived from node3
    await stopNode(cluster.dir, 3);
    await write(30);
    // Then the cluster is idle: no event after T proves the archive reaches T, the flush does.
    await sleep(1500);
    const idleAt = new Date();
    await sleep(1200);
    const r = await archive();
    assert.notEqual(r.node, "node3");
    assert.deepEqual(r.gaps, [], "the next GTID was found on the new node");
    assert.ok(r.archived.length >= 1);
    assert.ok(r.skipped.length >= 1, "node2's older file is recorded as already covered, not stored again");
    const toGtid = await writerGtid();
    assert.equal(r.lastGtid, toGtid, "the archive reaches the newest transaction");

    const idle = await restoreTo("to-idle-time", { toTime: idleAt });
    assert.equal(idle.result.lastGtid, toGtid);
    assert.equal((await inspect(idle.dir)).n, seq);
    await assert.rejects(
      restoreToPoint({
        repo: opened.repo,
        identities: await identitiesOf(opened.loaded),
        trustedPublicKey: (await signingKeyOf(opened.loaded)).publicKey,
        targetDir: join(work, "never"),
        fromGtid: backup.gtid!,
        toTime: new Date(Date.now() + 60_000),
      }),
      /archive ends at .* before the target/,
    );

    const { dir, result } = await restoreTo("to-gtid", { toGtid });
    assert.equal(result.lastGtid, toGtid);
    assert.ok(new Set(result.files.map((f) => f.node)).size >= 2, "files of both nodes were replayed");
    const got = await inspect(dir);
    assert.equal(got.n, seq, "row count equals what was written");
    assert.equal(got.distinct, seq, "no duplicates");
    assert.deepEqual(got.tables, ["t"], "the DROP was replayed too");

    const v = await verifyBinlogArchive(opened.repo, (await signingKeyOf(opened.loaded)).publicKey);
    assert.deepEqual(v.problems, []);
    assert.equal(v.gaps.length, 0);
  });

  it("--follow flushes and archives the open binlog every flushInterval until stopped", LONG, async () => {
    const ac = new AbortController();
    const errors: unknown[] = [];
    const loop = archiveFollow({
      ...(await archiveOptions()),
      flushIntervalMs: 1000,
      pollMs: 300,
      signal: ac.signal,
      onError: (e) => errors.push(e),
    });
    await write(20);
    const target = Number((await writerGtid()).split("-")[2]);
    const deadline = Date.now() + 30_000;
    let reached = 0;
    while (Date.now() < deadline && reached < target) {
      await sleep(300);
      const { entries } = await readIndex(opened.repo);
      reached = Math.max(
        0,
        ...entries.filter((e) => e.gtidLast).map((e) => Number(e.gtidLast!.split("-")[2])),
      );
    }
    ac.abort();
    assert.deepEqual(await loop, []);
    assert.deepEqual(errors, []);
    assert.ok(reached >= target, `archived up to ${reached}, written up to ${target}`);
  });

  it(
    "binlog archive --follow (CLI) streams within binlog.maxDelay and stops cleanly on SIGTERM",
    LONG,
    async () => {
      const cfg = editConfig(cluster.configPath, join(cluster.dir, "strongbox-binlog.yaml"), (c) => {
        c.binlog = { maxDelay: "1s" };
      });
      const child = spawn(BIN, ["--config", cfg, "binlog", "archive", "--follow"], {
        stdio: ["ignore", "pipe", "pipe"],
        env: { ...process.env, STRONGBOX_NODE: process.execPath },
      });
      let stderr = "";
      child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
      const exited = new Promise<number | null>((resolve) => child.once("close", (code) => resolve(code)));
      await write(15);
      const target = Number((await writerGtid()).split("-")[2]);
      const deadline = Date.now() + 30_000;
      let reached = 0;
      while (Date.now() < deadline && reached < target) {
        await sleep(300);
        const { entries } = await readIndex(opened.repo);
        reached = Math.max(
          0,
          ...entries.filter((e) => e.gtidLast).map((e) => Number(e.gtidLast!.split("-")[2])),
        );
      }
      child.kill("SIGTERM");
      assert.equal(await exited, 0, stderr);
      assert.ok(reached >= target, `archived up to ${reached}, written up to ${target}: ${stderr}`);
      assert.match(stderr, /every transaction durable within 1 s/);
    },
  );

  it("fills a hole on the archiving node from another node that still has the binlogs", LONG, async () => {
    await write(10);
    await purge(2); // node2 (now preferred) lost these; node1 still has them
    await write(10);
    const r = await archive();
    assert.equal(r.node, "node2");
    assert.deepEqual(r.gaps, []);
    assert.ok(
      r.archived.some((e) => e.node === "node1"),
      "the missing transactions came from node1",
    );
    assert.equal(r.lastGtid, await writerGtid());
    const v = await verifyBinlogArchive(opened.repo, (await signingKeyOf(opened.loaded)).publicKey);
    assert.deepEqual(v.problems, []);
  });

  it("the least-privilege backup account plus REPLICATION SLAVE is enough to archive", LONG, async () => {
    await writer.query(
      "GRANT REPLICATION SLAVE ON *.* TO 'strongbox_backup'@'localhost'; GRANT REPLICATION SLAVE ON *.* TO 'strongbox_backup'@'127.0.0.1'",
    );
    await write(5);
    const r = await archiveOnce({
      ...(await archiveOptions()),
      creds: (await credentialsFor(opened.loaded, "backup"))!,
      flush: true,
    });
    assert.deepEqual(r.gaps, []);
    assert.equal(r.lastGtid, await writerGtid());
  });

  it("records a gap no node can close; the command fails, verify and restore report it", LONG, async () => {
    await write(10);
    await purge(1);
    await purge(2);
    await write(10);
    await assert.rejects(
      binlogArchive({ config: cluster.configPath, json: false, verbose: false }, {}, new MemoryOutput()),
      (e: unknown) => {
        assert.equal((e as StrongboxError).code, "BINLOG_GAP");
        return true;
      },
    );
    const key = (await signingKeyOf(opened.loaded)).publicKey;
    const { entries } = await readIndex(opened.repo, key);
    assert.equal(entries.filter((e) => e.kind === "gap").length, 1);
    const v = await verifyBinlogArchive(opened.repo, key);
    assert.equal(v.gaps.length, 1);
    assert.equal(v.gaps[0]!.recorded, true);
    await assert.rejects(
      restoreToPoint({
        repo: opened.repo,
        identities: await identitiesOf(opened.loaded),
        trustedPublicKey: key,
        targetDir: join(work, "never"),
        fromGtid: backup.gtid!,
        toGtid: await writerGtid(),
      }),
      /no archived binlog holds transaction/,
    );
  });

  it("verify reports a damaged archived file and a tampered index entry", LONG, async () => {
    const key = (await signingKeyOf(opened.loaded)).publicKey;
    const { entries } = await readIndex(opened.repo, key);
    const files = entries.filter((e) => e.kind === "file");
    assert.ok(files.length >= 2);
    const repoDir = join(cluster.dir, "repository");
    const objPath = join(repoDir, files[0]!.key!);
    const bytes = readFileSync(objPath);
    bytes[bytes.length - 1] = bytes[bytes.length - 1]! ^ 1;
    writeFileSync(objPath, bytes);
    const idxPath = join(repoDir, "binlogs/index", `${String(files[1]!.seq).padStart(10, "0")}.json`);
    const e = JSON.parse(readFileSync(idxPath, "utf8"));
    e.gtidLast = "1-1-999999";
    writeFileSync(idxPath, JSON.stringify(e));
    const v = await verifyBinlogArchive(opened.repo, key);
    assert.equal(v.ok, false);
    assert.ok(
      v.problems.some((p) => /signature/.test(p)),
      v.problems.join("\n"),
    );
    await assert.rejects(
      restoreToPoint({
        repo: opened.repo,
        identities: await identitiesOf(opened.loaded),
        trustedPublicKey: key,
        targetDir: join(work, "never"),
        fromGtid: backup.gtid!,
        toGtid: "1-1-5",
      }),
      /BINLOG_INDEX_TAMPERED|signature/,
    );
  });
});
