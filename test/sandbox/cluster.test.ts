import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { promisify } from "node:util";
import type { StrongboxError } from "../../src/errors.ts";
import { showGlobal } from "../../src/galera/connection.ts";
import {
  checkPackages,
  findFreeBasePort,
  readState,
  sandboxDown,
  sandboxNodes,
  sandboxStatus,
  sandboxUp,
  startNode,
  stopNode,
} from "../../src/sandbox/cluster.ts";
import { stateTransferFailed, withoutLogPrefix } from "../../src/sandbox/processes.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { useCluster } from "../helpers/cluster.ts";

const exec = promisify(execFile);
const BIN = new URL("../../bin/strongbox", import.meta.url).pathname;

describe("sandbox cluster", () => {
  const cluster = useCluster({ nodes: 3 });

  it("starts three nodes, all Synced in one Primary component", async () => {
    const { nodes } = await sandboxStatus(cluster.dir);
    assert.equal(nodes.length, 3);
    for (const n of nodes) {
      assert.equal(n.state, "Synced", `${n.name}: ${JSON.stringify(n)}`);
      assert.equal(n.clusterStatus, "Primary");
      assert.equal(n.clusterSize, 3);
      assert.ok(n.pid && pidAlive(n.pid));
    }
  });

  it("replicates writes and keeps binlogs with Galera GTIDs for PITR", async () => {
    const c1 = await cluster.connect(1);
    const c3 = await cluster.connect(3);
    try {
      await c1.query(
        "CREATE DATABASE t_repl; CREATE TABLE t_repl.t (id INT PRIMARY KEY, v INT); INSERT INTO t_repl.t VALUES (1, 42)",
      );
      // Galera applies asynchronously on other nodes; a causal read waits for this node to catch up.
      await c3.query("SET SESSION wsrep_sync_wait = 1");
      const [rows] = await c3.query("SELECT v FROM t_repl.t WHERE id = 1");
      assert.deepEqual(rows, [{ v: 42 }]);
      const vars = await showGlobal(c3, "VARIABLES", "%");
      assert.equal(vars.get("log_bin"), "ON");
      assert.equal(vars.get("log_slave_updates"), "ON");
      assert.equal(vars.get("wsrep_gtid_mode"), "ON");
      assert.equal(vars.get("wsrep_sst_method"), "mariabackup");
      const [gtid] = await c3.query("SELECT @@gtid_binlog_pos AS pos");
      assert.match(
        (gtid as { pos: string }[])[0]!.pos,
        /^1-1-\d+$/,
        "one GTID domain (wsrep_gtid_domain_id=1)",
      );
    } finally {
      await c1.end();
      await c3.end();
    }
  });

  it("keeps secrets and configs private (0600 files, 0700 dirs)", () => {
    for (const f of [
      "secrets/admin.password",
      "secrets/backup.password",
      "node1/my.cnf",
      "strongbox.yaml",
      "keys/identity.txt",
    ]) {
      assert.equal(statSync(join(cluster.dir, f)).mode & 0o777, 0o600, f);
    }
    for (const d of ["secrets", "node1", "keys"])
      assert.equal(statSync(join(cluster.dir, d)).mode & 0o777, 0o700, d);
  });

  it("a stopped node rejoins by IST and the cluster is whole again", async () => {
    await stopNode(cluster.dir, 2);
    let st = await sandboxStatus(cluster.dir);
    assert.equal(st.nodes[1]!.state, "down");
    assert.equal(st.nodes[0]!.clusterSize, 2);
    const c1 = await cluster.connect(1);
    await c1.query("INSERT INTO t_repl.t VALUES (2, 43)");
    await c1.end();
    await startNode(cluster.dir, 2);
    st = await sandboxStatus(cluster.dir);
    assert.ok(st.nodes.every((n) => n.state === "Synced" && n.clusterSize === 3));
    const log = readFileSync(join(cluster.dir, "node2", "error.log"), "utf8");
    assert.match(log, /IST received/);
    const c2 = await cluster.connect(2);
    await c2.query("SET SESSION wsrep_sync_wait = 1");
    const [rows] = await c2.query("SELECT v FROM t_repl.t WHERE id = 2");
    await c2.end();
    assert.deepEqual(rows, [{ v: 43 }]);
  });

  it("sandbox status --json through the CLI, found via --config", async () => {
    const { stdout } = await exec(BIN, ["--config", cluster.configPath, "sandbox", "status", "--json"]);
    const out = JSON.parse(stdout) as { healthy: boolean; nodes: { state: string; port: number }[] };
    assert.equal(out.healthy, true);
    assert.deepEqual(
      out.nodes.map((n) => n.port),
      cluster.nodes.map((n) => n.port),
    );
  });

  it("sandbox status finds the sandbox of $STRONGBOX_CONFIG, as the README's tour runs it", async () => {
    const elsewhere = await mkdtemp(join(tmpdir(), "sb-cwd-"));
    try {
      const { stdout } = await exec(BIN, ["sandbox", "status", "--json"], {
        cwd: elsewhere,
        env: { ...process.env, STRONGBOX_CONFIG: cluster.configPath, STRONGBOX_SANDBOX_DIR: "" },
      });
      const out = JSON.parse(stdout) as { dir: string; healthy: boolean };
      assert.equal(out.dir, cluster.dir);
      assert.equal(out.healthy, true);
    } finally {
      await rm(elsewhere, { recursive: true, force: true });
    }
  });

  it("a configuration that is not a sandbox's is named, and sandbox up never overwrites it", async () => {
    const other = await mkdtemp(join(tmpdir(), "sb-notsandbox-"));
    try {
      const config = join(other, "strongbox.yaml");
      writeFileSync(config, "version: 1\n", { mode: 0o600 });
      const status = await exec(BIN, ["sandbox", "status"], {
        env: { ...process.env, STRONGBOX_CONFIG: config, STRONGBOX_SANDBOX_DIR: "" },
      }).catch((e: { code: number; stderr: string }) => e);
      assert.equal((status as { code: number }).code, 2);
      assert.match(
        (status as { stderr: string }).stderr,
        /^strongbox: error: the configuration in use \(\$STRONGBOX_CONFIG .*strongbox\.yaml\) is not a sandbox's: no sandbox in .* \(pass --dir DIR/,
      );
      await assert.rejects(sandboxUp({ dir: other }), (e: StrongboxError) => e.code === "SANDBOX_DIR_IN_USE");
      assert.equal(readFileSync(config, "utf8"), "version: 1\n");
    } finally {
      await rm(other, { recursive: true, force: true });
    }
  });

  it("refuses a second sandbox in the same directory", async () => {
    await assert.rejects(
      sandboxUp({ dir: cluster.dir }),
      (e: StrongboxError) => e.code === "SANDBOX_RUNNING",
    );
  });

  it("down stops every process it started", async () => {
    const state = await readState(cluster.dir);
    const pids = (await sandboxStatus(cluster.dir)).nodes.map((n) => n.pid!);
    assert.equal(pids.length, 3);
    assert.equal(await sandboxDown(cluster.dir), 3);
    for (const pid of pids) assert.equal(pidAlive(pid), false, `pid ${pid} still alive`);
    const { stdout } = await exec("pgrep", ["-f", state.dir]).catch(() => ({ stdout: "" }));
    assert.equal(stdout.trim(), "", "no process mentions the sandbox directory");
    assert.equal(sandboxNodes(state).length, 3);
  });
});

