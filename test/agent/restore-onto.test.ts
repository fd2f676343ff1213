// Restores and restore-tests on a node, through its agent: a real sshd with the agent as its
// forced command (below a --restore-root), a real one-node Galera cluster, the backup host's CLI.
// This host checks and decrypts the parts; the node unpacks, prepares and writes grastate.dat,
// or starts the scratch server and checks it. Faults: a target outside the restore root or
// leading out of it by a link, an agent without a restore root, a non-empty target, a corrupted
// part, the backup host killed mid-restore — one line each, and nothing half-restored left.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { BIN, cli, editConfig, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { type SshServer, sshFieldsOf, startSshd } from "../helpers/sshd.ts";

describe("restores on a node through its agent", () => {
  const cluster = useCluster({ nodes: 1 });
  const node = process.execPath;
  let sshd: SshServer;
  let rootless: SshServer;
  let root: string;
  let marks: string;
  let config: string;
  let chain: { full: string; inc: string };

  function agentCommand(extra: string): string {
    return `echo $$ >> ${marks}; STRONGBOX_NODE=${node} exec ${BIN} agent ${extra}`;
  }
  /** restore ID --onto node1 --target-dir TARGET, as the backup host's operator runs it. */
  const onto = (cfg: string, id: string, target: string, ...more: string[]) =>
    cli(["--config", cfg, ...more, "restore", id, "--onto", "node1", "--target-dir", target]);
  const sessions = () => (existsSync(marks) ? readFileSync(marks, "utf8").split("\n").filter(Boolean) : []);

  function withAgent(name: string, server: () => SshServer): string {
    return editConfig(cluster.configPath, join(cluster.dir, `${name}.yaml`), (c) => {
      for (const n of c.cluster.nodes) n.agent = sshFieldsOf(server());
    });
  }

  before(
    async () => {
      root = mkdtempSync(join(tmpdir(), "strongbox-restore-root-"));
      marks = join(cluster.dir, "agent-sessions");
      sshd = await startSshd({ forcedCommand: agentCommand(`--restore-root ${root}`) });
      await sshd.start();
      rootless = await startSshd({ forcedCommand: agentCommand("") });
      await rootless.start();
      config = withAgent("agents", () => sshd);
      const init = await cli(["--config", config, "init"]);
      assert.equal(init.code, 0, init.stderr);
      const conn = await cluster.connect(1);
      try {
        await loadDataset(conn, { sizeBytes: 10e6, seed: "onto" });
      } finally {
        await conn.end();
      }
      const full = await cli(["--config", config, "--json", "backup", "--full"]);
      assert.equal(full.code, 0, full.stderr);
      const c2 = await cluster.connect(1);
      try {
        await c2.query("CREATE DATABASE IF NOT EXISTS extra");
        await c2.query("CREATE TABLE extra.after_full (id INT PRIMARY KEY)");
        await c2.query("INSERT INTO extra.after_full VALUES (1), (2), (3)");
      } finally {
        await c2.end();
      }
      const inc = await cli(["--config", config, "--json", "backup", "--incremental"]);
      assert.equal(inc.code, 0, inc.stderr);
      chain = { full: JSON.parse(full.stdout).id, inc: JSON.parse(inc.stdout).id };
    },
    { timeout: 300_000 },
  );

  after(async () => {
    await Promise.all([sshd?.destroy(), rootless?.destroy()]);
    if (root) rmSync(root, { recursive: true, force: true });
  });

  it("restore --onto unpacks and prepares the whole chain on the node and writes grastate.dat", async () => {
    const target = join(root, "restored");
    const before = sessions().length;
    const r = await onto(config, chain.inc, target, "--json");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.deepEqual(out.backups, [chain.full, chain.inc]);
    assert.equal(sessions().length, before + 1, "one agent session did the restore");
    const checkpoints = readFileSync(join(target, "xtrabackup_checkpoints"), "utf8");
    assert.match(checkpoints, /backup_type = log-applied/, "prepared on the node");
    const list = JSON.parse((await cli(["--config", config, "--json", "show", chain.inc])).stdout);
    const grastate = readFileSync(join(target, "grastate.dat"), "utf8");
    assert.match(grastate, new RegExp(`uuid:\\s+${list.cluster.uuid}`));
    assert.match(grastate, new RegExp(`seqno:\\s+${list.cluster.seqno}`));
    assert.ok(existsSync(join(target, "extra", "after_full.frm")), "the incremental's table is there");
    assert.equal(existsSync(`${target}.strongbox-incremental`), false, "no incremental delta left beside it");
  });

  it("restore-test --on runs the scratch server on the node and passes", async () => {
    const before = sessions().length;
    const r = await cli(["--config", config, "--json", "restore-test", chain.inc, "--on", "node1"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.passed, true);
    assert.ok(out.tablesChecked > 0);
    assert.ok(out.rtoSeconds > 0);
    assert.equal(sessions().length, before + 1);
    assert.deepEqual(
      readdirSync(root).filter((f) => f.startsWith("restore-test-")),
      [],
      "the scratch directory is removed on the node",
    );
    const h = await cli(["--config", config, "--json", "status"]);
    assert.match(h.stdout, /restore-test/);
  });

  it("targets outside the restore root, or led out of it by a link, are refused; nothing is written", async () => {
    const outside = mkdtempSync(join(tmpdir(), "strongbox-outside-"));
    try {
      const a = await onto(config, chain.full, join(outside, "x"));
      assert.equal(a.code, 2, a.stderr);
      assert.match(
        a.stderr,
        /^strongbox: error: node1: the target .*\/x is not below the agent's restore root/m,
      );
      symlinkSync(outside, join(root, "link"));
      const b = await onto(config, chain.full, join(root, "link", "y"));
      assert.equal(b.code, 2, b.stderr);
      assert.match(b.stderr, /^strongbox: error: node1: the target .* leads outside the restore root/m);
      assert.deepEqual(readdirSync(outside), [], "nothing created outside the root");
      const c = await onto(config, chain.full, root);
      assert.equal(c.code, 2, c.stderr);
      assert.match(c.stderr, /is not below the agent's restore root/);
    } finally {
      rmSync(join(root, "link"), { force: true });
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("an agent started without --restore-root accepts no restore and no restore-test", async () => {
    const cfg = withAgent("rootless", () => rootless);
    const r = await onto(cfg, chain.full, join(root, "z"));
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: node1: this agent accepts no restores: it was started without --restore-root/m,
    );
    assert.match(r.stderr, /--restore-root DIR/);
    const t = await cli(["--config", cfg, "restore-test", chain.full, "--on", "node1"]);
    assert.equal(t.code, 2, t.stderr);
    assert.match(t.stderr, /accepts no restore-tests/);
    assert.equal(existsSync(join(root, "z")), false);
  });

  it("a node without an agent, or not configured, is a usage error", async () => {
    const r = await onto(cluster.configPath, chain.full, join(root, "q"));
    assert.equal(r.code, 64, r.stderr);
    assert.match(r.stderr, /--onto node1: the node has no agent/);
    const s = await cli(["--config", config, "restore-test", "--on", "node9"]);
    assert.equal(s.code, 64, s.stderr);
    assert.match(s.stderr, /--on node9: no such node in the configuration \(nodes: node1\)/);
  });

  it("a non-empty target is refused unless --force, and its files are kept", async () => {
    const target = join(root, "busy");
    mkdirSync(target);
    writeFileSync(join(target, "keep.txt"), "mine");
    const r = await onto(config, chain.full, target);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^strongbox: error: node1: target directory .*busy is not empty/m);
    assert.deepEqual(readdirSync(target), ["keep.txt"]);
  });

  it("a corrupted part fails on this host, naming the part; the node's target is left empty", async () => {
    const copy = join(cluster.dir, "corrupt-repo");
    const cfg = editConfig(config, join(cluster.dir, "corrupt.yaml"), (c) => {
      c.repositories[0].storage.path = copy;
    });
    // A copy of the repository with one byte of the full backup's last part flipped.
    assert.equal(spawnSync("cp", ["-a", join(cluster.dir, "repository"), copy]).status, 0);
    const dir = join(copy, "backups", chain.full);
    const part = readdirSync(dir)
      .filter((f) => f.startsWith("part-"))
      .sort()
      .at(-1)!;
    const bytes = readFileSync(join(dir, part));
    bytes[bytes.length - 100]! ^= 0xff;
    writeFileSync(join(dir, part), bytes);
    const target = join(root, "corrupt");
    const r = await onto(cfg, chain.full, target);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      new RegExp(
        `^strongbox: error: backup ${chain.full} part \\d+ \\(.*\\) (fails its SHA-256 check|is corrupted)`,
        "m",
      ),
    );
    assert.deepEqual(existsSync(target) ? readdirSync(target) : [], [], "nothing half-restored on the node");
  });

  it("the backup host killed mid-restore: the agent stops and empties the target", async () => {
    const target = join(root, "killed");
    const run = startCli([
      "--config",
      config,
      "restore",
      chain.inc,
      "--onto",
      "node1",
      "--target-dir",
      target,
    ]);
    const deadline = Date.now() + 60_000;
    while (!(existsSync(target) && readdirSync(target).length > 0) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    assert.ok(readdirSync(target).length > 0, "the restore had started writing on the node");
    run.child.kill("SIGKILL");
    await run.result;
    let left: string[] = ["?"];
    while (Date.now() < deadline) {
      left = readdirSync(target);
      if (left.length === 0 && !existsSync(`${target}.strongbox-incremental`)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    assert.deepEqual(left, [], "the agent emptied the half-restored target");
  });
});
