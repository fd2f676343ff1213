// The minimal grants proved on a real node: a fresh account made by `user create` with exactly the
// printed grants runs physical and logical backups (and a restore-test) through the real CLI; each
// grant revoked alone makes the backup fail with a line naming it — or, where MariaDB fails
// silently (TRIGGER, EVENT for the inventory), the loss is shown and the grant check names it.
import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { streamFollow } from "../../src/binlog/follow.ts";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import { clusterNodes, identitiesOf, recipientsOf, signingKeyOf } from "../../src/config/context.ts";
import type { StrongboxError } from "../../src/errors.ts";
import { type Connection, connectNode } from "../../src/galera/connection.ts";
import { decodeBackup } from "../../src/restore/extract.ts";
import { repositorySource } from "../../src/restore/read.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import {
  type BackupMethod,
  checkAccountGrants,
  missingGrantsMessage,
  parseGrants,
  preflightBackupGrants,
  requiredPrivileges,
} from "../../src/security/grants.ts";
import { explainPrivilegeError } from "../../src/security/privilege-errors.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { adminCli } from "./cli.ts";

const USER = "strongbox_min";
const ACCOUNT = `'${USER}'@'localhost'`;

interface BackupOutcome {
  code: number | null;
  id?: string;
  /** The error line plus the tool's stderr tail, as --json reports them. */
  errorText: string;
}

