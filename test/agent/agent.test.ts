// Physical backups through node agents: a real sshd with the agent as its forced command
// (restrict, no shell), a real Galera cluster, and the backup host's CLI. The agent runs
// mariabackup, zstd and age on the node side; the backup host stores, hashes and commits.
// Faults: a changed host key, a refused key, no agent, an agent of another version, the agent
// killed mid-stream and the SSH connection cut mid-stream — each one line, nothing committed.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { BIN, cli, editConfig, FIXTURES, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { type SshServer, sshFieldsOf, startSshd } from "../helpers/sshd.ts";

describe("node agents", () => {
  const cluster = useCluster({ nodes: 2 });
  const node = process.execPath;
  let sshd: SshServer;
  let missing: SshServer;
  let otherVersion: SshServer;
  let nodeSealer: SshServer;
  let marks: string;

  /** The agent's forced command; each session appends its pid to `marks` first. */
  function agentCommand(markFile: string): string {
    return `echo $$ >> ${markFile}; STRONGBOX_NODE=${node} THROTTLE_BPS=1500000 exec ${BIN} agent`;
  }

  function sessions(): number[] {
    return existsSync(marks) ? readFileSync(marks, "utf8").split("\n").filter(Boolean).map(Number) : [];
  }

  before(
    async () => {
      marks = join(cluster.dir, "agent-sessions");
      sshd = await startSshd({ forcedCommand: agentCommand(marks) });
      await sshd.start();
      missing = await startSshd({ forcedCommand: "/nonexistent/bin/strongbox agent" });
      await missing.start();
      otherVersion = await startSshd({
        forcedCommand: `${node} ${join(FIXTURES, "agent-other-version.mjs")}`,
      });
      await otherVersion.start();
      // An agent whose parts Node seals (no native sealer, or STRONGBOX_SEALER=node on the node).
      nodeSealer = await startSshd({
        forcedCommand: `STRONGBOX_SEALER=node STRONGBOX_NODE=${node} exec ${BIN} agent`,
      });
      await nodeSealer.start();
      const init = await cli(["--config", cluster.configPath, "init"]);
      assert.equal(init.code, 0, init.stderr);
      const conn = await cluster.connect(1);
      try {
        await loadDataset(conn, { sizeBytes: 20e6, seed: "agent" });
      } finally {
        await conn.end();
      }
    },
    { timeout: 300_000 },
  );

  after(async () => {
    await Promise.all([sshd?.destroy(), missing?.destroy(), otherVersion?.destroy(), nodeSealer?.destroy()]);
  });

  /** The sandbox config with agents on every node, reached through `server`. */
  function agentConfig(
    name: string,
    server = () => sshd,
    edit: (agent: Record<string, unknown>) => void = () => {},
  ) {
    return editConfig(cluster.configPath, join(cluster.dir, `${name}.yaml`), (c) => {
      for (const n of c.cluster.nodes) {
        const agent: Record<string, unknown> = sshFieldsOf(server());
        edit(agent);
        n.agent = agent;
      }
    });
  }

  async function backupIds(config: string): Promise<string[]> {
    const r = await cli(["--config", config, "--json", "list"]);
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id);
  }

  /** Runs a full backup and, while it runs, collects the command lines of every strongbox-seal seen. */
  async function fullBackupWatchingSealers(config: string) {
    const run = startCli(["--config", config, "--json", "backup", "--full"]);
    const seen = new Set<string>();
    let done = false;
    const result = run.result.finally(() => {
      done = true;
    });
    while (!done) {
      const ps = spawnSync("pgrep", ["-af", "strongbox-seal"], { encoding: "utf8" }).stdout;
      for (const line of ps.split("\n"))
        if (/strongbox-seal \d/.test(line)) seen.add(line.replace(/^\d+ /, ""));
      await new Promise((r) => setTimeout(r, 25));
    }
    return { result: await result, sealers: [...seen] };
  }

  /** Objects (parts or temp files) in the repository of backups other than `ids`. */
  function leftovers(ids: string[]): string[] {
    const backupsDir = join(cluster.dir, "repository", "backups");
    return readdirSync(backupsDir)
      .filter((d) => !ids.includes(d))
      .flatMap((d) => readdirSync(join(backupsDir, d)).map((f) => `${d}/${f}`));
  }

  describe("backups through node agents", () => {
    it("a full and an incremental backup run in the agent; verify reads and decrypts every part", async () => {
      const config = agentConfig("agents");
      const before = sessions().length;
      const { result: full, sealers } = await fullBackupWatchingSealers(config);
      assert.equal(full.code, 0, full.stderr);
      assert.ok(
        sealers.some((c) => c.endsWith("--no-sync --frames")),
        `the agent's native sealer wrote the frames (seen: ${JSON.stringify(sealers)})`,
      );
      const fm = JSON.parse(full.stdout);
      assert.equal(fm.type, "full");
      assert.ok(fm.lsn.to > 0, "positions come back from the node");
      assert.equal(sessions().length, before + 1, "the backup ran through one agent session");
      const inc = await cli(["--config", config, "--json", "backup", "--incremental"]);
      assert.equal(inc.code, 0, inc.stderr);
      const im = JSON.parse(inc.stdout);
      assert.equal(im.parent, fm.id);
      assert.equal(im.lsn.from, fm.lsn.to, "the incremental starts at its parent's LSN");
      assert.equal(sessions().length, before + 2);
      const v = await cli(["--config", config, "--json", "verify", "--read-data"]);
      assert.equal(v.code, 0, v.stderr);
      const verdict = JSON.parse(v.stdout);
      assert.equal(verdict.ok, true);
      for (const b of verdict.backups) assert.equal(b.partsChecked, b.partsTotal);
    });

    it("an agent without the native sealer seals in Node: the same parts, verified and read back", async () => {
      const config = agentConfig("node-sealer", () => nodeSealer);
      const { result: full, sealers } = await fullBackupWatchingSealers(config);
      assert.equal(full.code, 0, full.stderr);
      assert.deepEqual(sealers, [], "no strongbox-seal ran");
      const id = JSON.parse(full.stdout).id as string;
      const v = await cli(["--config", config, "--json", "verify", "--read-data", id]);
      assert.equal(v.code, 0, v.stderr);
      const verdict = JSON.parse(v.stdout);
      assert.equal(verdict.ok, true);
      assert.ok(verdict.backups[0].partsChecked > 0);
    });

    for (const sealer of ["native", "node"] as const) {
      it(`mariabackup failing half way on the node (${sealer} sealer): its error, nothing committed`, async () => {
        const config = editConfig(
          agentConfig(`halfway-${sealer}`, () => (sealer === "node" ? nodeSealer : sshd)),
          join(cluster.dir, `halfway-${sealer}.yaml`),
          (c) => {
            c.backup.mariabackupPath = join(FIXTURES, "mariabackup-fails-halfway.sh");
            c.backup.partSize = "1MiB";
            c.cluster.retryOnNextNode = false;
          },
        );
        const ids = await backupIds(config);
        const r = await cli(["--config", config, "backup", "--full"]);
        assert.equal(r.code, 2, r.stderr);
        const errors = r.stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
        assert.equal(errors.length, 1, r.stderr);
        // Parts of the 3 MiB stream reached the backup host before the error frame: the frames
        // before it ended whole, so the agent's own error is what is reported.
        assert.match(
          errors[0]!,
          /^strongbox: error: node\d: mariabackup exited with code 1: .*failed to read page 4242/,
        );
        assert.deepEqual(await backupIds(config), ids, "nothing committed");
        assert.deepEqual(leftovers(ids), [], "no object of the failed backup is left");
      });
    }

    it("a changed host key is refused before anything runs on the node", async () => {
      const config = agentConfig("hostkey", undefined, (a) => {
        a.hostKey = sshd.otherHostKeyLine;
      });
      const ids = await backupIds(config);
      const r = await cli(["--config", config, "backup", "--full"]);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^strongbox: error: host key verification failed for root@127\.0\.0\.1:\d+: the server presented SHA256:/m,
      );
      assert.deepEqual(await backupIds(config), ids);
    });

    it("a key the node does not accept is one line naming the fix", async () => {
      const config = agentConfig("auth", undefined, (a) => {
        a.privateKey = sshd.otherKeyFile;
      });
      const ids = await backupIds(config);
      const r = await cli(["--config", config, "backup", "--full"]);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^strongbox: error: the SSH server root@127\.0\.0\.1:\d+ refused the key .*authorized_keys/m,
      );
      assert.deepEqual(await backupIds(config), ids);
    });

    it("no agent behind the SSH account, or one of another version: refused, nothing committed", async () => {
      const none = agentConfig("missing", () => missing);
      const ids = await backupIds(none);
      const r = await cli(["--config", none, "backup", "--full"]);
      assert.equal(r.code, 2);
      assert.match(
        r.stderr,
        /^strongbox: error: node\d: no strongbox agent answered at root@127\.0\.0\.1:\d+ \(the command exited with 127\)/m,
      );
      const other = agentConfig("other", () => otherVersion);
      const o = await cli(["--config", other, "backup", "--full"]);
      assert.equal(o.code, 2);
      assert.match(
        o.stderr,
        /^strongbox: error: node\d: the agent speaks protocol 99 \(strongbox 9\.9\.9\); this backup host speaks 1/m,
      );
      assert.deepEqual(await backupIds(none), ids);
    });

    for (const fault of ["the agent killed", "the SSH connection cut", "the node's sealer killed"] as const) {
      // The sealer's death reaches the host as the agent's error frame, or (killed in the middle of
      // a frame) as a lost stream whose message carries the agent's last stderr line: both name it.
      it(`${fault} mid-stream: one line naming it, nothing committed, no part left behind`, async () => {
        const config = editConfig(
          agentConfig(`cut-${fault.length}`),
          join(cluster.dir, `cut-${fault.length}.yaml`),
          (c) => {
            c.backup.mariabackupPath = join(FIXTURES, "mariabackup-slow.sh");
            c.backup.partSize = "1MiB";
            c.cluster.retryOnNextNode = false;
          },
        );
        const ids = await backupIds(config);
        const known = sessions().length;
        const run = startCli(["--config", config, "--json", "backup", "--full"]);
        const deadline = Date.now() + 60_000;
        while (sessions().length === known && Date.now() < deadline)
          await new Promise((r) => setTimeout(r, 100));
        const agentPid = sessions().at(-1)!;
        // Mid-stream: wait until the first encrypted part has reached the repository.
        const backups = join(cluster.dir, "repository", "backups");
        const partStored = () =>
          existsSync(backups) &&
          readdirSync(backups).some((d) => !ids.includes(d) && readdirSync(join(backups, d)).length > 0);
        while (!partStored() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
        assert.ok(partStored(), "a part was stored before the fault");
        if (fault === "the agent killed") process.kill(agentPid, "SIGKILL");
        else if (fault === "the node's sealer killed") {
          const sealer = spawnSync("pgrep", ["-P", String(agentPid), "-x", "strongbox-seal"], {
            encoding: "utf8",
          }).stdout.trim();
          assert.match(sealer, /^\d+$/, "the agent's sealer runs");
          process.kill(Number(sealer), "SIGKILL");
        } else {
          await sshd.stop(); // kills sshd and every session it started
          await sshd.start();
        }
        const r = await run.result;
        assert.equal(r.code, 2, r.stderr);
        assert.match(
          r.stderr,
          fault === "the node's sealer killed"
            ? /^strongbox: error: node\d: .*strongbox-seal killed by SIGKILL/m
            : /^strongbox: error: node\d: the agent or its connection went away mid-stream/m,
        );
        assert.deepEqual(await backupIds(config), ids, "nothing committed");
        assert.deepEqual(leftovers(ids), [], "no object (part or temp file) of the failed backup is left");
        // On the node, the agent's pipeline dies with it: mariabackup sees its pipe close.
        let left = "";
        for (let i = 0; i < 100; i++) {
          left = spawnSync("pgrep", ["-f", "mariabackup-slow"], { encoding: "utf8" }).stdout.trim();
          if (!left) break;
          await new Promise((res) => setTimeout(res, 100));
        }
        assert.equal(left, "", "no backup process left running on the node");
      });
    }
  });

  describe("the locality guard", () => {
    it("a physical backup of a node without an agent whose files this host cannot see is refused", async () => {
      // The backup host's commands as an unprivileged account: it cannot read the data directories.
      const home = mkdtempSync(join(tmpdir(), "strongbox-nobody-"));
      // The account's own copy of the config, keys and secrets; the nodes' directories stay root's.
      cpSync(cluster.dir, home, {
        recursive: true,
        filter: (src) => !/^\/node\d+(\/|$)/.test(src.slice(cluster.dir.length)),
      });
      const config = join(home, "strongbox.yaml");
      writeFileSync(config, readFileSync(cluster.configPath, "utf8").replaceAll(cluster.dir, home), {
        mode: 0o600,
      });
      const edited = editConfig(config, config, (c) => {
        for (const [i, n] of c.cluster.nodes.entries()) {
          delete n.socket; // the socket is in the node's directory: TCP instead
          n.host = "127.0.0.1";
          n.port = cluster.nodes[i]!.port;
          n.datadir = cluster.nodes[i]!.datadir;
        }
      });
      spawnSync("chown", ["-R", "nobody:nogroup", home]);
      const r = spawnSync(
        "setpriv",
        ["--reuid=nobody", "--regid=nogroup", "--clear-groups", BIN, "--config", edited, "backup", "--full"],
        { encoding: "utf8", env: { ...process.env, STRONGBOX_NODE: node, HOME: home } },
      );
      rmSync(home, { recursive: true, force: true });
      assert.equal(r.status, 2, r.stderr);
      assert.match(
        r.stderr,
        /^strongbox: error: refusing a physical backup of node\d on .*: its data directory .* is not readable here \(configure cluster\.nodes\[\]\.agent for node\d/m,
      );
    });
  });
});
