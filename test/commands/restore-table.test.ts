// restore-table against a real 3-node cluster: a table dropped at a known second while other tables
// keep taking writes comes back with exactly the rows committed before that second, under a new
// name, on every node; the same for a whole schema from an incremental chain, and with the binlog
// archive continuing on another node. Every bad input is one line and changes nothing.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync } from "node:fs";
import { mkdir, mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import type { RestoreTableResult } from "../../src/commands/restore-table.ts";
import { loadConfig } from "../../src/config/load.ts";
import { monitorSettingsOf } from "../../src/config/monitoring.ts";
import type { Connection } from "../../src/galera/connection.ts";
import { openCatalog } from "../../src/monitor/catalog.ts";
import { stopNode } from "../../src/sandbox/cluster.ts";
import { sleep } from "../../src/util/proc.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

const LONG = { timeout: 600_000 };

type Rows<T> = [T[], unknown];

describe("restore-table", () => {
  const cluster = useCluster({ nodes: 3 });
  let work = "";
  let writer: Connection;
  let orders = 0; // rows written to shop.orders before it was dropped
  let suffix1 = "";
  let dropTarget = ""; // --to-time of the first drop: inside the recoverable window

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strongbox-restore-table-test-"));
  });
  after(async () => {
    await writer?.end().catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  });

  const sb = (args: string[], config = cluster.configPath) => cli(["--config", config, ...args]);

  /** restore-table through the real CLI, --json; the parsed result or the error's code and message. */
  const restoreTable = async (args: string[], config?: string) => {
    const r = await sb(["restore-table", ...args, "--json"], config);
    const doc = JSON.parse(r.stdout || "{}") as RestoreTableResult & {
      error?: { code: string; message: string };
    };
    return { code: r.code, stderr: r.stderr, result: doc, error: doc.error };
  };

  const serverNow = async (): Promise<number> => {
    const [[r]] = (await writer.query("SELECT UNIX_TIMESTAMP(NOW(6)) AS x")) as unknown as Rows<{
      x: string;
    }>;
    return Number(r!.x);
  };

  /** Keeps writing one row a transaction into `table` until stopped: the cluster stays busy. */
  const keepWriting = (table: string) => {
    let stop = false;
    let n = 0;
    const done = (async () => {
      const c = await cluster.connect(2);
      try {
        while (!stop) {
          await c.query(`INSERT INTO ${table} (ts) VALUES (NOW(6))`);
          n++;
          await sleep(20);
        }
      } finally {
        await c.end();
      }
    })();
    return {
      stop: async () => {
        stop = true;
        await done;
        return n;
      },
    };
  };

  /** One query on node k with wsrep_sync_wait, so it sees every write committed in the cluster. */
  const onNode = async <T>(k: number, sql: string): Promise<T[]> => {
    const c = await cluster.connect(k);
    try {
      await c.query("SET SESSION wsrep_sync_wait = 1");
      const [rows] = (await c.query(sql)) as unknown as Rows<T>;
      return rows;
    } finally {
      await c.end();
    }
  };

  const summary = async (k: number, table: string) => {
    const [r] = await onNode<{ n: string; d: string; lo: string | null; hi: string | null }>(
      k,
      `SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MIN(seq) AS lo, MAX(seq) AS hi FROM ${table}`,
    );
    return { n: Number(r!.n), distinct: Number(r!.d), lo: Number(r!.lo), hi: Number(r!.hi) };
  };

  /** Every user table in the cluster with its row count: what "nothing changed" compares. */
  const clusterState = async (): Promise<string> => {
    const tables = await onNode<{ s: string; t: string }>(
      1,
      "SELECT TABLE_SCHEMA AS s, TABLE_NAME AS t FROM information_schema.TABLES WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
    );
    const out: string[] = [];
    for (const x of tables) {
      const [r] = await onNode<{ n: string }>(1, `SELECT COUNT(*) AS n FROM \`${x.s}\`.\`${x.t}\``);
      out.push(`${x.s}.${x.t}=${r!.n}`);
    }
    return out.join(" ");
  };

  const archive = async () => {
    const r = await sb(["binlog", "archive", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout) as { node: string };
  };

  it("brings a dropped table back, exactly as it was before the drop, on every node", LONG, async () => {
    writer = await cluster.connect(1);
    await writer.query(
      "CREATE DATABASE shop;" +
        "CREATE TABLE shop.orders (id INT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL, note VARCHAR(40));" +
        "CREATE TABLE shop.audit (id INT AUTO_INCREMENT PRIMARY KEY, what VARCHAR(40));" +
        "CREATE TRIGGER shop.orders_ai AFTER INSERT ON shop.orders FOR EACH ROW INSERT INTO shop.audit (what) VALUES (CONCAT('order ', NEW.seq));" +
        "CREATE TABLE shop.events (id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL);" +
        "CREATE DATABASE crm;" +
        "CREATE TABLE crm.customers (id INT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL, name VARCHAR(40));" +
        "CREATE TABLE crm.notes (id INT AUTO_INCREMENT PRIMARY KEY, ts DATETIME(6) NOT NULL);" +
        // Written schema-qualified: restored into crm_r1 it must land there, not in crm.
        "CREATE TRIGGER crm.customers_bi BEFORE INSERT ON crm.customers FOR EACH ROW SET NEW.name = LOWER(NEW.name);",
    );
    assert.equal((await sb(["init"])).code, 0);
    const b = await sb(["backup", "--full", "--json"]);
    assert.equal(b.code, 0, b.stderr);

    const busy = keepWriting("shop.events");
    for (let i = 0; i < 40; i++) {
      orders++;
      await writer.query("INSERT INTO shop.orders (seq, note) VALUES (?, ?)", [orders, `order ${orders}`]);
      await sleep(20);
    }
    await archive();
    // Binlog event times have whole seconds: more than one between the last row and the drop.
    await sleep(1600);
    const dropAt = await serverNow();
    await writer.query("DROP TABLE shop.orders");
    await sleep(1500);
    await busy.stop();
    await archive();
    const [events] = await onNode<{ n: string; last: string }>(
      1,
      "SELECT COUNT(*) AS n, MAX(UNIX_TIMESTAMP(ts)) AS last FROM shop.events",
    );
    assert.ok(Number(events!.last) > dropAt, "the other table took writes after the drop");
    const [audit] = await onNode<{ n: string }>(1, "SELECT COUNT(*) AS n FROM shop.audit");

    const to = new Date(dropAt * 1000).toISOString();
    dropTarget = to;
    const r = await restoreTable(["shop.orders", "--to-time", to, "--into-node", "node1"]);
    assert.equal(r.code, 0, r.stderr + JSON.stringify(r.error));
    const [t] = r.result.tables;
    suffix1 = t!.target.replace("shop.orders", "");
    assert.match(suffix1, /^_restored_\d{8}_\d{6}$/);
    assert.equal(t!.source, "shop.orders");
    assert.equal(t!.scratch.rows, orders);
    assert.deepEqual(t!.loaded, t!.scratch, "row count and checksum match the scratch server");
    assert.equal(t!.match, true);
    assert.deepEqual(t!.triggers, [`orders_ai${suffix1}`]);
    assert.equal(r.result.chain.length, 1);
    for (const k of [1, 2, 3]) {
      const got = await summary(k, `shop.orders${suffix1}`);
      assert.deepEqual(got, { n: orders, distinct: orders, lo: 1, hi: orders }, `node${k}`);
      const [ev] = await onNode<{ n: string }>(k, "SELECT COUNT(*) AS n FROM shop.events");
      assert.equal(ev!.n, events!.n, `node${k}: the other table's later rows are untouched`);
      const [trg] = await onNode<{ n: string }>(
        k,
        `SELECT COUNT(*) AS n FROM information_schema.TRIGGERS WHERE TRIGGER_NAME = 'orders_ai${suffix1}'`,
      );
      assert.equal(trg!.n, "1", `node${k}: the trigger came back under the new name`);
    }
    const [audit2] = await onNode<{ n: string }>(1, "SELECT COUNT(*) AS n FROM shop.audit");
    assert.equal(audit2!.n, audit!.n, "loading fired no trigger");
    assert.ok(
      ["restore", "rollForward", "extract", "load", "verify", "total"].every(
        (k) => typeof r.result.timings[k] === "number",
      ),
    );

    const loaded = await loadConfig(cluster.configPath);
    const catalog = openCatalog(monitorSettingsOf(loaded).catalogPath);
    try {
      const run = catalog.lastRun("restore-table", "local");
      assert.equal(run?.result, "ok");
      assert.equal(run?.node, "node1");
      assert.ok((run?.durationMs ?? 0) > 0, "recorded with its duration");
      assert.deepEqual((run?.details as { tables?: string[] } | null)?.tables, [`shop.orders${suffix1}`]);
    } finally {
      catalog.close();
    }
  });

  it("restores a whole schema from an incremental chain into a new schema", LONG, async () => {
    const inc = await sb(["backup", "--incremental", "--json"]);
    assert.equal(inc.code, 0, inc.stderr);
    const busy = keepWriting("crm.notes");
    let seq = 0;
    for (let i = 0; i < 30; i++) {
      seq++;
      await writer.query("INSERT INTO crm.customers (seq, name) VALUES (?, ?)", [seq, `c${seq}`]);
      await sleep(20);
    }
    const before = seq;
    await sleep(1600);
    const target = await serverNow();
    await sleep(1100);
    // Later rows, then the table emptied by mistake: neither may come back.
    for (let i = 0; i < 10; i++) {
      seq++;
      await writer.query("INSERT INTO crm.customers (seq, name) VALUES (?, ?)", [seq, `c${seq}`]);
    }
    await writer.query("DELETE FROM crm.customers");
    await sleep(300);
    await busy.stop();
    await archive();
    const [notes] = await onNode<{ n: string }>(1, "SELECT COUNT(*) AS n FROM crm.notes");

    const to = new Date(target * 1000).toISOString();
    const r = await restoreTable([
      "--schema",
      "crm",
      "--to-time",
      to,
      "--into-node",
      "node2",
      "--rename",
      "_r1",
    ]);
    assert.equal(r.code, 0, r.stderr + JSON.stringify(r.error));
    assert.equal(r.result.chain.length, 2, "the full and the incremental");
    assert.deepEqual(
      r.result.tables.map((t) => [t.source, t.target, t.match]),
      [
        ["crm.customers", "crm_r1.customers", true],
        ["crm.notes", "crm_r1.notes", true],
      ],
    );
    for (const k of [1, 2, 3]) {
      assert.deepEqual(await summary(k, "crm_r1.customers"), {
        n: before,
        distinct: before,
        lo: 1,
        hi: before,
      });
      const [n] = await onNode<{ n: string; last: string }>(
        k,
        "SELECT COUNT(*) AS n, MAX(UNIX_TIMESTAMP(ts)) AS last FROM crm_r1.notes",
      );
      assert.ok(Number(n!.n) > 0 && Number(n!.last) < target, `node${k}: notes only from before the target`);
      const [live] = await onNode<{ n: string }>(k, "SELECT COUNT(*) AS n FROM crm.notes");
      assert.equal(live!.n, notes!.n, `node${k}: the live schema is untouched`);
      const [empty] = await onNode<{ n: string }>(k, "SELECT COUNT(*) AS n FROM crm.customers");
      assert.equal(empty!.n, "0");
      const triggers = await onNode<{ s: string; t: string; n: string }>(
        k,
        "SELECT TRIGGER_SCHEMA AS s, EVENT_OBJECT_TABLE AS t, TRIGGER_NAME AS n FROM information_schema.TRIGGERS WHERE TRIGGER_SCHEMA LIKE 'crm%' ORDER BY 1",
      );
      assert.deepEqual(
        triggers.map((x) => `${x.s}.${x.t}.${x.n}`),
        ["crm.customers.customers_bi", "crm_r1.customers.customers_bi"],
        `node${k}: the trigger came back in the restored schema, the live one is untouched`,
      );
    }
  });

  it("refuses bad input in one line and changes nothing in the cluster", LONG, async () => {
    const state = await clusterState();
    const now = dropTarget;
    const oneLine = (r: { stderr: string; code: number | null }) => {
      assert.notEqual(r.code, 0);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
    };
    const refused = async (args: string[], code: string, config?: string) => {
      const r = await restoreTable(args, config);
      oneLine(r);
      assert.equal(r.error?.code, code, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(await clusterState(), state, `${args.join(" ")} changed nothing`);
      return r.error!.message;
    };

    // A name that would collide: the table restored by the first test, under the same suffix.
    const collides = await refused(
      ["shop.orders", "--to-time", now, "--into-node", "node1", "--rename", suffix1],
      "RESTORE_TABLE_EXISTS",
    );
    assert.match(collides, new RegExp(`shop\\.orders${suffix1} already exists`));
    await refused(
      ["--schema", "crm", "--to-time", now, "--into-node", "node1", "--rename", "_r1"],
      "RESTORE_TABLE_EXISTS",
    );
    // Outside the recoverable window: before the first backup, after the archive's end.
    await refused(
      ["shop.orders", "--to-time", "2020-01-01T00:00:00Z", "--into-node", "node1"],
      "PITR_NO_BACKUP",
    );
    await refused(
      ["shop.orders", "--to-time", new Date(Date.now() + 3_600_000).toISOString(), "--into-node", "node1"],
      "PITR_NOT_COVERED",
    );
    // A table that did not exist then (the restore runs; the cluster is not touched).
    const missing = await refused(
      ["shop.nothere", "--to-time", now, "--into-node", "node1"],
      "RESTORE_TABLE_MISSING",
    );
    assert.match(missing, /shop\.nothere did not exist at/);

    // A node that is not Synced.
    const n3 = await cluster.connect(3);
    await n3.query("SET GLOBAL wsrep_desync = ON");
    try {
      const notSynced = await refused(
        ["shop.orders", "--to-time", now, "--into-node", "node3"],
        "NODE_NOT_SYNCED",
      );
      assert.match(notSynced, /node3 is not usable/);
    } finally {
      await n3.query("SET GLOBAL wsrep_desync = OFF");
      await n3.end();
    }

    // No identity to decrypt with.
    const noIdentity = editConfig(cluster.configPath, join(cluster.dir, "no-identity.yaml"), (c) => {
      delete c.keys.identity;
    });
    await refused(["shop.orders", "--to-time", now, "--into-node", "node1"], "IDENTITY_NEEDED", noIdentity);

    // Not enough space for the scratch restore: checked before anything is written there.
    const tiny = join(work, "tiny");
    await mkdir(tiny);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", tiny]);
    try {
      const small = editConfig(cluster.configPath, join(cluster.dir, "tiny-scratch.yaml"), (c) => {
        c.restoreTest = { ...c.restoreTest, scratchDir: tiny };
      });
      const space = await refused(
        ["shop.orders", "--to-time", now, "--into-node", "node1", "--rename", "_space"],
        "TARGET_NO_SPACE",
        small,
      );
      assert.match(space, /free; restoring .* into scratch space needs about/);
      assert.deepEqual(
        readdirSync(tiny).flatMap((d) => readdirSync(join(tiny, d))),
        [],
        "nothing left in the scratch directory",
      );
    } finally {
      execFileSync("umount", [tiny]);
    }

    // --replace into a table whose own triggers would fire on every replaced row.
    const triggers = await refused(
      ["shop.orders", "--to-time", now, "--into-node", "node1", "--rename", suffix1, "--replace"],
      "RESTORE_TABLE_REPLACE",
    );
    assert.match(triggers, new RegExp(`has trigger\\(s\\) orders_ai${suffix1} that would fire`));

    // An existing --out file is never overwritten.
    const exists = await refused(
      ["shop.orders", "--to-time", now, "--out", cluster.configPath],
      "RESTORE_OUT_EXISTS",
    );
    assert.match(exists, /already exists/);
  });

  it("writes an age-encrypted dump with --out that loads with the standard tools", LONG, async () => {
    const file = join(work, "orders.sql.age");
    const r = await restoreTable(["shop.orders", "--to-time", dropTarget, "--out", file]);
    assert.equal(r.code, 0, r.stderr + JSON.stringify(r.error));
    assert.deepEqual(r.result.into, { file });
    assert.equal(r.result.tables[0]!.scratch.rows, orders);
    assert.ok(existsSync(file));
    const sql = execFileSync("age", ["-d", "-i", join(cluster.dir, "keys/identity.txt"), file]).toString();
    assert.match(sql, /USE `shop`;[\s\S]*CREATE TABLE `orders`/);
    assert.match(sql, /TRIGGER `orders_ai`/);
    assert.equal((sql.match(/\(\d+,\d+,'order \d+'\)/g) ?? []).length, orders, "every row is in the dump");
    // Loaded with the plain client, it brings the table back under its own name.
    execFileSync("mariadb", [`--socket=${cluster.nodes[0]!.socket}`, "--user=root"], { input: sql });
    for (const k of [1, 2, 3]) {
      assert.deepEqual(await summary(k, "shop.orders"), { n: orders, distinct: orders, lo: 1, hi: orders });
    }
  });

  it("rolls forward across the archive continuing on another node", LONG, async () => {
    await writer.query(
      "CREATE TABLE shop.stock (id INT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL); INSERT INTO shop.stock (seq) VALUES (1), (2), (3)",
    );
    const inc = await sb(["backup", "--incremental", "--json"]);
    assert.equal(inc.code, 0, inc.stderr);
    const atBackup = JSON.parse(inc.stdout) as { id: string; gtid: string };
    assert.equal((await archive()).node, "node3", "the backup node archives");
    await stopNode(cluster.dir, 3);
    for (let seq = 4; seq <= 20; seq++) await writer.query("INSERT INTO shop.stock (seq) VALUES (?)", [seq]);
    await sleep(1600);
    const dropAt = await serverNow();
    await writer.query("DROP TABLE shop.stock");
    await sleep(1100);
    assert.notEqual((await archive()).node, "node3", "archiving continued on another node");

    const to = new Date(dropAt * 1000).toISOString();
    const r = await restoreTable([
      "shop.stock",
      "--to-time",
      to,
      "--into-node",
      "node1",
      "--rename",
      "_back",
    ]);
    assert.equal(r.code, 0, r.stderr + JSON.stringify(r.error));
    assert.equal(r.result.tables[0]!.match, true);
    assert.equal(r.result.chain.length, 3, "the full and two incrementals");
    assert.equal(r.result.backup, atBackup.id);
    for (const k of [1, 2]) {
      assert.deepEqual(
        await summary(k, "shop.stock_back"),
        { n: 20, distinct: 20, lo: 1, hi: 20 },
        `node${k}`,
      );
    }

    // Someone edits the restored copy; --replace puts the restored rows back into it, in place.
    await writer.query(
      "DELETE FROM shop.stock_back WHERE seq > 10; UPDATE shop.stock_back SET seq = seq + 100",
    );
    const again = await restoreTable([
      "shop.stock",
      "--to-time",
      to,
      "--into-node",
      "node2",
      "--rename",
      "_back",
      "--replace",
    ]);
    assert.equal(again.code, 0, again.stderr + JSON.stringify(again.error));
    assert.equal(again.result.tables[0]!.replaced, true);
    assert.equal(again.result.tables[0]!.match, true);
    for (const k of [1, 2]) {
      assert.deepEqual(
        await summary(k, "shop.stock_back"),
        { n: 20, distinct: 20, lo: 1, hi: 20 },
        `node${k}: replaced`,
      );
    }

    // By backup ID: the table as that backup holds it, no roll-forward.
    const byId = await restoreTable([
      "shop.stock",
      atBackup.id,
      "--into-node",
      "node1",
      "--rename",
      "_at_backup",
    ]);
    assert.equal(byId.code, 0, byId.stderr + JSON.stringify(byId.error));
    assert.equal(byId.result.transactions, 0);
    assert.equal(byId.result.lastGtid, atBackup.gtid);
    for (const k of [1, 2]) {
      assert.deepEqual(await summary(k, "shop.stock_at_backup"), { n: 3, distinct: 3, lo: 1, hi: 3 });
    }
  });
});