describe("sandbox errors", () => {
  it("error log lines lose their time and thread id, also before 10:00 (space-padded hour)", () => {
    assert.equal(withoutLogPrefix("2026-11-27 14:35:05 0 [ERROR] WSREP: x"), "[ERROR] WSREP: x");
    assert.equal(withoutLogPrefix("2026-11-27  0:35:05 12 [ERROR] WSREP: x"), "[ERROR] WSREP: x");
    assert.equal(withoutLogPrefix("[ERROR] no prefix"), "[ERROR] no prefix");
  });

  it("a joiner that failed its state transfer is told apart from other start failures", () => {
    // The error-log tail of a real failure on the CI machine (a joiner restarted under load).
    const sst =
      "[ERROR] WSREP: not JOINING when sst_received() called, state: CONNECTED | [ERROR] WSREP: provider.sst_received() failed: Not connected to Primary Component | [ERROR] WSREP: ./gcs/src/gcs_group.cpp:gcs_group_handle_join_msg():1225: Will never receive state. Need to abort.";
    assert.equal(stateTransferFailed(sst), true);
    assert.equal(stateTransferFailed("[ERROR] WSREP: SST failed: 1 (Operation not permitted)"), true);
    assert.equal(
      stateTransferFailed("[ERROR] Do you already have another server running on port: 34101 ?"),
      false,
    );
    assert.equal(
      stateTransferFailed("[ERROR] mariadbd: unknown variable 'wsrep_bogus=1' | [ERROR] Aborting"),
      false,
    );
  });

  it("names missing packages and the apt command", () => {
    assert.throws(
      () => checkPackages([{ path: "/nonexistent/galera.so", pkg: "galera-4" }]),
      (e: StrongboxError) =>
        e.oneLine().includes("missing Debian packages: galera-4") &&
        e.oneLine().includes("apt-get install -y galera-4"),
    );
  });

  it("says which port is taken and suggests a free base port", async () => {
    const base = await findFreeBasePort(1, 45000);
    const srv: Server = createServer();
    await new Promise<void>((r) => srv.listen(base + 1, "127.0.0.1", r));
    const dir = await mkdtemp(join(tmpdir(), "sb-port-"));
    try {
      await assert.rejects(
        sandboxUp({ dir, nodes: 1, basePort: base }),
        (e: StrongboxError) =>
          e.code === "SANDBOX_PORT_TAKEN" &&
          e.oneLine().includes(`${base + 1} (node1 gmcast)`) &&
          /--base-port \d+/.test(e.oneLine()),
      );
    } finally {
      srv.close();
      await rm(dir, { recursive: true, force: true });
    }
  });

  it("a node that fails to join reports the tail of its error log", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sb-fail-"));
    try {
      await assert.rejects(
        // node2 asks for an SST method that does not exist: the state transfer fails and node2 aborts.
        sandboxUp({
          dir,
          nodes: 2,
          basePort: await findFreeBasePort(2, 46000),
          timeoutMs: 120_000,
          extraCnf: (n) => (n.index === 2 ? ["wsrep_sst_method=bogus"] : []),
        }),
        (e: StrongboxError) =>
          e.code === "SANDBOX_NODE_FAILED" &&
          e.message.startsWith("node2 exited while starting: [ERROR] WSREP") &&
          !e.oneLine().includes("\n") &&
          e.oneLine().includes("error.log"),
      );
    } finally {
      await sandboxDown(dir).catch(() => {});
      await rm(dir, { recursive: true, force: true });
    }
  });
});
