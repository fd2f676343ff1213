// Backups against a real 3-node Galera cluster, through the real CLI, with real age/zstd/mbstream.
import assert from "node:assert/strict";
import { execFileSync, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { rm } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { takeInventory } from "../../src/backup/inventory.ts";
import { showGlobal, withConnection } from "../../src/galera/connection.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { preflightBackupGrants } from "../../src/security/grants.ts";
import { BIN, cli, editConfig, FIXTURES, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { lockHeld } from "../helpers/repo.ts";

interface ListOut {
  backups: { id: string; type: string; parent: string | null; donor: string }[];
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    out.push(p);
    if (e.isDirectory()) out.push(...walk(p));
  }
  return out;
}

describe("backup", () => {
  const cluster = useCluster({ nodes: 3 });
  const cfg = () => cluster.configPath;
  const repoDir = () => join(cluster.dir, "repository");
  const list = async (config = cfg()) => {
    const r = await cli(["--config", config, "list", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as ListOut).backups;
  };
  const desyncStates = async () => {
    const out: string[] = [];
    for (let k = 1; k <= 3; k++) {
      const c = await cluster.connect(k);
      out.push((await showGlobal(c, "VARIABLES", "wsrep_desync")).get("wsrep_desync") ?? "?");
      await c.end();
    }
    return out;
  };
  let fullId = "";

  it("loads data and initialises the repository", async () => {
    const conn = await cluster.connect(1);
    await loadDataset(conn, { sizeBytes: 24_000_000, seed: 7 });
    await conn.end();
    // Let the donor's checkpoint catch up with the load: pages modified after the full backup's
    // checkpoint LSN belong to the next incremental, which would then not be small.
    const c3 = await cluster.connect(3);
    await c3.query("SET GLOBAL innodb_max_dirty_pages_pct = 0");
    const deadline = Date.now() + 60_000;
    for (;;) {
      const s = await showGlobal(c3, "STATUS", "innodb_checkpoint_age");
      if (Number(s.get("innodb_checkpoint_age")) < 200_000 || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 250));
    }
    await c3.end();
    const r = await cli(["--config", cfg(), "init"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /repository local: initialised/);
    assert.equal(statSync(join(cluster.dir, "keys/signing.key")).mode & 0o777, 0o600);
    const again = await cli(["--config", cfg(), "init"]);
    assert.equal(again.code, 0, again.stderr);
    assert.match(again.stdout, /already initialised/);
  });

  it("takes a full backup from the configured backup node, desyncs it and turns desync off", async () => {
    const t0 = performance.now();
    const r = await cli(["--config", cfg(), "backup", "--full", "--json"]);
    const elapsed = (performance.now() - t0) / 1000;
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout);
    fullId = m.id;
    assert.equal(m.type, "full");
    assert.equal(m.donor, "node3", "sandbox config prefers node3 as backup node");
    assert.ok(m.durations.desync >= 0, "desync stage recorded");
    // The fixed cost before streaming: from the process's start (Node, modules, config, lock,
    // probes, grants, desync) to mariabackup's start, within the command's own run.
    assert.ok(m.durations.startup > m.durations.desync, JSON.stringify(m.durations));
    assert.ok(
      m.durations.startup < elapsed - m.durations.stream,
      `${JSON.stringify(m.durations)} in ${elapsed} s`,
    );
    assert.ok(m.lsn.to > 0);
    assert.match(m.gtid, /^1-1-\d+$/);
    assert.match(m.cluster.uuid, /^[0-9a-f-]{36}$/);
    assert.ok(m.cluster.seqno > 0);
    assert.ok(m.bytes.raw > 20_000_000 && m.bytes.stored < m.bytes.raw, JSON.stringify(m.bytes));
    assert.ok(m.parts.length >= 1);
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "OFF"]);
    assert.deepEqual(
      (await list()).map((b) => b.id),
      [fullId],
    );
  });

  it("keeps every repository file 0600 and directory 0700", () => {
    for (const p of walk(repoDir())) {
      const st = statSync(p);
      assert.equal(st.mode & 0o777, st.isDirectory() ? 0o700 : 0o600, p);
    }
  });

  it("break-glass: the parts decrypt with the age CLI and unpack with zstd -d | mbstream -x", async () => {
    const out = join(cluster.dir, "breakglass");
    mkdirSync(out);
    const dir = join(repoDir(), "backups", fullId);
    const identity = join(cluster.dir, "keys/identity.txt");
    const script = `for p in ${dir}/part-*.age; do age -d -i ${identity} "$p"; done | zstd -d | mbstream -x -C ${out}`;
    execFileSync("bash", ["-o", "pipefail", "-c", script]);
    for (const f of ["ibdata1", "xtrabackup_checkpoints", "xtrabackup_galera_info", "shop"]) {
      assert.ok(existsSync(join(out, f)), `${f} extracted`);
    }
    const galera = readFileSync(join(out, "xtrabackup_galera_info"), "utf8");
    const m = JSON.parse(readFileSync(join(dir, "manifest.json"), "utf8"));
    assert.ok(galera.startsWith(`${m.cluster.uuid}:${m.cluster.seqno}`), `${galera} vs manifest`);
    await rm(out, { recursive: true });
  });

  it("show: public manifest without the identity, inventory with it; signature checked", async () => {
    const noId = editConfig(cfg(), join(cluster.dir, "noid.yaml"), (c) => delete c.keys.identity);
    const r1 = await cli(["--config", noId, "show", fullId, "--json"]);
    assert.equal(r1.code, 0, r1.stderr);
    assert.equal(JSON.parse(r1.stdout).details, null);
    const r2 = await cli(["--config", cfg(), "show", fullId, "--json"]);
    assert.equal(r2.code, 0, r2.stderr);
    const d = JSON.parse(r2.stdout).details;
    assert.equal(d.donorHost, "127.0.0.1");
    assert.ok(d.inventory.schemas.includes("shop"));
    assert.ok(d.inventory.tables.some((t: { rows: number }) => t.rows > 1000));
    // Every table here is below backup.exactCountMaxRows (1,000,000): all counted exactly.
    assert.ok(d.inventory.tables.every((t: { estimated?: boolean }) => t.estimated === undefined));
    assert.ok(d.inventory.routines >= 1 && d.inventory.triggers >= 1);
    // The host names are not in the plain manifest.
    const raw = readFileSync(join(repoDir(), "backups", fullId, "manifest.json"), "utf8");
    assert.ok(!raw.includes("127.0.0.1") && !raw.includes('"shop"'), "sensitive details are encrypted");
  });

  it("inventory: tables estimated above exactCountMaxRows keep InnoDB's estimate, the rest are counted", async () => {
    const c = await cluster.connect(1);
    try {
      const exact = await takeInventory(c);
      const bounded = await takeInventory(c, { exactCountMaxRows: 1000 });
      const [estimates] = (await c.query(
        "SELECT table_schema AS s, table_name AS t, table_rows AS r FROM information_schema.tables WHERE table_type = 'BASE TABLE'",
      )) as unknown as [{ s: string; t: string; r: string | null }[]];
      const estimateOf = new Map(estimates.map((e) => [`${e.s}.${e.t}`, e.r === null ? null : Number(e.r)]));
      let big = 0;
      for (const [i, t] of bounded.tables.entries()) {
        const name = `${t.schema}.${t.table}`;
        const estimate = estimateOf.get(name);
        if (t.type === "BASE TABLE" && estimate !== null && estimate !== undefined && estimate > 1000) {
          big++;
          assert.equal(t.estimated, true, name);
          assert.equal(t.rows, estimate, `${name}: the estimate, not a count`);
        } else {
          assert.equal(t.estimated, undefined, name);
          assert.equal(t.rows, exact.tables[i]!.rows, `${name}: counted exactly`);
        }
      }
      assert.ok(big > 0 && big < bounded.tables.length, `some tables above the limit (${big})`);
    } finally {
      await c.end();
    }
  });

  it("grants check: a probe connection lost since is replaced; other errors are not retried", async () => {
    const killer = await cluster.connect(1);
    try {
      const probe = await cluster.connect(1);
      await killer.query(`KILL CONNECTION ${probe.threadId}`);
      let connects = 0;
      const account = await withConnection(
        probe,
        () => {
          connects++;
          return cluster.connect(1);
        },
        (conn) => preflightBackupGrants(conn, ["physical"]),
      );
      assert.match(account, /@/);
      assert.equal(connects, 1, "one new connection for the lost one");
      // A live connection whose work fails for its own reasons: that error, no reconnect.
      await assert.rejects(
        withConnection(
          await cluster.connect(1),
          () => {
            connects++;
            return cluster.connect(1);
          },
          (conn) => conn.query("SELECT * FROM no_such_schema.t"),
        ),
        /no_such_schema/,
      );
      assert.equal(connects, 1);
    } finally {
      await killer.end();
    }
  });

  it("an incremental after writes stores a fraction of the full, on the chain's node", async () => {
    const c = await cluster.connect(1);
    await c.query(
      "CREATE TABLE IF NOT EXISTS logs.inc_probe (id INT PRIMARY KEY, v VARCHAR(20)); INSERT INTO logs.inc_probe VALUES (1,'x')",
    );
    await c.end();
    const r = await cli(["--config", cfg(), "backup", "--incremental", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout);
    const full = JSON.parse(readFileSync(join(repoDir(), "backups", fullId, "manifest.json"), "utf8"));
    assert.equal(m.type, "incremental");
    assert.equal(m.parent, fullId);
    assert.equal(m.chainRoot, fullId);
    assert.equal(m.donor, full.donor);
    assert.equal(m.lsn.from, full.lsn.to);
    assert.ok(m.bytes.stored < full.bytes.stored / 3, `${m.bytes.stored} vs ${full.bytes.stored}`);
    // Policy without flags: the last full is recent, so an incremental.
    const p = await cli(["--config", cfg(), "backup", "--json"]);
    assert.equal(p.code, 0, p.stderr);
    assert.equal(JSON.parse(p.stdout).type, "incremental");
  });

  it("a logical backup goes through the same pipeline and decrypts to SQL with routines and GTID", async () => {
    const r = await cli(["--config", cfg(), "backup", "--logical", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout);
    assert.equal(m.type, "logical");
    const dir = join(repoDir(), "backups", m.id);
    const identity = join(cluster.dir, "keys/identity.txt");
    const sql = execFileSync(
      "bash",
      ["-o", "pipefail", "-c", `for p in ${dir}/part-*.age; do age -d -i ${identity} "$p"; done | zstd -d`],
      {
        maxBuffer: 1 << 30,
      },
    ).toString();
    assert.match(sql, /CREATE TABLE `orders`|CREATE TABLE/);
    assert.match(sql, /CREATE DEFINER=.*(PROCEDURE|FUNCTION)/);
    assert.match(sql, /gtid_slave_pos/);
    assert.match(sql, /-- Dump completed/);
  });

  it("mariabackup failing half way: clear error with its stderr, nothing listed, desync off", async () => {
    const before = await list();
    const bad = editConfig(cfg(), join(cluster.dir, "failing.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-fails-halfway.sh");
      c.cluster.retryOnNextNode = false;
    });
    const r = await cli(["--config", bad, "backup", "--full"]);
    assert.equal(r.code, 2, r.stderr);
    const lines = r.stderr.trim().split("\n");
    assert.match(
      lines[lines.length - 1]!,
      /^strongbox: error: mariabackup exited with code 1: .*failed to read page 4242/,
    );
    assert.deepEqual(await list(), before);
    const { orphans } = scanRepo(repoDir());
    assert.deepEqual(orphans, [], "the failed run's parts were removed");
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "OFF"]);
  });

  it("kill -9 mid-backup: nothing listed; the next backup cleans up, repairs desync and succeeds", async () => {
    const before = await list();
    const slow = editConfig(cfg(), join(cluster.dir, "slow.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
      c.backup.partSize = "1MiB";
    });
    const run = startCli(["--config", slow, "backup", "--full"], { THROTTLE_BPS: "2000000" });
    // Wait until parts are being written, then kill it without any chance to clean up.
    const deadline = Date.now() + 60_000;
    while (scanRepo(repoDir()).orphans.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    assert.ok(scanRepo(repoDir()).orphans.length > 0, "a backup was in progress");
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "ON"], "node3 desynced during the backup");
    run.child.kill("SIGKILL");
    await run.result;
    assert.deepEqual(await list(), before, "no backup listed after kill -9");
    const r = await cli(["--config", cfg(), "backup", "--full"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /turned wsrep_desync off on node3/);
    assert.match(
      r.stderr,
      /removed \d+ (object\(s\) of unfinished backup|temporary file\(s\) of unfinished writes)/,
    );
    assert.deepEqual(scanRepo(repoDir()).orphans, []);
    assert.equal((await list()).length, before.length + 1);
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "OFF"]);
  });

  it("SIGTERM mid-backup: aborted cleanly, nothing committed, desync turned off, recorded as aborted", async () => {
    const before = await list();
    const slow = editConfig(cfg(), join(cluster.dir, "slow-term.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
      c.backup.partSize = "1MiB";
    });
    const run = startCli(["--config", slow, "backup", "--full"], { THROTTLE_BPS: "2000000" });
    const deadline = Date.now() + 60_000;
    while (scanRepo(repoDir()).orphans.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "ON"]);
    run.child.kill("SIGTERM");
    const r = await run.result;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /^strongbox: error: backup aborted by SIGTERM; nothing was committed$/m);
    assert.deepEqual(await list(), before);
    assert.deepEqual(scanRepo(repoDir()).orphans, [], "parts of the aborted run removed");
    assert.deepEqual(await desyncStates(), ["OFF", "OFF", "OFF"]);
    const catalog = openCatalog(join(cluster.dir, "state", "catalog.db"));
    try {
      const last = catalog.lastRun("backup", "local");
      assert.equal(last?.result, "aborted");
      assert.match(last?.error ?? "", /aborted by SIGTERM/);
    } finally {
      catalog.close();
    }
    // The fixture's own pipeline children see EPIPE and exit within moments.
    let left = "";
    for (let i = 0; i < 50; i++) {
      left = spawnSync("pgrep", ["-f", "mariabackup-slow"], { encoding: "utf8" }).stdout.trim();
      if (!left) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    assert.equal(left, "", "no backup process left running");
  });

  it("two backups at once: the second is refused, naming the holder of the lock", async () => {
    const slow = editConfig(cfg(), join(cluster.dir, "slow2.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
    });
    const first = startCli(["--config", slow, "backup", "--full"], { THROTTLE_BPS: "8000000" });
    const deadline = Date.now() + 30_000;
    while (!(await lockHeld(repoDir())) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 100));
    const second = await cli(["--config", cfg(), "backup", "--full"]);
    assert.equal(second.code, 2);
    assert.match(second.stderr, new RegExp(`strongbox: error: .*lock.*pid ${first.child.pid}`, "i"));
    const done = await first.result;
    assert.equal(done.code, 0, done.stderr);
  });

  it("the chosen node stopped mid-backup: clean failure, then retry on another Synced node", async () => {
    const slow = editConfig(cfg(), join(cluster.dir, "slow3.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
      c.backup.partSize = "1MiB";
    });
    const before = await list();
    const run = startCli(["--config", slow, "backup", "--full", "--json"], { THROTTLE_BPS: "6000000" });
    const deadline = Date.now() + 60_000;
    while (scanRepo(repoDir()).orphans.length === 0 && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    const { stopNode, startNode } = await import("../../src/sandbox/cluster.ts");
    await stopNode(cluster.dir, 3);
    const r = await run.result;
    try {
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout);
      assert.notEqual(m.donor, "node3");
      assert.match(r.stderr, /backup from node3 failed .*retrying on node2/s);
      assert.equal((await list()).length, before.length + 1);
      assert.deepEqual(scanRepo(repoDir()).orphans, []);
    } finally {
      await startNode(cluster.dir, 3);
    }
    const states = await desyncStates();
    assert.deepEqual(states, ["OFF", "OFF", "OFF"]);
  });

  it("no node Synced in a Primary component: refused with the state of every node", async () => {
    const dead = editConfig(cfg(), join(cluster.dir, "dead.yaml"), (c) => {
      for (const n of c.cluster.nodes) {
        delete n.socket;
        n.port = 1;
      }
    });
    const r = await cli(["--config", dead, "backup", "--full"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^strongbox: error: no node is Synced in a Primary component: node1: unreachable .*; node2: unreachable .*; node3: unreachable/m,
    );
  });

  it("a desynced (Donor/Desynced) node is not chosen when asked for explicitly", async () => {
    const c = await cluster.connect(2);
    await c.query("SET GLOBAL wsrep_desync = ON");
    try {
      const r = await cli(["--config", cfg(), "backup", "--full", "--node", "node2"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /requested node node2 is not usable: node2: Primary\/Donor\/Desynced/);
    } finally {
      await c.query("SET GLOBAL wsrep_desync = OFF");
      await c.end();
    }
  });

  it("disk full: a clean failure, nothing committed, no temp files left", async () => {
    const mnt = join(cluster.dir, "tiny");
    mkdirSync(mnt, { mode: 0o700 });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs", mnt]);
    try {
      const tiny = editConfig(cfg(), join(cluster.dir, "tiny.yaml"), (c) => {
        c.repositories[0].storage.path = mnt;
      });
      assert.equal((await cli(["--config", tiny, "init"])).code, 0);
      const r = await cli(["--config", tiny, "backup", "--full"]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /^strongbox: error: .*(full|no space)/im);
      assert.equal(
        r.stderr
          .trim()
          .split("\n")
          .filter((l) => l.startsWith("strongbox: error")).length,
        1,
      );
      const left = walk(mnt).filter((p) => statSync(p).isFile());
      // What init wrote (the repository record and the first evidence entry) and the writer
      // lock's create-only records; nothing of the backup.
      const files = left.map((p) => p.slice(mnt.length)).filter((p) => !p.startsWith("/locks/writer/"));
      assert.deepEqual(files.sort(), ["/evidence/0000000001.json", "/strongbox-repository.json"]);
    } finally {
      execFileSync("umount", [mnt]);
    }
  });

  it("bad recipients, a missing signing key, an unreadable config: clear one-line errors", async () => {
    const badRecipient = editConfig(cfg(), join(cluster.dir, "badrcpt.yaml"), (c) => {
      c.keys.recipients = ["age1notarealkey"];
    });
    let r = await cli(["--config", badRecipient, "backup", "--full"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /^strongbox: error: .*age1notarealkey/m);
    const noKey = editConfig(cfg(), join(cluster.dir, "nokey.yaml"), (c) => {
      c.keys.signingKey = "keys/missing.key";
    });
    r = await cli(["--config", noKey, "backup", "--full"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^strongbox: error: signing key .*missing\.key is missing \(run `strongbox init`/m,
    );
    const open = join(cluster.dir, "open.yaml");
    writeFileSync(open, readFileSync(cfg()), { mode: 0o644 });
    r = await cli(["--config", open, "backup", "--full"]);
    assert.equal(r.code, 78, "the configuration's exit status");
    assert.match(
      r.stderr,
      /^strongbox: error: config file .*open\.yaml is accessible by group or others .*chmod 600/m,
    );
    const broken = join(cluster.dir, "broken.yaml");
    writeFileSync(broken, "version: 1\ncluster: {nodes: []}\nrepositories: []\n", { mode: 0o600 });
    r = await cli(["--config", broken, "backup"]);
    assert.equal(r.code, 78);
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.match(r.stderr, /cluster\.nodes: .*; .*repositories: .*; keys: /);
  });

  it("on a terminal, a long backup shows bytes, rate and an ETA", async () => {
    const slow = editConfig(cfg(), join(cluster.dir, "slow5.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
    });
    // script(1) gives the CLI a pseudo-terminal, as an operator's shell would.
    const cmd = `${BIN} --config ${slow} backup --full`;
    const r = await new Promise<{ code: number | null; out: string }>((resolve) => {
      const child = spawn("script", ["-qec", cmd, "/dev/null"], {
        env: { ...process.env, STRONGBOX_NODE: process.execPath, THROTTLE_BPS: "8000000" },
      });
      let out = "";
      child.stdout.on("data", (c: Buffer) => (out += c.toString()));
      child.on("close", (code) => resolve({ code, out }));
    });
    assert.equal(r.code, 0, r.out);
    assert.match(r.out, /\r {2}\d+(\.\d+)? MiB at \d+(\.\d+)? MiB\/s, ~\d+ s left/);
    assert.match(r.out, /backup \S+ committed: full/);
  });

  it("no password in any process's command line during a backup, nor in the output", async () => {
    const password = readFileSync(join(cluster.dir, "secrets/backup.password"), "utf8").trim();
    const admin = readFileSync(join(cluster.dir, "secrets/admin.password"), "utf8").trim();
    const slow = editConfig(cfg(), join(cluster.dir, "slow4.yaml"), (c) => {
      c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
    });
    const run = startCli(["--config", slow, "backup", "--full", "--verbose"], { THROTTLE_BPS: "8000000" });
    let scans = 0;
    let sawMariabackup = false;
    while (run.child.exitCode === null) {
      for (const pid of readdirSync("/proc").filter((p) => /^\d+$/.test(p))) {
        let cmdline = "";
        try {
          cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
        } catch {
          continue;
        }
        if (cmdline.includes("--stream=xbstream")) sawMariabackup = true;
        assert.ok(!cmdline.includes(password) && !cmdline.includes(admin), `password in argv of pid ${pid}`);
      }
      scans++;
      await new Promise((r) => setTimeout(r, 50));
    }
    const r = await run.result;
    assert.equal(r.code, 0, r.stderr);
    assert.ok(sawMariabackup && scans > 5, `scanned ${scans} times`);
    for (const text of [r.stdout, r.stderr]) assert.ok(!text.includes(password) && !text.includes(admin));
  });
});

function scanRepo(repo: string): { orphans: string[] } {
  const dir = join(repo, "backups");
  if (!existsSync(dir)) return { orphans: [] };
  const orphans = readdirSync(dir).filter(
    (id) => !existsSync(join(dir, id, "manifest.json")) && readdirSync(join(dir, id)).length > 0,
  );
  return { orphans };
}
