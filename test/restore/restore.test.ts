// verify, restore and restore-test against real backups of a real cluster, through the CLI.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdir, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { describe, it } from "node:test";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import { decryptBuffer, encryptBuffer } from "../../src/crypto/age.ts";
import { generateX25519Identity, parseIdentities, parseRecipient } from "../../src/crypto/age-keys.ts";
import { publicKeyFromPrivate } from "../../src/crypto/sign.ts";
import { connectNode } from "../../src/galera/connection.ts";
import { startScratchServer } from "../../src/mariadb/scratch.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { findFreeBasePort, readSecret } from "../../src/sandbox/cluster.ts";
import { datasetChecksum, loadDataset } from "../../src/sandbox/dataset.ts";
import { clusterLayout } from "../../src/sandbox/layout.ts";
import { renderNodeCnf } from "../../src/sandbox/mycnf.ts";
import { startMariadbd, waitSynced } from "../../src/sandbox/processes.ts";
import { pidAlive } from "../../src/util/liveness.ts";
import { cli, editConfig, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { commitAsBackupHost, removeAsBackupHost } from "../helpers/forge.ts";

describe("verify, restore, restore-test", () => {
  const cluster = useCluster({ nodes: 1 });
  const cfg = () => cluster.configPath;
  const repo = () => join(cluster.dir, "repository");
  const identity = () => join(cluster.dir, "keys/identity.txt");
  let full = "";
  let inc = "";
  let logical = "";
  let checksumAtBackup: Record<string, string> = {};

  const backup = async (...args: string[]) => {
    const r = await cli(["--config", cfg(), "backup", ...args, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as Manifest;
  };
  const manifestPath = (id: string) => join(repo(), "backups", id, "manifest.json");
  const partPath = (id: string, i = 0) =>
    join(repo(), "backups", id, `part-${String(i).padStart(6, "0")}.age`);

  /** Signs and commits (or replaces) a manifest as the backup host would, evidence included. */
  const asBackupHost = async (m: Manifest, o: { replace?: boolean } = {}) => {
    const key = readFileSync(join(cluster.dir, "keys/signing.key"), "utf8");
    const opened = await openConfiguredRepository(cfg());
    try {
      await commitAsBackupHost(
        opened.repo,
        { privateKeyPem: key, publicKey: publicKeyFromPrivate(key) },
        m,
        o,
      );
    } finally {
      await opened.close();
    }
  };

  /** Removes a (damaged) backup as prune would, so that the evidence log does not miss it. */
  const removeBackup = async (id: string) => {
    const key = readFileSync(join(cluster.dir, "keys/signing.key"), "utf8");
    const opened = await openConfiguredRepository(cfg());
    try {
      await removeAsBackupHost(opened.repo, { privateKeyPem: key, publicKey: publicKeyFromPrivate(key) }, id);
    } finally {
      await opened.close();
    }
  };

  /** Copies a backup under a new id so a test can damage it without spoiling the others. */
  const cloneBackup = async (id: string, suffix: string): Promise<string> => {
    const newId = id.replace(/-[0-9a-f]{6}$/, `-${suffix}`);
    const src = join(repo(), "backups", id);
    const dst = join(repo(), "backups", newId);
    mkdirSync(dst, { mode: 0o700 });
    for (const f of readdirSync(src)) {
      if (f !== "manifest.json") writeFileSync(join(dst, f), readFileSync(join(src, f)), { mode: 0o600 });
    }
    const m = JSON.parse(readFileSync(join(src, "manifest.json"), "utf8")) as Manifest;
    m.id = newId;
    m.chainRoot = m.parent ? m.chainRoot : newId;
    m.parts = m.parts.map((p) => ({ ...p, key: p.key.replace(id, newId) }));
    await asBackupHost(m);
    return newId;
  };

  it("takes a full, an incremental and a logical backup of a loaded cluster", async () => {
    const c = await cluster.connect(1);
    await loadDataset(c, { sizeBytes: 16_000_000, seed: 3 });
    await c.end();
    assert.equal((await cli(["--config", cfg(), "init"])).code, 0);
    full = (await backup("--full")).id;
    const w = await cluster.connect(1);
    await w.query(
      "CREATE TABLE logs.after_full (id INT PRIMARY KEY, note VARCHAR(40)); INSERT INTO logs.after_full VALUES (1, 'written after the full backup')",
    );
    checksumAtBackup = await datasetChecksum(w);
    const [[row]] = (await w.query("CHECKSUM TABLE logs.after_full")) as unknown as [[{ Checksum: string }]];
    checksumAtBackup["logs.after_full"] = String(row.Checksum);
    await w.end();
    inc = (await backup("--incremental")).id;
    logical = (await backup("--logical")).id;
  });

  it("verify without the identity checks signatures, chains and every part's hash", async () => {
    const noId = editConfig(cfg(), join(cluster.dir, "noid.yaml"), (c) => delete c.keys.identity);
    const r = await cli(["--config", noId, "verify", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.ok, true);
    assert.deepEqual(
      out.backups.map((b: { id: string }) => b.id),
      [full, inc, logical],
    );
    for (const b of out.backups) assert.equal(b.partsChecked, b.partsTotal);
    const rd = await cli(["--config", noId, "verify", "--read-data"]);
    assert.equal(rd.code, 64, "a usage error");
    assert.match(rd.stderr, /^strongbox: error: no identity to decrypt with \(pass --identity FILE/m);
  });

  it("verify --read-data decrypts, decompresses and parses every stream to its end", async () => {
    const r = await cli(["--config", cfg(), "verify", "--read-data", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(JSON.parse(r.stdout).backups.every((b: { dataRead: boolean }) => b.dataRead));
  });

  it("verify --sample reads a rotating subset that covers everything over repeated runs", async () => {
    const seen = new Set<string>();
    for (let i = 0; i < 3; i++) {
      const r = await cli(["--config", cfg(), "verify", "--sample", "33%", "--json"]);
      assert.equal(r.code, 0, r.stderr);
      const checked = JSON.parse(r.stdout).backups.filter(
        (b: { partsChecked: number }) => b.partsChecked > 0,
      );
      assert.equal(checked.length, 1, "33% of 3 single-part backups is one part per run");
      seen.add(checked[0].id);
    }
    assert.deepEqual([...seen].sort(), [full, inc, logical].sort());
  });

  it("a flipped byte in a part: verify names the backup and part; restore-test fails", async () => {
    const bad = await cloneBackup(full, "f11bad");
    const p = partPath(bad);
    const bytes = readFileSync(p);
    const mid = Math.floor(bytes.length / 2);
    bytes[mid] = bytes[mid]! ^ 0x01;
    writeFileSync(p, bytes);
    const v = await cli(["--config", cfg(), "verify", bad]);
    assert.equal(v.code, 2);
    assert.match(
      v.stderr,
      new RegExp(
        `^strongbox: error: backup ${bad} part 0 \\(backups/${bad}/part-000000.age\\) fails its SHA-256 check`,
        "m",
      ),
    );
    const t = await cli(["--config", cfg(), "restore-test", bad]);
    assert.equal(t.code, 2);
    assert.match(t.stdout, /FAILED/);
    assert.match(t.stderr, /part 0 \(.*\) (fails its SHA-256 check|is corrupted or truncated)/);
    assert.ok(
      !existsSync(join(cluster.dir, "state/scratch")) ||
        readdirSync(join(cluster.dir, "state/scratch")).length === 0,
      "scratch cleaned",
    );
    await removeBackup(bad);
  });

  it("a deleted part and a truncated part are named; a tampered manifest fails its signature", async () => {
    const gone = await cloneBackup(full, "de1e7e");
    await rm(partPath(gone));
    let r = await cli(["--config", cfg(), "verify", gone]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(`backup ${gone} part 0 \\(backups/${gone}/part-000000.age\\) is missing`),
    );
    r = await cli(["--config", cfg(), "restore-test", gone]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is missing/);
    await removeBackup(gone);

    const cut = await cloneBackup(full, "c0ffee");
    const bytes = readFileSync(partPath(cut));
    writeFileSync(partPath(cut), bytes.subarray(0, bytes.length - 1000));
    r = await cli(["--config", cfg(), "verify", cut]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /has \d+ bytes, the manifest says \d+ \(truncated\?\)/);
    await removeBackup(cut);

    const tampered = await cloneBackup(full, "7a4bed");
    const m = JSON.parse(readFileSync(manifestPath(tampered), "utf8"));
    m.gtid = "1-1-999999";
    writeFileSync(manifestPath(tampered), JSON.stringify(m));
    r = await cli(["--config", cfg(), "verify", tampered]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`manifest of backup ${tampered} fails its signature check`));
    r = await cli(["--config", cfg(), "restore", tampered, "--target-dir", join(cluster.dir, "never")]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /fails its signature check/);
    assert.ok(!existsSync(join(cluster.dir, "never")));
    await removeBackup(tampered);
  });

  it("unknown id, wrong identity, non-empty or too small target: clear one-line errors", async () => {
    let r = await cli([
      "--config",
      cfg(),
      "restore",
      "20200101T000000Z-abcdef",
      "--target-dir",
      join(cluster.dir, "x"),
    ]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^strongbox: error: no backup 20200101T000000Z-abcdef in repository local \(see: strongbox list\)$/m,
    );

    const other = generateX25519Identity();
    const wrong = join(cluster.dir, "wrong-identity.txt");
    writeFileSync(wrong, `${other.identity}\n`, { mode: 0o600 });
    r = await cli([
      "--config",
      cfg(),
      "restore",
      full,
      "--target-dir",
      join(cluster.dir, "w"),
      "--identity",
      wrong,
    ]);
    assert.equal(r.code, 2);
    const recipient = readFileSync(join(cluster.dir, "keys/recipients.txt"), "utf8").match(/age1\w+/)![0];
    assert.match(
      r.stderr,
      new RegExp(
        `the identity does not match any recipient of backup ${full}; it was encrypted to ${recipient}`,
      ),
    );

    const busy = join(cluster.dir, "busy");
    mkdirSync(busy);
    writeFileSync(join(busy, "precious"), "do not overwrite");
    r = await cli(["--config", cfg(), "restore", full, "--target-dir", busy]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /target directory .*busy is not empty \(choose an empty directory, or pass --force/,
    );
    assert.equal(readFileSync(join(busy, "precious"), "utf8"), "do not overwrite");

    const tiny = join(cluster.dir, "tiny");
    mkdirSync(tiny);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", tiny]);
    try {
      r = await cli(["--config", cfg(), "restore", full, "--target-dir", join(tiny, "data")]);
      assert.equal(r.code, 2);
      assert.match(r.stderr, /target .*tiny\/data has .* free; the restore needs about/);
      assert.deepEqual(readdirSync(tiny), []);
    } finally {
      execFileSync("umount", [tiny]);
    }
  });

  it("restore-test passes for the incremental chain and the logical backup, and records RTO", async () => {
    for (const id of [inc, logical]) {
      const r = await cli(["--config", cfg(), "restore-test", id, "--json"]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const out = JSON.parse(r.stdout);
      assert.equal(out.passed, true);
      assert.ok(out.rtoSeconds > 0 && out.tablesChecked > 10);
      assert.ok(out.timings.start > 0 && out.timings.checks > 0);
    }
  });

  it("restore-test fails when the inventory no longer matches, and when an assertion fails", async () => {
    const changed = await cloneBackup(full, "1a7e57");
    const m = JSON.parse(readFileSync(manifestPath(changed), "utf8")) as Manifest;
    const ids = parseIdentities(readFileSync(identity(), "utf8"));
    const details = JSON.parse((await decryptBuffer(Buffer.from(m.details, "base64"), ids)).toString());
    const orders = details.inventory.tables.find((t: { table: string }) => t.table === "orders");
    orders.rows += 1000;
    const recipient = readFileSync(join(cluster.dir, "keys/recipients.txt"), "utf8").match(/age1\w+/)![0];
    m.details = (
      await encryptBuffer(Buffer.from(JSON.stringify(details)), [parseRecipient(recipient)])
    ).toString("base64");
    await asBackupHost(m, { replace: true });
    let r = await cli(["--config", cfg(), "restore-test", changed]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      new RegExp(
        `restore-test of ${changed} failed: table shop.orders has \\d+ rows, ${orders.rows} were recorded at backup time`,
      ),
    );
    await removeBackup(changed);

    const strict = editConfig(cfg(), join(cluster.dir, "assert.yaml"), (c) => {
      c.restoreTest.assertions.push({
        name: "exactly one late row",
        sql: "SELECT COUNT(*) FROM logs.after_full",
        expect: "2",
      });
    });
    r = await cli(["--config", strict, "restore-test", inc]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /assertion "exactly one late row": got 1, expected 2/);
  });

  it("status: CRITICAL after failed checks, OK again once verify and restore-test pass (Nagios exit codes)", async () => {
    // This repository has no offsite copy (a WARNING of its own, tested in test/monitor/): off here.
    const local = editConfig(cfg(), join(cluster.dir, "no-offsite-rule.yaml"), (c) => {
      c.monitoring = { ...c.monitoring, rules: { ...c.monitoring?.rules, requireOffsite: false } };
    });
    let r = await cli(["--config", local, "status", "--json"]);
    assert.equal(r.code, 2, r.stdout);
    assert.equal(JSON.parse(r.stdout).level, "CRITICAL");
    assert.match(JSON.parse(r.stdout).summary, /^STRONGBOX CRITICAL - .*failed/);
    r = await cli(["--config", cfg(), "restore-test", inc]);
    assert.equal(r.code, 0, r.stderr);
    for (const args of [["verify"], ["verify", "--read-data"]]) {
      r = await cli(["--config", cfg(), ...args]);
      assert.equal(r.code, 0, r.stderr);
    }
    r = await cli(["--config", local, "status", "--json"]);
    const report = JSON.parse(r.stdout);
    for (const c of ["backup", "verify", "restore-test"])
      assert.equal(report.repositories[0].checks[c].level, "OK");
    // The restores that failed above are runs too: a warning until a restore succeeds (next test).
    assert.deepEqual(
      report.repositories[0].problems.map((p: { rule: string; subject: string }) => `${p.rule} ${p.subject}`),
      ["run-failed restore"],
    );
    assert.equal(r.code, 1, r.stdout);
  });

  it("restore rebuilds a data directory that bootstraps a new cluster; a second node joins by SST; data matches", async () => {
    const target = join(cluster.dir, "restored");
    const r = await cli(["--config", cfg(), "restore", inc, "--target-dir", target]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /galera_new_cluster/);
    // Without the offsite rule: this repository has no offsite copy (tested in test/monitor/).
    const local = editConfig(cfg(), join(cluster.dir, "no-offsite-rule.yaml"), (c) => {
      c.monitoring = { ...c.monitoring, rules: { ...c.monitoring?.rules, requireOffsite: false } };
    });
    const status = await cli(["--config", local, "status"]);
    assert.equal(status.code, 0, status.stdout);
    assert.match(status.stdout, /^STRONGBOX OK/);
    const gs = readFileSync(join(target, "grastate.dat"), "utf8");
    assert.match(gs, /safe_to_bootstrap: 1/);
    const m = JSON.parse(readFileSync(manifestPath(inc), "utf8")) as Manifest;
    assert.match(gs, new RegExp(`uuid:\\s+${m.cluster.uuid}\\nseqno:\\s+${m.cluster.seqno}`));

    // A new two-node cluster: node1 on the restored directory, node2 empty and joining by SST.
    const dir = join(cluster.dir, "newcluster");
    const base = await findFreeBasePort(2, 47000);
    const nodes = clusterLayout(dir, 2, base);
    const sstPassword = (await readSecret(cluster.dir, "sst")).password!;
    for (const n of nodes) {
      await mkdir(n.tmpdir, { recursive: true, mode: 0o700 });
      await writeFile(
        n.cnf,
        renderNodeCnf(n, {
          clusterName: "restored",
          nodes,
          sstUser: "strongbox_sst",
          sstPassword,
          runAsRoot: process.getuid?.() === 0,
          bufferPool: "128M",
        }),
        { mode: 0o600 },
      );
    }
    await rm(nodes[0]!.datadir, { recursive: true, force: true });
    execFileSync("mv", [target, nodes[0]!.datadir]);
    await mkdir(nodes[1]!.datadir, { recursive: true, mode: 0o700 });
    const pids: number[] = [];
    try {
      pids.push(startMariadbd(nodes[0]!, true));
      await waitSynced(nodes[0]!, pids[0]!, cluster.admin, 120_000);
      pids.push(startMariadbd(nodes[1]!, false));
      await waitSynced(nodes[1]!, pids[1]!, cluster.admin, 180_000);
      const c2 = await connectNode(
        { name: "new2", host: "127.0.0.1", port: nodes[1]!.port, socket: nodes[1]!.socket },
        cluster.admin,
      );
      const [[size]] = (await c2.query("SHOW STATUS LIKE 'wsrep_cluster_size'")) as unknown as [
        [{ Value: string }],
      ];
      assert.equal(size.Value, "2");
      const sums = await datasetChecksum(c2);
      const [[late]] = (await c2.query("CHECKSUM TABLE logs.after_full")) as unknown as [
        [{ Checksum: string }],
      ];
      sums["logs.after_full"] = String(late.Checksum);
      await c2.end();
      assert.deepEqual(sums, checksumAtBackup);
    } finally {
      for (const pid of pids.reverse()) {
        if (pidAlive(pid)) process.kill(pid, "SIGTERM");
        for (let i = 0; i < 600 && pidAlive(pid); i++) await new Promise((res) => setTimeout(res, 100));
      }
    }
  });

  it("the native opener decrypts each part of a local restore; with STRONGBOX_SEALER=node Node does, to the same files", async () => {
    const fullParts = (JSON.parse(readFileSync(manifestPath(full), "utf8")) as Manifest).parts.length;
    const incParts = (JSON.parse(readFileSync(manifestPath(inc), "utf8")) as Manifest).parts.length;
    const restoreTraced = async (name: string, env: NodeJS.ProcessEnv) => {
      const target = join(cluster.dir, name);
      const trace = join(cluster.dir, `${name}.trace`);
      const args = ["--config", cfg(), "restore", inc, "--target-dir", target, "--no-prepare"];
      const run = startCli(args, env, undefined, [
        "strace",
        "-f",
        "-qq",
        "-s",
        "512",
        "-e",
        "trace=execve",
        "-o",
        trace,
      ]);
      const r = await run.result;
      assert.equal(r.code, 0, r.stderr);
      const openers = readFileSync(trace, "utf8")
        .split("\n")
        .filter((l) => /execve\("[^"]*\/strongbox-open", \["[^"]*strongbox-open"\]/.test(l));
      return { target, openers: openers.length };
    };
    const native = await restoreTraced("opened-natively", {});
    // One opener per part, started with no argument (the key goes on its stdin).
    assert.equal(native.openers, fullParts + incParts);
    const inNode = await restoreTraced("opened-in-node", { STRONGBOX_SEALER: "node" });
    assert.equal(inNode.openers, 0);
    const tree = (dir: string) => {
      const files: Record<string, string> = {};
      for (const f of readdirSync(dir, { recursive: true, encoding: "utf8" }).sort()) {
        const p = join(dir, f);
        if (statSync(p).isFile()) files[f] = createHash("sha256").update(readFileSync(p)).digest("hex");
      }
      return files;
    };
    for (const [a, b] of [
      [native.target, inNode.target],
      [`${native.target}.strongbox-incremental`, `${inNode.target}.strongbox-incremental`],
    ] as const) {
      const files = tree(a);
      assert.ok(Object.keys(files).length > 10, `${a} holds the extracted backup`);
      assert.deepEqual(files, tree(b));
    }
    for (const t of [native.target, inNode.target])
      await rm(`${t}.strongbox-incremental`, { recursive: true, force: true });
  });

  it("restore --no-prepare keeps the incrementals, is not bootable, and its printed steps finish it", async () => {
    const target = join(cluster.dir, "unprepared");
    const r = await cli(["--config", cfg(), "restore", inc, "--target-dir", target, "--no-prepare"]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(readFileSync(join(target, "grastate.dat"), "utf8"), /seqno:\s+-1\nsafe_to_bootstrap: 0/);
    const steps = r.stdout
      .split("\n")
      .map((l) => l.trim())
      .filter((l) => l.startsWith("mariabackup --prepare"));
    assert.equal(steps.length, 2, r.stdout);
    assert.ok(steps[1]!.endsWith(`--incremental-dir=${target}.strongbox-incremental/${inc}`));
    assert.ok(existsSync(`${target}.strongbox-incremental/${inc}`));
    for (const step of steps) {
      const [cmd, ...args] = step.split(" ");
      execFileSync(cmd!, args, { stdio: "ignore" });
    }
    const server = await startScratchServer(target, join(cluster.dir, "unprepared-check"));
    try {
      const c = await server.connect();
      const [[row]] = (await c.query("CHECKSUM TABLE logs.after_full")) as unknown as [
        [{ Checksum: string }],
      ];
      await c.end();
      assert.equal(String(row.Checksum), checksumAtBackup["logs.after_full"], "the incremental was applied");
    } finally {
      await server.stop();
      await rm(`${target}.strongbox-incremental`, { recursive: true, force: true });
    }
  });
});
