// The disaster drill: the backup host is gone (config, keys, catalog, local repository deleted).
// On a bare host, in a fresh directory, as another OS account (nobody), with nothing but the escrow
// age identity, the signing PUBLIC key and the SFTP offsite repository's credentials, a minimal
// config lists, verifies, restore-tests and restores the cluster to a chosen second; a new Galera
// cluster is bootstrapped from the result; the RTO is recorded. docs/restore-runbook.md, page one.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connectNode } from "../../src/galera/connection.ts";
import { findFreeBasePort } from "../../src/sandbox/cluster.ts";
import { nodeLayout } from "../../src/sandbox/layout.ts";
import { renderNodeCnf } from "../../src/sandbox/mycnf.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { sleep } from "../../src/util/proc.ts";
import { BIN, type CliResult, cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { sshFieldsOf, useSshd } from "../helpers/sshd.ts";

const LONG = { timeout: 900_000 };
/** The restore host's account: not root, not the backup host's user. */
const NOBODY = { uid: 65534, gid: 65534 };

/** The CLI as the restore host's account, in its directory. */
function cliAs(cwd: string, args: string[]): Promise<CliResult> {
  const child = spawn(BIN, args, {
    cwd,
    ...NOBODY,
    env: { PATH: process.env.PATH, STRONGBOX_NODE: process.execPath, HOME: cwd, TMPDIR: join(cwd, "tmp") },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}

async function chownTree(path: string): Promise<void> {
  await chown(path, NOBODY.uid, NOBODY.gid);
  for (const e of await readdir(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isDirectory()) await chownTree(p);
    else await chown(p, NOBODY.uid, NOBODY.gid);
  }
}

describe("bare-host recovery drill", () => {
  const cluster = useCluster({ nodes: 1 });
  const sftp = useSshd();
  let work = "";
  let newClusterPid: number | undefined;

  before(async () => {
    // Short paths: the scratch servers' sockets live below the restore host's state (107 bytes at most).
    work = await mkdtemp(join(tmpdir(), "sbd-"));
    // The restore host's account may pass through (not list) the test's directory to its own.
    await chmod(work, 0o711);
  });
  after(async () => {
    if (newClusterPid && pidAlive(newClusterPid)) {
      process.kill(newClusterPid, "SIGTERM");
      for (let i = 0; i < 100 && pidAlive(newClusterPid); i++) await sleep(200);
      if (pidAlive(newClusterPid)) process.kill(newClusterPid, "SIGKILL");
    }
    if (work) await rm(work, { recursive: true, force: true });
  });

  it(
    "restores the cluster from the offsite copy with the escrow keys alone, to a chosen second",
    LONG,
    async () => {
      const backupHost = cluster.configPath;
      const offsitePath = join(work, "offsite");
      await mkdir(offsitePath, { mode: 0o700 });
      // The backup host: a local repository copied to an SFTP offsite, binlogs archived offsite.
      editConfig(backupHost, backupHost, (c) => {
        c.repositories.push({
          name: "offsite",
          storage: {
            type: "sftp",
            ...sshFieldsOf(sftp.server),
            path: offsitePath,
          },
        });
        c.binlog = { repository: "offsite" };
      });
      const run = async (...args: string[]) => {
        const r = await cli(["--config", backupHost, ...args]);
        assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
        return r;
      };
      const db = await cluster.connect(1);
      await db.query(
        "CREATE DATABASE drill; CREATE TABLE drill.t (seq INT PRIMARY KEY, ts DATETIME(6) NOT NULL)",
      );
      const write = async (from: number, to: number) => {
        for (let i = from; i <= to; i++) await db.query("INSERT INTO drill.t VALUES (?, NOW(6))", [i]);
      };
      await write(1, 20);
      const init = await run("init");
      const publicKey = /signing public key: (ed25519:\S+)/.exec(init.stdout)![1]!;
      const backupId = (JSON.parse((await run("backup", "--full", "--json")).stdout) as { id: string }).id;
      await run("copy", "--to", "offsite");
      await write(21, 30);
      // Binlog event times have whole seconds: the chosen second has no write near it.
      await sleep(1600);
      const [[now]] = (await db.query("SELECT UNIX_TIMESTAMP(NOW(6)) AS x")) as unknown as [[{ x: string }]];
      const chosen = new Date(Math.floor(Number(now.x) * 1000));
      await sleep(1600);
      await write(31, 45);
      await run("binlog", "archive");
      await db.end();

      // The restore host gets the escrow material: the identity, the signing PUBLIC key, the SFTP key.
      const host = join(work, "h");
      await mkdir(join(host, "tmp"), { recursive: true, mode: 0o700 });
      await copyFile(join(cluster.dir, "keys/identity.txt"), join(host, "identity.txt"));
      await copyFile(sftp.server.userKeyFile, join(host, "offsite.key"));
      assert.equal(readFileSync(join(cluster.dir, "keys/signing.key.pub"), "utf8").trim(), publicKey);
      // The disaster: the backup host's config, keys, catalog and local repository are gone.
      for (const p of ["strongbox.yaml", "keys", "state", "repository"]) {
        await rm(join(cluster.dir, p), { recursive: true, force: true });
      }
      // A new cluster's node, on this host: its ports and directories.
      const basePort = await findFreeBasePort(1, 36500 + (process.pid % 50) * 20);
      const node = nodeLayout(join(host, "cluster"), 1, basePort);
      await writeFile(
        join(host, "strongbox.yaml"),
        [
          "# Bare-host recovery: docs/restore-runbook.md",
          "version: 1",
          "cluster:",
          `  nodes: [{ name: restored1, host: 127.0.0.1, port: ${node.port} }]`,
          "  credentials: { backup: { user: strongbox_backup } }",
          "repositories:",
          "  - name: offsite",
          `    storage: { type: sftp, host: 127.0.0.1, port: ${sftp.server.port}, user: ${sftp.server.user}, path: ${offsitePath}, privateKey: offsite.key, hostKey: "${sftp.server.hostKeyLine}" }`,
          "keys:",
          "  identity: identity.txt",
          `  signingPublicKey: "${publicKey}"`,
          "restoreTest: { bufferPool: 128M }",
          "",
        ].join("\n"),
        { mode: 0o600 },
      );
      await chownTree(host);

      const t0 = performance.now();
      const list = await cliAs(host, ["list", "--json"]);
      assert.equal(list.code, 0, list.stderr);
      assert.deepEqual(
        (JSON.parse(list.stdout) as { backups: { id: string }[] }).backups.map((b) => b.id),
        [backupId],
      );
      const verify = await cliAs(host, ["verify", "--read-data", "--json"]);
      assert.equal(verify.code, 0, verify.stderr + verify.stdout);
      const test = await cliAs(host, ["restore-test", "--to-time", chosen.toISOString(), "--json"]);
      assert.equal(test.code, 0, test.stderr + test.stdout);
      assert.equal((JSON.parse(test.stdout) as { passed: boolean }).passed, true);
      const tRestore = performance.now();
      const target = node.datadir;
      const restored = await cliAs(host, [
        "restore",
        "--to-time",
        chosen.toISOString(),
        "--target-dir",
        target,
        "--json",
      ]);
      assert.equal(restored.code, 0, restored.stderr + restored.stdout);
      assert.deepEqual((JSON.parse(restored.stdout) as { restore: { backups: string[] } }).restore.backups, [
        backupId,
      ]);

      // A new Galera cluster bootstrapped from it, run by the restore host's account.
      await mkdir(node.tmpdir, { recursive: true, mode: 0o700 });
      await writeFile(
        node.cnf,
        renderNodeCnf(node, {
          clusterName: "restored",
          nodes: [node],
          sstUser: "none",
          sstPassword: "none",
          runAsRoot: false,
          bufferPool: "128M",
        }),
        { mode: 0o600 },
      );
      await chownTree(join(host, "cluster"));
      const server = spawn("/usr/sbin/mariadbd", [`--defaults-file=${node.cnf}`, "--wsrep-new-cluster"], {
        ...NOBODY,
        stdio: ["ignore", "ignore", "pipe"],
        env: { PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${process.env.PATH ?? ""}` },
      });
      newClusterPid = server.pid;
      let serverErr = "";
      server.stderr!.on("data", (c: Buffer) => {
        serverErr = (serverErr + c.toString()).slice(-4000);
      });
      const logTail = () => {
        try {
          return readFileSync(node.errorLog, "utf8").slice(-2000);
        } catch {
          return serverErr;
        }
      };
      let conn: Awaited<ReturnType<typeof connectNode>> | undefined;
      for (let i = 0; i < 600 && !conn; i++) {
        assert.ok(server.exitCode === null, `the new node exited: ${logTail()}`);
        conn = await connectNode(
          { name: "restored1", host: "127.0.0.1", port: node.port, socket: node.socket },
          cluster.admin,
        ).catch(() => undefined);
        if (!conn) await sleep(200);
      }
      assert.ok(conn, "the new cluster accepts connections");
      try {
        const [status] = (await conn.query("SHOW GLOBAL STATUS LIKE 'wsrep_cluster_%'")) as unknown as [
          { Variable_name: string; Value: string }[],
        ];
        const s = new Map(status.map((r) => [r.Variable_name, r.Value]));
        assert.equal(s.get("wsrep_cluster_status"), "Primary");
        assert.equal(s.get("wsrep_cluster_size"), "1");
        const [[rows]] = (await conn.query(
          "SELECT COUNT(*) AS n, MAX(seq) AS hi FROM drill.t",
        )) as unknown as [[{ n: string; hi: number }]];
        // Everything written before the chosen second, nothing after it.
        assert.equal(Number(rows.n), 30);
        assert.equal(Number(rows.hi), 30);
      } finally {
        await conn.end();
      }
      const rto = (performance.now() - t0) / 1000;
      const restoreOnly = (performance.now() - tRestore) / 1000;
      // The drill's record: printed for docs/restore-runbook.md.
      process.stdout.write(
        `# drill RTO: ${rto.toFixed(1)} s from a bare host (list, verify --read-data, restore-test, restore to a second, bootstrap); restore + bootstrap alone ${restoreOnly.toFixed(1)} s\n`,
      );
      assert.ok(rto > 0);
    },
  );
});
