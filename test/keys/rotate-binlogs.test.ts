// Key rotation covers the binlog archive and runs under the writer lock: point-in-time recovery
// with the new identity after add-recipient + rotate; after remove-recipient + rotate the removed
// key opens no archived binlog; a rotation killed while racing prune leaves nothing half-written;
// an append-only copy is reported, not a reason to stop.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { cli, editConfig, startCli, waitsOnFifo } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

const LONG = { timeout: 600_000 };

describe("key rotation of archived binlogs, under the writer lock", () => {
  const cluster = useCluster({ nodes: 1 });
  let cfg = "";
  const run = (...args: string[]) => cli(["--config", cfg, ...args]);
  const key = (name: string) => join(cluster.dir, `keys/${name}.txt`);
  const keyA = () => join(cluster.dir, "keys/identity.txt");
  const recipientOf = (file: string) => readFileSync(file, "utf8").match(/age1[0-9a-z]+/)![0];
  const repoDir = () => join(cluster.dir, "repository");
  /** Stored objects of the binlog archive and of the backups' parts, relative to the repository. */
  const binlogObjects = () =>
    (readdirSync(join(repoDir(), "binlogs"), { recursive: true }) as string[])
      .filter((f) => f.endsWith(".age"))
      .map((f) => `binlogs/${f}`)
      .sort();
  const partObjects = () =>
    (readdirSync(join(repoDir(), "backups"), { recursive: true }) as string[])
      .filter((f) => /part-\d+/.test(f))
      .map((f) => `backups/${f}`)
      .sort();
  const indexEntries = () =>
    readdirSync(join(repoDir(), "binlogs/index"))
      .sort()
      .map((f) => JSON.parse(readFileSync(join(repoDir(), "binlogs/index", f), "utf8")))
      .filter((e) => e.kind === "file") as { key: string; recipients?: string[] }[];
  const opens = (identity: string, object: string) =>
    spawnSync("age", ["-d", "-i", identity, "-o", "/dev/null", join(repoDir(), object)]).status === 0;
  let target = "";

  const writeRows = async (n: number) => {
    const c = await cluster.connect(1);
    for (let i = 0; i < n; i++) await c.query("INSERT INTO rot.t (v) VALUES (?)", [i]);
    const [[pos]] = (await c.query("SELECT @@gtid_binlog_pos AS p")) as unknown as [[{ p: string }]];
    await c.end();
    return pos.p;
  };
  const pitrWith = async (identity: string) => {
    const r = await run("restore-test", "--to-gtid", target, "--identity", identity, "--json");
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = JSON.parse(r.stdout);
    assert.equal(out.passed, true);
    assert.ok(out.timings.replay > 0, "binlogs were replayed");
  };

  it(
    "a backup, then writes archived in two binlog files; the backup copied to an append-only repository",
    LONG,
    async () => {
      cfg = editConfig(cluster.configPath, join(cluster.dir, "rotate.yaml"), (c) => {
        c.repositories[0].retention = { keepLast: 10 };
        c.repositories.push({
          name: "offsite",
          storage: { type: "local", path: "offsite" },
          appendOnly: true,
        });
      });
      const c = await cluster.connect(1);
      await c.query("CREATE DATABASE rot; CREATE TABLE rot.t (id INT AUTO_INCREMENT PRIMARY KEY, v INT)");
      await c.end();
      assert.equal((await run("init")).code, 0);
      let r = await run("backup", "--full", "--json");
      assert.equal(r.code, 0, r.stderr);
      await writeRows(20);
      r = await run("binlog", "archive");
      assert.equal(r.code, 0, r.stderr);
      target = await writeRows(20);
      r = await run("binlog", "archive");
      assert.equal(r.code, 0, r.stderr);
      assert.ok(indexEntries().length >= 2, "two archived binlog files");
      r = await run("copy", "--to", "offsite");
      assert.equal(r.code, 0, r.stderr);
    },
  );

  it("add-recipient + rotate: point-in-time recovery works with the new identity alone", LONG, async () => {
    assert.equal((await cli(["key", "generate", "--out", key("b")])).code, 0);
    let r = await run("key", "add-recipient", recipientOf(key("b")));
    assert.equal(r.code, 0, r.stderr);
    r = await run("key", "rotate", "--identity", keyA(), "--json");
    assert.equal(r.code, 0, r.stderr);
    const [local, offsite] = JSON.parse(r.stdout).repositories;
    assert.equal(local.repository, "local");
    assert.equal(local.backups, 1);
    assert.equal(local.binlogs, indexEntries().length);
    // The append-only copy is reported, not a reason to stop.
    assert.equal(offsite.appendOnly, true);
    assert.equal(offsite.stillReadable.backups.length, 1);
    for (const e of indexEntries())
      assert.deepEqual(e.recipients?.sort(), [recipientOf(keyA()), recipientOf(key("b"))].sort());
    for (const o of binlogObjects()) assert.ok(opens(key("b"), o), `${o} opens with the new identity`);
    await pitrWith(key("b"));
  });

  it("remove-recipient + rotate: the removed key opens no archived binlog and no part", LONG, async () => {
    let r = await run("key", "remove-recipient", recipientOf(keyA()));
    assert.equal(r.code, 0, r.stderr);
    const binlogsBefore = binlogObjects();
    r = await run("key", "rotate", "--identity", key("b"));
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      /repository local: 1 backup\(s\) re-keyed .*, \d+ archived binlog\(s\) re-keyed, nothing there is readable/,
    );
    assert.match(
      r.stdout,
      new RegExp(
        `repository offsite: append-only, not rotated: 1 backup\\(s\\) and 0 archived binlog\\(s\\) stay readable by ${recipientOf(keyA())}: the repository is append-only`,
      ),
    );
    const binlogsAfter = binlogObjects();
    assert.equal(
      binlogsAfter.length,
      binlogsBefore.length,
      "one object per file: the old generations are gone",
    );
    assert.ok(
      binlogsAfter.every((o) => !binlogsBefore.includes(o)),
      "every file re-wrapped into a new object",
    );
    for (const o of [...binlogsAfter, ...partObjects()]) {
      assert.equal(opens(keyA(), o), false, `${o} must not open with the removed key`);
      assert.ok(opens(key("b"), o), `${o} opens with the remaining identity`);
    }
    r = await run("verify", "--read-data", "--identity", key("b"));
    assert.equal(r.code, 0, r.stderr);
  });

  it(
    "a rotation killed while it holds the lock and prune tries to run: nothing half-written; the next run completes",
    LONG,
    async () => {
      assert.equal((await cli(["key", "generate", "--out", key("c")])).code, 0);
      let r = await run("key", "add-recipient", recipientOf(key("c")));
      assert.equal(r.code, 0, r.stderr);
      // The last archived file becomes a FIFO: the rotation blocks on it with everything before it done.
      const last = join(repoDir(), indexEntries().at(-1)!.key);
      renameSync(last, `${last}.real`);
      execFileSync("mkfifo", ["-m", "0600", last]);
      const rotating = startCli(["--config", cfg, "key", "rotate", "--identity", key("b")]);
      try {
        while (!waitsOnFifo(rotating.child.pid!)) {
          assert.equal(rotating.child.exitCode, null, "the rotation ended before it reached the last binlog");
          await delay(50);
        }
        r = await run("prune");
        assert.equal(r.code, 2);
        const errors = r.stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
        assert.equal(errors.length, 1, r.stderr);
        assert.match(errors[0]!, /is locked by "key rotate" \(pid \d+ on /);
      } finally {
        rotating.child.kill("SIGKILL");
        await rotating.result;
        rmSync(last);
        renameSync(`${last}.real`, last);
      }
      // Half-rotated, but whole: every manifest and index entry names objects that exist and match.
      r = await run("verify", "--read-data", "--identity", key("b"));
      assert.equal(r.code, 0, r.stderr);
      const entries = indexEntries();
      assert.ok(
        entries.at(-1)!.recipients!.length === 1 && entries[0]!.recipients!.length === 2,
        "killed half way",
      );
      // The dead rotation's lock does not hold prune up (its process is gone).
      r = await run("prune");
      assert.equal(r.code, 0, r.stderr);
      // What a rotation killed between its swap and its deletes leaves: the old generation beside
      // the new one. Planted here for a part and a binlog; the next rotation removes them.
      const part = partObjects()[0]!;
      const oldPart = part.replace(/\.g\d+\.age$/, ".age");
      copyFileSync(join(repoDir(), part), join(repoDir(), oldPart));
      const binlog = indexEntries()[0]!.key; // prune may have removed the oldest files
      const oldBinlog = binlog.replace(/\.g\d+\.age$/, ".age");
      copyFileSync(join(repoDir(), binlog), join(repoDir(), oldBinlog));
      r = await run("key", "rotate", "--identity", key("b"), "--json");
      assert.equal(r.code, 0, r.stderr);
      const local = JSON.parse(r.stdout).repositories[0];
      assert.ok(local.leftovers >= 2, `leftovers removed: ${local.leftovers}`);
      assert.ok(!partObjects().includes(oldPart) && !binlogObjects().includes(oldBinlog));
      for (const e of indexEntries()) assert.equal(e.recipients?.length, 2);
      for (const o of [...binlogObjects(), ...partObjects()])
        assert.ok(opens(key("c"), o), `${o} opens with C`);
      await pitrWith(key("c"));
    },
  );
});
