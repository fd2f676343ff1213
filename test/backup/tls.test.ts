// Database connections over TLS: a sandbox with require_secure_transport=ON, reached over TCP only.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { parse } from "yaml";
import type { StrongboxError } from "../../src/errors.ts";
import { connectNode, showGlobal } from "../../src/galera/connection.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

describe("TLS to the database", () => {
  const cluster = useCluster({ nodes: 1, tls: true });

  it("the sandbox requires secure transport and the config reaches it over TCP with TLS", async () => {
    const c = await cluster.connect(1);
    const v = await showGlobal(c, "VARIABLES", "require_secure_transport");
    await c.end();
    assert.equal(v.get("require_secure_transport"), "ON");
    const cfg = parse(readFileSync(cluster.configPath, "utf8"));
    assert.equal(cfg.cluster.nodes[0].socket, undefined);
    assert.equal(cfg.cluster.tls.ca, "tls/ca.pem");
    const n = cluster.nodes[0]!;
    const endpoint = { name: "node1", host: "127.0.0.1", port: n.port };
    // The same account over TLS gets in; without TLS the server turns it away.
    const tls = { ca: join(cluster.dir, "tls/ca.pem") };
    const ok = await connectNode(endpoint, cluster.backup, { tls });
    const [[cipher]] = (await ok.query("SHOW SESSION STATUS LIKE 'Ssl_cipher'")) as unknown as [
      [{ Value: string }],
    ];
    await ok.end();
    assert.notEqual(cipher.Value, "", "the session is encrypted");
    await assert.rejects(
      connectNode(endpoint, cluster.backup),
      (e: StrongboxError) =>
        e.code === "NODE_CONNECT_FAILED" && /REQUIREs SSL needs cluster\.tls\)$/.test(e.oneLine()),
    );
  });

  it("physical and logical backups, verify and restore-test all work over TLS", async () => {
    assert.equal((await cli(["--config", cluster.configPath, "init"])).code, 0);
    for (const kind of ["--full", "--logical"]) {
      const r = await cli(["--config", cluster.configPath, "backup", kind]);
      assert.equal(r.code, 0, r.stderr);
    }
    const t = await cli(["--config", cluster.configPath, "restore-test"]);
    assert.equal(t.code, 0, t.stderr);
  });

  it("a wrong CA file is named with the TLS problem first, not as a cluster that is not Synced", async () => {
    const wrong = editConfig(cluster.configPath, join(cluster.dir, "wrong-ca.yaml"), (c) => {
      // The client certificate is not a CA: nothing the server presents chains to it.
      c.cluster.tls.ca = "tls/client-cert.pem";
    });
    for (const command of [
      ["backup", "--full"],
      ["binlog", "archive"],
    ]) {
      const r = await cli(["--config", wrong, ...command, "--json"]);
      assert.equal(r.code, 2, r.stderr);
      assert.equal(JSON.parse(r.stdout).error.code, "NODE_TLS");
      assert.match(
        r.stderr,
        /^strongbox: error: cannot connect to node node1 \(127\.0\.0\.1:\d+\) as \w+: TLS: the server's certificate is not signed by the CA in \/.*\/tls\/client-cert\.pem \(.*\) \(check cluster\.tls/,
      );
      assert.doesNotMatch(r.stderr, /no node is Synced|recover/);
    }
  });

  it("a missing CA file, or one that holds no certificate, is named before any connection", async () => {
    const missing = editConfig(cluster.configPath, join(cluster.dir, "missing-ca.yaml"), (c) => {
      c.cluster.tls.ca = "tls/no-such-ca.pem";
    });
    let r = await cli(["--config", missing, "backup", "--full"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^strongbox: error: the database TLS CA \/.*\/tls\/no-such-ca\.pem \(cluster\.tls\.ca\) cannot be read: no such file \(ENOENT\) \(check cluster\.tls/,
    );
    const notCert = editConfig(cluster.configPath, join(cluster.dir, "key-as-ca.yaml"), (c) => {
      c.cluster.tls.ca = "tls/client-key.pem";
    });
    r = await cli(["--config", notCert, "backup", "--full"]);
    assert.equal(r.code, 2);
    assert.match(
      r.stderr,
      /^strongbox: error: the database TLS CA \/.*\/tls\/client-key\.pem \(cluster\.tls\.ca\) holds no PEM certificate/,
    );
  });
});
