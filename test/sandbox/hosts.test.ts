// The multi-host sandbox (sandbox up --hosts) end to end: each node its own loopback address, OS
// account owning its 0700 data directory and sshd whose authorized_keys forces the agent; the
// backup host's commands run as an unprivileged account that can read none of the data
// directories. One real 3-node Galera cluster for the file, real sshds, the real CLI.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { isAbsolute, join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { StrongboxError } from "../../src/errors.ts";
import { queryRows } from "../../src/galera/connection.ts";
import {
  accountOf,
  assertReachableByOthers,
  createAccount,
  lookupAccount,
} from "../../src/sandbox/accounts.ts";
import { readState, startNode, stopNode } from "../../src/sandbox/cluster.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { readPid } from "../../src/sandbox/processes.ts";
import { createSandbox } from "../../src/sandbox/setup.ts";
import { sshdPid } from "../../src/sandbox/sshd.ts";
import { descendants, pidAlive } from "../../src/util/liveness.ts";
import { cli, FIXTURES } from "../helpers/cli.ts";
import { useHostsSandbox } from "../helpers/hosts.ts";

/** Every path a trace of `strace -f -y -e trace=open,openat` shows opened (or tried), made absolute. */
function openedPaths(trace: string, cwd: string): string[] {
  const paths: string[] = [];
  for (const line of trace.split("\n")) {
    const m = /\bopen(?:at)?\((?:(AT_FDCWD|\d+)(?:<([^>]*)>)?, )?"((?:[^"\\]|\\.)*)"/.exec(line);
    if (!m) continue;
    const path = m[3]!;
    paths.push(isAbsolute(path) ? path : join(m[2] ?? cwd, path));
  }
  return paths;
}