describe("least-privilege backup account", () => {
  const cluster = useCluster({ nodes: 1 });
  let cfg = "";
  let admin: Connection;
  /** user grants / user create through the CLI, with the config of the minimal account (and the sandbox's admin). */
  const user = async (args: string[]) => {
    const r = await adminCli(["--config", cfg, ...args]);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout;
  };

  const backup = async (method: BackupMethod): Promise<BackupOutcome> => {
    const r = await cli([
      "--config",
      cfg,
      "--json",
      "backup",
      method === "physical" ? "--full" : "--logical",
    ]);
    const out = JSON.parse(r.stdout || "{}");
    if (r.code === 0) return { code: 0, id: out.id, errorText: "" };
    const e = out.error ?? {};
    return { code: r.code, errorText: `${e.message ?? r.stderr}\n${e.details?.stderrTail ?? ""}` };
  };
  const inventoryOf = async (id: string) => {
    const r = await cli(["--config", cfg, "--json", "show", id]);
    assert.equal(r.code, 0, r.stderr);
    return JSON.parse(r.stdout).details.inventory as { triggers: number; events: number; tables: unknown[] };
  };
  const dumpText = async (id: string): Promise<string> => {
    const { loaded, repo, close } = await openConfiguredRepository(cfg);
    try {
      let text = "";
      const sink = new Writable({
        write(chunk: Buffer, _e, cb) {
          text += chunk.toString("utf8");
          cb();
        },
      });
      await decodeBackup(repositorySource(repo, await identitiesOf(loaded)), await repo.get(id), {
        sink: "consumer",
        consumer: sink,
      });
      return text;
    } finally {
      await close();
    }
  };
  const asMinimal = async () => {
    const password = readFileSync(join(cluster.dir, "secrets", `${USER}.password`), "utf8").trim();
    const n = cluster.nodes[0]!;
    return connectNode(
      { name: n.name, host: "127.0.0.1", port: n.port, socket: n.socket },
      { user: USER, password },
    );
  };

  before(async () => {
    admin = await cluster.connect(1);
    // Schemas, a view, a trigger, a routine and an event: everything mariadb-dump needs a grant for.
    await loadDataset(admin, { sizeBytes: 2_000_000, seed: 11 });
    const init = await cli(["--config", cluster.configPath, "init"]);
    assert.equal(init.code, 0, init.stderr);
    cfg = editConfig(cluster.configPath, join(cluster.dir, "minimal.yaml"), (c) => {
      c.cluster.credentials.backup = { user: USER, passwordFile: `secrets/${USER}.password` };
    });
  });
  after(async () => {
    await admin?.end();
  });

  it("user grants prints the minimal statements, with why each is needed", async () => {
    const text = await user(["user", "grants"]);
    assert.match(
      text,
      /^GRANT SELECT, RELOAD, PROCESS, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON \*\.\* TO 'strongbox_min'@'localhost';$/m,
    );
    assert.match(text, /^-- {3}BINLOG MONITOR {2}mariabackup: SHOW MASTER STATUS/m);
    const json = JSON.parse(await user(["--json", "user", "grants", "--method", "logical"]));
    assert.deepEqual(json.statements, [
      "GRANT SELECT, SHOW VIEW, EVENT, TRIGGER ON *.* TO 'strongbox_min'@'localhost';",
    ]);
    assert.ok(json.notNeeded.some((n: { privilege: string }) => n.privilege === "LOCK TABLES"));
  });

  it("user create makes the account with exactly those grants and a 0600 password file; a re-run changes nothing", async () => {
    const out = await user(["user", "create"]);
    assert.match(
      out,
      /created 'strongbox_min'@'localhost' \(password in .*strongbox_min\.password, mode 0600\)/,
    );
    const file = join(cluster.dir, "secrets", `${USER}.password`);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    const password = readFileSync(file, "utf8").trim();
    assert.match(password, /^[A-Za-z0-9_-]{32}$/, "24 random bytes, base64url");
    assert.ok(!out.includes(password), "the password is never printed");
    const [rows] = (await admin.query("SHOW GRANTS FOR ?@?", [USER, "localhost"])) as unknown as [
      Record<string, string>[],
    ];
    const grants = parseGrants(rows.map((r) => Object.values(r)[0]!));
    assert.deepEqual(
      grants.flatMap((x) => x.privileges).sort(),
      requiredPrivileges(["physical", "logical"])
        .map((p) => p.privilege)
        .sort(),
    );
    const [cu] = (await admin.query("SHOW CREATE USER ?@?", [USER, "localhost"])) as unknown as [
      Record<string, string>[],
    ];
    assert.match(Object.values(cu[0]!)[0]!, /IDENTIFIED BY PASSWORD '\*[0-9A-F]{40}'/);

    const again = await user(["user", "create"]);
    assert.match(
      again,
      /'strongbox_min'@'localhost' exists already \(password authentication; password unchanged\)/,
    );
    assert.match(again, /has every grant physical and logical backups need/);
    assert.equal(readFileSync(file, "utf8").trim(), password, "the password file is left alone");
  });

  it("user create refuses to overwrite a password file of another account, and makes unix_socket accounts", async () => {
    const refused = await adminCli(["--config", cfg, "user", "create", "--user", "someone_else"]);
    assert.equal(refused.code, 2);
    assert.match(
      refused.stderr,
      /^strongbox: error: password file .*strongbox_min\.password exists but account 'someone_else' does not: refusing to overwrite it/m,
    );
    const out = JSON.parse(
      await user(["--json", "user", "create", "--user", "strongbox_sock", "--socket-auth"]),
    );
    assert.equal(out.hosts[0].auth, "unix_socket");
    const [cu] = (await admin.query("SHOW CREATE USER ?@?", ["strongbox_sock", "localhost"])) as unknown as [
      Record<string, string>[],
    ];
    assert.match(Object.values(cu[0]!)[0]!, /IDENTIFIED VIA unix_socket/);
    await admin.query("DROP USER 'strongbox_sock'@'localhost'");
  });

  let physicalId = "";
  it("physical and logical backups succeed with exactly those grants, and the physical one passes restore-test", async () => {
    const check = await asMinimal();
    const own = await checkAccountGrants(check, ["physical", "logical"]);
    assert.equal(await preflightBackupGrants(check, ["physical", "logical"]), `'${USER}'@'localhost'`);
    await check.end();
    assert.deepEqual([own.missing, own.extra], [[], []]);
    const p = await backup("physical");
    assert.equal(p.code, 0, p.errorText);
    physicalId = p.id!;
    const l = await backup("logical");
    assert.equal(l.code, 0, l.errorText);
    const inv = await inventoryOf(physicalId);
    assert.equal(inv.triggers, 1);
    assert.equal(inv.events, 1);
    assert.ok(/TRIGGER shop\.orders_status_audit /.test(await dumpText(l.id!)), "the dump has the trigger");
    const t = await cli(["--config", cfg, "restore-test", physicalId]);
    assert.equal(t.code, 0, t.stdout + t.stderr);
  });

  // Where a grant is missing, what each method does. "fails": the backup fails and its error names
  // the privilege. "silent": it succeeds but loses something, which only the grant check catches.
  const expected: Record<string, Partial<Record<BackupMethod, "fails" | "silent">>> = {
    SELECT: { physical: "fails", logical: "fails" },
    RELOAD: { physical: "fails" },
    PROCESS: { physical: "fails" },
    "BINLOG MONITOR": { physical: "fails" },
    "SHOW VIEW": { logical: "fails" },
    EVENT: { physical: "silent", logical: "fails" },
    TRIGGER: { physical: "silent", logical: "silent" },
  };

  for (const need of requiredPrivileges(["physical", "logical"])) {
    const p = need.privilege;
    it(`without ${p} alone: ${Object.entries(expected[p] ?? {})
      .map(([m, how]) => `${m} ${how}`)
      .join(", ")}`, async (t) => {
      await admin.query(`REVOKE ${p} ON *.* FROM ${ACCOUNT}`);
      try {
        const check = await asMinimal();
        const own = await checkAccountGrants(check, ["physical", "logical"]);
        await check.end();
        assert.deepEqual(own.missing, [p]);
        assert.match(missingGrantsMessage(own.missing, own.account), new RegExp(`lacks the ${p} privilege`));
        const pre = await asMinimal();
        await assert.rejects(
          preflightBackupGrants(pre, ["physical", "logical"]),
          (e: StrongboxError) =>
            e.code === "BACKUP_PRIVILEGES" &&
            new RegExp(`lacks the ${p} privilege.*: GRANT ${p} ON \\*\\.\\* TO '${USER}'@'localhost';$`).test(
              e.message,
            ),
        );
        await pre.end();
        for (const method of ["physical", "logical"] as const) {
          const how = expected[p]?.[method];
          const r = await backup(method);
          // Backups run preflightBackupGrants: what the tools would lose silently fails up front too.
          if (how === "fails" || how === "silent") {
            assert.notEqual(r.code, 0, `${method} backup without ${p} must fail`);
            const line = explainPrivilegeError(r.errorText, ACCOUNT);
            assert.ok(line, `a privilege error in: ${r.errorText.slice(-600)}`);
            assert.doesNotMatch(line, /\n/);
            t.diagnostic(`${method}: ${line}`);
            assert.match(
              line,
              new RegExp(`lacks the ${p} privilege.*: GRANT ${p} ON \\*\\.\\* TO '${USER}'@'localhost';$`),
            );
            continue;
          }
          // Not needed by this method: the backup succeeds and is complete.
          assert.equal(r.code, 0, `${method} without ${p}: ${r.errorText}`);
        }
      } finally {
        await admin.query(`GRANT ${p} ON *.* TO ${ACCOUNT}`);
      }
    });
  }

  it("binlog archiving streams with exactly REPLICATION SLAVE and BINLOG MONITOR; without either it fails with a line naming it", async () => {
    const json = JSON.parse(
      await user(["--json", "user", "grants", "--method", "binlog", "--user", "strongbox_binlog"]),
    );
    assert.deepEqual(json.statements, [
      "GRANT REPLICATION SLAVE, BINLOG MONITOR ON *.* TO 'strongbox_binlog'@'localhost';",
    ]);
    const account = "'strongbox_binlog'@'localhost'";
    const password = "binlog-only-0123456789";
    await admin.query(`CREATE USER ${account} IDENTIFIED BY '${password}'`);
    await admin.query(json.statements[0]);
    const { loaded, repo, close } = await openConfiguredRepository(cfg);
    const stream = async (until: (s: { durable: number; errors: StrongboxError[] }) => boolean) => {
      const ac = new AbortController();
      const state = { durable: 0, errors: [] as StrongboxError[] };
      const loop = streamFollow({
        repo,
        nodes: clusterNodes(loaded),
        creds: { user: "strongbox_binlog", password },
        recipients: (await recipientsOf(loaded)).age,
        signing: await signingKeyOf(loaded),
        maxDelayMs: 500,
        spoolMaxBytes: 1 << 20,
        checkpointMs: 60_000,
        signal: ac.signal,
        onDurable: () => state.durable++,
        onError: (e) => state.errors.push(e as StrongboxError),
      });
      try {
        while (!until(state)) {
          await admin.query(
            "CREATE TABLE IF NOT EXISTS test.binlog_grants (id INT PRIMARY KEY AUTO_INCREMENT)",
          );
          await admin.query("INSERT INTO test.binlog_grants () VALUES ()");
          await Promise.race([loop, new Promise((r) => setTimeout(r, 200))]);
        }
      } finally {
        ac.abort();
      }
      await loop;
      return state;
    };
    try {
      await admin.query("CREATE DATABASE IF NOT EXISTS test");
      assert.ok(
        (await stream((s) => s.durable > 0)).durable > 0,
        "a segment is stored with exactly those grants",
      );
      await admin.query(`REVOKE REPLICATION SLAVE ON *.* FROM ${account}`);
      await assert.rejects(
        stream(() => false),
        (e: StrongboxError) =>
          e.code === "BACKUP_PRIVILEGES" && /REPLICATION SLAVE/.test(e.message) && !e.message.includes("\n"),
      );
      await admin.query(`GRANT REPLICATION SLAVE ON *.* TO ${account}`);
      await admin.query(`REVOKE BINLOG MONITOR ON *.* FROM ${account}`);
      const without = await stream((s) => s.errors.length > 0);
      assert.equal(without.durable, 0);
      assert.equal(without.errors[0]?.code, "BINLOG_NOT_ENABLED");
      assert.match(without.errors[0]!.message, /SHOW BINARY LOGS failed: .*denied/i);
      assert.match(without.errors[0]!.hint ?? "", /BINLOG MONITOR/);
    } finally {
      await close();
      await admin.query(`DROP USER ${account}`);
    }
  });
});
