// The multi-host sandbox with TLS everywhere (issue 22): each node reads its own copy of the
// cluster CA, certificate and key from its home; gcomm, IST and SST between the node addresses
// and every client connection are TLS (require_secure_transport). As the backup account: a
// backup through the agents (whose mariabackup reaches its node over TLS with the CA the backup
// host sent), verify, and an audit that finds no unencrypted Galera or client traffic.
import assert from "node:assert/strict";
import { statSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import type { AuditFinding } from "../../src/audit/types.ts";
import { useHostsSandbox } from "../helpers/hosts.ts";

describe("sandbox up --hosts --tls", () => {
  const sb = useHostsSandbox({ nodes: 2, tls: true });

  it("every node holds its own certificate, key and CA, 0600 in its 0700 home", () => {
    for (const n of sb.nodes) {
      for (const f of ["ca.pem", "server-cert.pem", "server-key.pem"]) {
        const st = statSync(join(n.dir, "tls", f));
        assert.equal(st.mode & 0o077, 0, `${n.name} ${f} is the node's alone`);
        assert.equal(st.uid, statSync(n.dir).uid, `${n.name} ${f} belongs to the node's account`);
      }
    }
  });

  it("as the backup account: a backup through the agents over TLS, verify, and an audit without plain-text findings", async () => {
    assert.equal((await sb.asBackup(["--config", sb.configPath, "init"])).code, 0);
    const b = await sb.asBackup(["--config", sb.configPath, "--json", "backup", "--full"]);
    assert.equal(b.code, 0, b.stderr);
    const v = await sb.asBackup(["--config", sb.configPath, "verify", "--read-data"]);
    assert.equal(v.code, 0, v.stderr);
    const c = await sb.connect(1);
    try {
      const [rows] = (await c.query(
        "SELECT VARIABLE_VALUE AS v FROM information_schema.SESSION_STATUS WHERE VARIABLE_NAME = 'Ssl_cipher'",
      )) as unknown as [{ v: string }[]];
      assert.notEqual(rows[0]?.v ?? "", "", "the admin connection itself is TLS");
      const [size] = (await c.query("SHOW STATUS LIKE 'wsrep_cluster_size'")) as unknown as [
        { Value: string }[],
      ];
      assert.equal(size[0]!.Value, "2", "node2 joined node1 over TLS (SST and gcomm)");
    } finally {
      await c.end();
    }
    const a = await sb.asBackup(["--config", sb.configPath, "--json", "audit"]);
    const ids = new Set((JSON.parse(a.stdout).findings as AuditFinding[]).map((f) => f.id));
    for (const gone of [
      "db-tls-off",
      "db-tls-unavailable",
      "db-secure-transport-off",
      "galera-replication-plain",
      "galera-ist-plain",
    ])
      assert.ok(!ids.has(gone), `${gone} should be absent`);
  });
});
