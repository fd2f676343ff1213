// Least privilege and the audit on a sandbox with TLS everywhere (client connections with
// require_secure_transport, gcomm, IST, SST): user create makes a REQUIRE SSL account for the TCP
// host, backups work with it, and every TLS finding is gone.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { AuditFinding } from "../../src/audit/types.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { adminCli } from "./cli.ts";

describe("least privilege over TLS", () => {
  const cluster = useCluster({ nodes: 1, tls: true });

  it("user create makes a REQUIRE SSL account for 127.0.0.1; backups use it; audit sees TLS on", async () => {
    const cfg = editConfig(cluster.configPath, join(cluster.dir, "tls-min.yaml"), (c) => {
      c.cluster.credentials.backup = {
        user: "strongbox_tls",
        passwordFile: "secrets/strongbox_tls.password",
      };
    });
    const made = await adminCli(["--config", cfg, "--json", "user", "create"]);
    assert.equal(made.code, 0, made.stderr);
    assert.deepEqual(
      JSON.parse(made.stdout).hosts.map((h: { account: string }) => h.account),
      ["'strongbox_tls'@'127.0.0.1'"],
      "nodes reached over TCP on loopback: the account's host is 127.0.0.1",
    );
    const admin = await cluster.connect(1);
    const [rows] = (await admin.query("SHOW CREATE USER 'strongbox_tls'@'127.0.0.1'")) as unknown as [
      Record<string, string>[],
    ];
    await admin.end();
    assert.match(Object.values(rows[0]!)[0]!, /REQUIRE SSL/);

    for (const args of [["init"], ["backup", "--full"], ["backup", "--logical"]]) {
      const r = await cli(["--config", cfg, ...args]);
      assert.equal(r.code, 0, `${args.join(" ")}: ${r.stderr}`);
    }

    const a = await adminCli(["--config", cfg, "--json", "audit"]);
    const findings = JSON.parse(a.stdout).findings as AuditFinding[];
    const ids = new Set(findings.map((f) => f.id));
    for (const gone of [
      "db-tls-off",
      "db-tls-unverified",
      "db-tls-unavailable",
      "db-secure-transport-off",
      "grants-excess",
      "grants-missing",
      // sandbox --tls: gcomm, IST and SST too, read from what the node runs and its my.cnf
      "galera-replication-plain",
      "galera-ist-plain",
      "galera-sst-plain",
      "galera-sst-unverified",
    ]) {
      assert.ok(
        !ids.has(gone),
        `${gone} should be absent: ${JSON.stringify(findings.find((f) => f.id === gone))}`,
      );
    }
    assert.ok(ids.has("innodb-encryption-off"), "the nodes' own settings are still read over TLS");
  });
});