describe("multi-host sandbox", () => {
  const sb = useHostsSandbox({ nodes: 3 });
  const traces: { command: string; paths: string[] }[] = [];

  /** The CLI as the backup account under strace; the trace is kept for the last test. */
  async function traced(command: string, args: string[]) {
    const file = join(sb.backup.home, `trace-${traces.length}.txt`);
    const r = await sb.asBackup(["--config", sb.configPath, ...args], {}, [
      "strace",
      "-f",
      "-qq",
      "-y",
      "-e",
      "trace=open,openat",
      "-o",
      file,
    ]);
    traces.push({ command, paths: openedPaths(readFileSync(file, "utf8"), sb.backup.home) });
    return r;
  }

  async function backupIds(): Promise<string[]> {
    const r = await sb.asBackup(["--config", sb.configPath, "--json", "list"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id);
  }

  it("each node is a host: its address, its account owning a 0700 data directory, its sshd forcing the agent", async () => {
    const r = await cli(["--config", sb.configPath, "--json", "sandbox", "status"]);
    assert.equal(r.code, 0, r.stderr);
    const status = JSON.parse(r.stdout);
    assert.equal(status.mode, "hosts");
    assert.equal(status.backupHost.osUser, sb.backup.name);
    const config = parse(readFileSync(sb.configPath, "utf8"));
    for (const [i, n] of sb.nodes.entries()) {
      const s = status.nodes[i];
      assert.equal(s.address, `127.0.0.${11 + i}`);
      assert.equal(s.osUser, n.osUser);
      assert.match(s.osUser, /^sbx-[0-9a-f]{6}-node\d$/);
      assert.equal(s.state, "Synced");
      assert.equal(s.clusterSize, 3);
      assert.deepEqual(
        { user: s.agent.user, host: s.agent.host, listening: s.agent.listening },
        { user: n.osUser, host: n.address, listening: true },
      );
      assert.equal(s.agent.restoreRoot, n.restoreRoot);
      assert.match(s.agent.command, /' agent --restore-root '[^']+\/node\d\/restore'$/);
      // The generated config pins that sshd's host key and reaches the node over its own address.
      const c = config.cluster.nodes[i];
      assert.deepEqual(
        [c.host, c.socket, c.agent.host, c.agent.port, c.agent.user, c.agent.hostKey],
        [n.address, undefined, n.address, n.sshPort, n.osUser, s.agent.hostKey],
      );
      const account = accountOf(n.osUser!);
      const st = statSync(n.datadir);
      assert.equal(st.uid, account.uid, `${n.datadir} belongs to ${n.osUser}`);
      assert.equal(st.mode & 0o777, 0o700);
      // mariadbd runs as the node's account.
      const pid = await readPid(n);
      assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), new RegExp(`^Uid:\\t${account.uid}\\t`, "m"));
      const authorized = readFileSync(join(n.dir, ".ssh", "authorized_keys"), "utf8");
      assert.match(
        authorized,
        /^restrict,command="STRONGBOX_NODE='[^']+' exec '[^']+\/bin\/strongbox' agent --restore-root '[^']+'" ssh-ed25519 /,
      );
      // unix_socket authentication: the node's account logs in as itself over its socket.
      const who = spawnSync(
        "/usr/bin/mariadb",
        [`--socket=${n.socket}`, "-N", "-e", "SELECT CURRENT_USER()"],
        {
          uid: account.uid,
          gid: account.gid,
          encoding: "utf8",
        },
      );
      assert.equal(who.stdout.trim(), `${n.osUser}@localhost`, who.stderr);
    }
    // The backup account owns the config, the agents' SSH key and its home; nobody else may read them.
    for (const [path, mode] of [
      [sb.backup.home, 0o700],
      [sb.configPath, 0o600],
      [join(sb.backup.home, "keys", "agent_ed25519"), 0o600],
      [join(sb.backup.home, "secrets", "backup.password"), 0o600],
    ] as const) {
      const st = statSync(path);
      assert.deepEqual([st.uid, st.mode & 0o777], [sb.backup.uid, mode], path);
    }
    assert.equal(statSync(sb.nodes[0]!.restoreRoot).uid, accountOf(sb.nodes[0]!.osUser!).uid);
    // Each node's mariadbd and sshd listen on its own address only: the same port numbers on every
    // address, no wildcard listener, each socket the process of that node.
    const listeners = spawnSync("ss", ["-Htlnp"], { encoding: "utf8" })
      .stdout.split("\n")
      .filter(Boolean)
      .map((l) => ({ local: l.split(/\s+/)[3]!, pid: /pid=(\d+)/.exec(l)?.[1] }));
    const first = sb.nodes[0]!;
    for (const [port, ownerOf] of [
      [first.port, readPid],
      [first.gmcastPort, readPid],
      [first.sshPort, sshdPid],
    ] as const) {
      const expected = await Promise.all(
        sb.nodes.map(async (n) => [`${n.address}:${port}`, String(await ownerOf(n))]),
      );
      // Other tests run beside this one and may listen on the same port number at another
      // loopback address: only the nodes' processes, the nodes' addresses and wildcards count.
      const ours = new Set(expected.map(([, pid]) => pid));
      const counted = new Set([...sb.nodes.map((n) => n.address), "0.0.0.0", "*", "[::]"]);
      const actual = listeners
        .filter((l) => l.local.endsWith(`:${port}`))
        .filter((l) => ours.has(l.pid!) || counted.has(l.local.slice(0, l.local.lastIndexOf(":"))))
        .map((l) => [l.local, l.pid]);
      assert.deepEqual(actual.sort(), expected.sort(), `listeners on port ${port}`);
    }
    // Galera replicates between the nodes' own addresses.
    const conn = await sb.connect(2);
    try {
      const [row] = await queryRows<{ v: string }>(
        conn,
        "SELECT VARIABLE_VALUE AS v FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'wsrep_incoming_addresses'",
      );
      assert.deepEqual(row!.v.split(",").sort(), sb.nodes.map((n) => `${n.address}:${n.port}`).sort());
    } finally {
      await conn.end();
    }
  });

  it("the backup host's key runs the agent and nothing else: a command asked for over SSH is not run", () => {
    const knownHosts = join(sb.backup.home, "known_hosts");
    const config = parse(readFileSync(sb.configPath, "utf8"));
    writeFileSync(
      knownHosts,
      sb.nodes
        .map((n, i) => `[${n.address}]:${n.sshPort} ${config.cluster.nodes[i].agent.hostKey}\n`)
        .join(""),
    );
    for (const n of sb.nodes) {
      const r = spawnSync(
        "ssh",
        [
          ...["-n", "-i", join(sb.backup.home, "keys", "agent_ed25519"), "-p", String(n.sshPort)],
          ...[
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            `UserKnownHostsFile=${knownHosts}`,
          ],
          `${n.osUser}@${n.address}`,
          "echo bypassed; id",
        ],
        { uid: sb.backup.uid, gid: sb.backup.gid, env: { HOME: sb.backup.home }, encoding: "utf8" },
      );
      assert.doesNotMatch(r.stdout, /bypassed|uid=/, `${n.name}: the asked-for command did not run`);
      // The agent ran instead: with no handshake on its input, it answers with its error frame.
      assert.match(r.stdout, /expected the handshake first/, `${n.name}: ${r.stderr}`);
    }
  });

  it("the backup account can open none of the data directories (EACCES)", () => {
    for (const n of sb.nodes) {
      for (const path of [n.dir, n.datadir, join(n.datadir, "ibdata1")]) {
        const r = spawnSync(
          process.execPath,
          ["-e", `require("fs").openSync(${JSON.stringify(path)}, "r")`],
          {
            uid: sb.backup.uid,
            gid: sb.backup.gid,
            encoding: "utf8",
          },
        );
        assert.notEqual(r.status, 0, `${path} must not open for ${sb.backup.name}`);
        assert.match(r.stderr, /EACCES/, path);
      }
    }
  });

  it("as the backup account: init, full, incremental, verify --read-data and restore-test, through the agents", async () => {
    const init = await sb.asBackup(["--config", sb.configPath, "init"]);
    assert.equal(init.code, 0, init.stderr);
    const conn = await sb.connect(1);
    try {
      await loadDataset(conn, { sizeBytes: 10e6, seed: "hosts" });
    } finally {
      await conn.end();
    }
    const full = await traced("backup --full", ["--json", "backup", "--full"]);
    assert.equal(full.code, 0, full.stderr);
    const fm = JSON.parse(full.stdout);
    assert.equal(fm.donor, "node3", "the configured backup node is the donor");
    const w = await sb.connect(1);
    try {
      await w
        .query("CREATE TABLE IF NOT EXISTS test_hosts.t (id INT PRIMARY KEY) ENGINE=InnoDB")
        .catch(async () => {
          await w.query("CREATE DATABASE test_hosts");
          await w.query("CREATE TABLE test_hosts.t (id INT PRIMARY KEY) ENGINE=InnoDB");
        });
      await w.query("INSERT INTO test_hosts.t VALUES (1), (2), (3)");
    } finally {
      await w.end();
    }
    const inc = await traced("backup", ["--json", "backup"]);
    assert.equal(inc.code, 0, inc.stderr);
    const im = JSON.parse(inc.stdout);
    assert.equal(im.type, "incremental");
    assert.equal(im.parent, fm.id);
    const v = await sb.asBackup(["--config", sb.configPath, "--json", "verify", "--read-data"]);
    assert.equal(v.code, 0, v.stderr);
    const verdict = JSON.parse(v.stdout);
    assert.equal(verdict.ok, true);
    for (const b of verdict.backups) assert.equal(b.partsChecked, b.partsTotal);
    const rt = await traced("restore-test", ["restore-test"]);
    assert.equal(rt.code, 0, rt.stderr);
    assert.match(rt.stdout, /PASSED/);
  });

  it("as the backup account: restore --onto node1 and restore-test --on node2, unpacked and run on the nodes", async () => {
    const [id] = (await backupIds()).slice(-1);
    const node1 = sb.nodes[0]!;
    const target = join(node1.restoreRoot, "restored");
    const r = await traced("restore --onto", [
      "--json",
      "restore",
      id!,
      "--onto",
      "node1",
      "--target-dir",
      target,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).backups.length, 2, "the full and the incremental");
    assert.match(readFileSync(join(target, "xtrabackup_checkpoints"), "utf8"), /backup_type = log-applied/);
    assert.ok(existsSync(join(target, "grastate.dat")));
    assert.ok(existsSync(join(target, "test_hosts", "t.frm")), "the incremental's table is there");
    // Written by the agent as node1's account, in node1's home: the backup account cannot look.
    assert.equal(statSync(join(target, "ibdata1")).uid, accountOf(node1.osUser!).uid);
    const peek = spawnSync(process.execPath, ["-e", `require("fs").readdirSync(${JSON.stringify(target)})`], {
      uid: sb.backup.uid,
      gid: sb.backup.gid,
      encoding: "utf8",
    });
    assert.match(peek.stderr, /EACCES/);
    const t = await traced("restore-test --on", ["--json", "restore-test", id!, "--on", "node2"]);
    assert.equal(t.code, 0, t.stderr);
    const out = JSON.parse(t.stdout);
    assert.equal(out.passed, true);
    assert.ok(out.tablesChecked > 0);
    assert.deepEqual(
      readdirSync(sb.nodes[1]!.restoreRoot),
      [],
      "the scratch directory is removed on the node",
    );
  });

  it("the trace of the backup host's processes shows no open under any node's directory", () => {
    assert.deepEqual(
      traces.map((t) => t.command),
      ["backup --full", "backup", "restore-test", "restore --onto", "restore-test --on"],
    );
    const repository = join(sb.backup.home, "repository");
    for (const t of traces) {
      // The trace saw the work: the repository's files were opened.
      assert.ok(
        t.paths.some((p) => p.startsWith(`${repository}/`)),
        `${t.command}: the trace shows the repository opened`,
      );
      const under = t.paths.filter((p) => sb.nodes.some((n) => p === n.dir || p.startsWith(`${n.dir}/`)));
      assert.deepEqual(under, [], `${t.command} opened nothing under a node's directory`);
    }
  });

  it("the donor's mariadbd stopped mid-stream: the retry on the next node succeeds, nothing of the first attempt committed", async () => {
    // The real mariabackup, throttled so that the stream is still running when the donor stops.
    const slow = join(sb.dir, "mariabackup-throttled.sh");
    writeFileSync(
      slow,
      `#!/bin/bash\nTHROTTLE_BPS=3000000 exec ${join(FIXTURES, "mariabackup-slow.sh")} "$@"\n`,
      {
        mode: 0o755,
      },
    );
    const config = sb.editConfig("slow.yaml", (c) => {
      c.backup.mariabackupPath = slow;
      c.backup.partSize = "1MiB";
    });
    const before = await backupIds();
    const backups = join(sb.backup.home, "repository", "backups");
    const run = sb.startAsBackup(["--config", config, "--json", "backup", "--full"]);
    const partStored = () =>
      existsSync(backups) &&
      readdirSync(backups).some((d) => !before.includes(d) && readdirSync(join(backups, d)).length > 0);
    const deadline = Date.now() + 120_000;
    while (!partStored() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    assert.ok(partStored(), "a part of the first attempt was stored before the donor stopped");
    try {
      // On the donor, below its sshd: the agent and mariabackup, both as the node's own account.
      const donor = sb.nodes[2]!;
      const uid = accountOf(donor.osUser!).uid;
      const below = descendants((await sshdPid(donor))!).map((pid) => ({
        uid: Number(/^Uid:\t(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1]),
        args: readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0"),
      }));
      const agent = below.find(
        (p) => p.args.some((a) => a.endsWith("strongbox.js")) && p.args.includes("agent"),
      );
      const tool = below.find((p) => p.args[0] === "mariabackup" || p.args[0]?.endsWith("/mariabackup"));
      assert.equal(
        agent?.uid,
        uid,
        `the agent runs as ${donor.osUser}: ${JSON.stringify(below.map((p) => p.args[0]))}`,
      );
      assert.equal(tool?.uid, uid, "mariabackup runs as the node's account");
      await stopNode(sb.dir, 3);
      const r = await run.result;
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout);
      assert.equal(m.donor, "node2");
      assert.match(r.stderr, /backup from node3 failed .*retrying on node2/s);
      const after = await backupIds();
      assert.deepEqual(after, [...before, m.id], "only the retry is committed");
      const leftovers = readdirSync(backups).filter((d) => !after.includes(d));
      assert.deepEqual(leftovers, [], "no object of the first attempt is left");
    } finally {
      await startNode(sb.dir, 3);
    }
    for (const i of [1, 2, 3]) {
      const conn = await sb.connect(i);
      try {
        const [row] = await queryRows<{ d: number }>(conn, "SELECT @@wsrep_desync AS d");
        assert.equal(Number(row!.d), 0, `node${i} is not left desynced`);
      } finally {
        await conn.end();
      }
    }
  });

  it("a node's socket and my.cnf with an agent are the node's: the agent uses them, the backup host goes by TCP", async () => {
    // The socket is in the node's 0700 directory: the backup account could not even stat it.
    const config = sb.editConfig("node-socket.yaml", (c) => {
      for (const [i, n] of c.cluster.nodes.entries()) {
        n.socket = sb.nodes[i]!.socket;
        n.defaultsFile = sb.nodes[i]!.cnf;
      }
    });
    const before = await backupIds();
    const r = await sb.asBackup(["--config", config, "--json", "backup", "--full"]);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual((await backupIds()).length, before.length + 1);
    const relative = sb.editConfig("node-socket-relative.yaml", (c) => {
      c.cluster.nodes[0].socket = "run/mysqld.sock";
    });
    const bad = await sb.asBackup(["--config", relative, "backup", "--full"]);
    assert.equal(bad.code, 78, bad.stderr);
    assert.match(
      bad.stderr,
      /cluster\.nodes\[0\]\.socket: a path on the node with an agent must be absolute, got "run\/mysqld\.sock"/,
    );
  });

  it("a node without an agent, not on this host, is refused for physical backups (NODE_NOT_LOCAL)", async () => {
    const config = sb.editConfig("no-agents.yaml", (c) => {
      for (const n of c.cluster.nodes) delete n.agent;
    });
    const before = await backupIds();
    const r = await sb.asBackup(["--config", config, "backup", "--full"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: refusing a physical backup of node\d on .*: its data directory .* is not readable here \(configure cluster\.nodes\[\]\.agent for node\d/m,
    );
    assert.deepEqual(await backupIds(), before);
  });

  it("sandbox commands are root's: as the backup account, one line saying so", async () => {
    const r = await sb.asBackup(["--config", sb.configPath, "sandbox", "status"]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: the sandbox in \S+ is root's: sandbox commands run as root \(run it as root;/m,
    );
  });

  it("sandbox down --purge removes its processes, its OS accounts and its directory", async () => {
    const state = await readState(sb.dir);
    const pids = [
      ...(await Promise.all(sb.nodes.map(readPid))),
      ...(await Promise.all(sb.nodes.map(sshdPid))),
    ];
    assert.ok(pids.every((p) => p !== null));
    const r = await cli(["sandbox", "down", "--dir", sb.dir, "--purge", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).stopped, 3);
    assert.deepEqual(
      pids.filter((p) => pidAlive(p!)),
      [],
    );
    assert.deepEqual(
      state.hosts!.accounts.filter((a) => lookupAccount(a) !== undefined),
      [],
    );
    assert.equal(state.hosts!.accounts.length, 4);
    assert.equal(existsSync(sb.dir), false);
  });
});

describe("multi-host sandbox: refused before anything is made", () => {
  it("without root: one line naming the fix", async () => {
    const dir = join(tmpdir(), `strongbox-hosts-nobody-${process.pid}`);
    const r = await cli(
      ["sandbox", "up", "--hosts", "--dir", dir],
      { HOME: "/nonexistent" },
      { uid: 65534, gid: 65534 },
    );
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: sandbox up --hosts needs root: .* \(run it as root \(sudo\), or without --hosts/m,
    );
    assert.equal(existsSync(dir), false);
  });

  it("a sandbox directory the accounts could not reach", async () => {
    const parent = mkdtempSync(join(tmpdir(), "strongbox-private-")); // 0700
    try {
      await assert.rejects(
        createSandbox({ dir: join(parent, "sandbox"), hosts: true }),
        (e: StrongboxError) => {
          assert.equal(e.code, "SANDBOX_HOSTS_UNREACHABLE");
          assert.match(
            e.message,
            /is not reachable by the sandbox's accounts: .*strongbox-private-\w+ is not searchable by others/,
          );
          return true;
        },
      );
      assert.deepEqual(readdirSync(parent), [], "nothing was made");
      const program = join(parent, "strongbox");
      writeFileSync(program, "", { mode: 0o755 });
      assert.throws(
        () => assertReachableByOthers(program, "the strongbox launcher", true),
        /SANDBOX_HOSTS_UNREACHABLE|not searchable by others/,
      );
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it("an OS account that exists already is not taken over; a missing one is named", async () => {
    await assert.rejects(createAccount("nobody", "/nonexistent"), (e: StrongboxError) => {
      assert.equal(e.code, "SANDBOX_HOSTS_ACCOUNT");
      assert.match(e.message, /an OS account named nobody exists already/);
      return true;
    });
    assert.throws(
      () => accountOf("sbx-000000-none"),
      /the sandbox's OS account sbx-000000-none does not exist/,
    );
  });
});
