// Bad Galera TLS on a node joining a sandbox --tls cluster: no TLS at all, a CA that did not sign
// the peers, an expired certificate, a certificate without the name SST verifies. Each is one line
// naming the node and the setting, before Galera would have timed out; and Galera itself, asked to
// join without TLS, never falls back to plain text: the node gives up and the cluster stays whole.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { copyFileSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { startNode, stopNode } from "../../src/sandbox/cluster.ts";
import { startMariadbd, waitSynced } from "../../src/sandbox/processes.ts";
import { useCluster } from "../helpers/cluster.ts";

describe("Galera TLS faults on a joining node", () => {
  const cluster = useCluster({ nodes: 2, tls: true });
  const tls = () => join(cluster.dir, "tls");
  const cnf = () => cluster.nodes[1]!.cnf;
  let good = "";

  /** A certificate signed by `caName` (its key beside it), for `names`, valid `days` (negative: expired). */
  function cert(name: string, ca: { pem: string; key: string }, subjectAltName: string, days: number) {
    const p = (f: string) => join(tls(), f);
    execFileSync(
      "openssl",
      [
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        `/CN=${name}`,
        "-keyout",
        p(`${name}-key.pem`),
        "-out",
        p(`${name}.csr`),
      ],
      { stdio: "ignore" },
    );
    writeFileSync(p(`${name}.ext`), `subjectAltName=${subjectAltName}\n`);
    execFileSync(
      "openssl",
      [
        "x509",
        "-req",
        "-in",
        p(`${name}.csr`),
        "-CA",
        ca.pem,
        "-CAkey",
        ca.key,
        "-CAcreateserial",
        "-days",
        String(days),
        "-extfile",
        p(`${name}.ext`),
        "-out",
        p(`${name}-cert.pem`),
      ],
      { stdio: "ignore" },
    );
    return { cert: p(`${name}-cert.pem`), key: p(`${name}-key.pem`) };
  }

  /** node2 stopped, its my.cnf edited, started: the error of its start. */
  async function joinWith(edit: (text: string) => string): Promise<Error> {
    writeFileSync(cnf(), edit(good), { mode: 0o600 });
    try {
      await startNode(cluster.dir, 2, 90_000);
    } catch (e) {
      return e as Error;
    } finally {
      writeFileSync(cnf(), good, { mode: 0o600 });
    }
    await stopNode(cluster.dir, 2);
    throw new Error("node2 joined with a broken TLS setting");
  }

  async function clusterSize(): Promise<number> {
    const c = await cluster.connect(1);
    try {
      const [rows] = (await c.query("SHOW STATUS LIKE 'wsrep_cluster_size'")) as unknown as [
        { Value: string }[],
      ];
      return Number(rows[0]!.Value);
    } finally {
      await c.end();
    }
  }

  it("each bad setting is one line naming node2 and the setting; the good one joins again", {
    timeout: 600_000,
  }, async () => {
    good = readFileSync(cnf(), "utf8");
    await stopNode(cluster.dir, 2);
    const ca = { pem: join(tls(), "ca.pem"), key: join(tls(), "ca-key.pem") };
    const serverCert = join(tls(), "server-cert.pem");
    const serverKey = join(tls(), "server-key.pem");

    const plain = await joinWith((t) => t.replace(/;socket\.ssl_(ca|cert|key)=[^;"]*/g, ""));
    assert.equal((plain as { code?: string }).code, "SANDBOX_NODE_TLS");
    assert.match(
      plain.message,
      /^node2 cannot join: wsrep_provider_options has no socket\.ssl_cert, but node1 runs Galera with TLS$/,
    );

    execFileSync(
      "openssl",
      [
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "30",
        "-subj",
        "/CN=Another CA",
        "-keyout",
        join(tls(), "other-ca-key.pem"),
        "-out",
        join(tls(), "other-ca.pem"),
      ],
      { stdio: "ignore" },
    );
    const wrongCa = await joinWith((t) =>
      t.replace(`socket.ssl_ca=${ca.pem}`, `socket.ssl_ca=${join(tls(), "other-ca.pem")}`),
    );
    assert.match(wrongCa.message, /^node2 cannot join: socket\.ssl_ca \S+other-ca\.pem .*did not sign/);
    assert.match(wrongCa.message, /node1's certificate/);

    const expired = cert("expired", ca, "DNS:localhost,IP:127.0.0.1", -1);
    const old = await joinWith((t) =>
      t.replaceAll(serverCert, expired.cert).replaceAll(serverKey, expired.key),
    );
    assert.match(old.message, /^node2 cannot join: socket\.ssl_cert \S+expired-cert\.pem expired on \d{4}-/);

    const named = cert("elsewhere", ca, "DNS:db9.example", 30);
    const wrongName = await joinWith((t) =>
      t
        .replace(`ssl-cert=${serverCert}`, `ssl-cert=${named.cert}`)
        .replace(`ssl-key=${serverKey}`, `ssl-key=${named.key}`),
    );
    assert.match(
      wrongName.message,
      /^node2 cannot join: \[sst\] ssl-cert \S+elsewhere-cert\.pem is not valid for localhost \(its names: DNS:db9\.example\)$/,
    );

    assert.equal(await clusterSize(), 1, "node1 stayed alone and Primary through all of it");
    await startNode(cluster.dir, 2);
    assert.equal(await clusterSize(), 2, "with its own settings back, node2 rejoins");
  });

  it("asked to join without TLS anyway, Galera gives up instead of falling back to plain text", {
    timeout: 300_000,
  }, async () => {
    await stopNode(cluster.dir, 2);
    const saved = `${cnf()}.good`;
    copyFileSync(cnf(), saved);
    writeFileSync(cnf(), good.replace(/;socket\.ssl_(ca|cert|key)=[^;"]*/g, ""), { mode: 0o600 });
    let failure: Error | undefined;
    try {
      // The sandbox's own check bypassed: mariadbd started as a DBA would start it.
      await waitSynced(cluster.nodes[1]!, startMariadbd(cluster.nodes[1]!, false), cluster.admin, 120_000);
    } catch (e) {
      failure = e as Error;
    } finally {
      copyFileSync(saved, cnf());
    }
    assert.ok(failure, "node2 without TLS must not join");
    assert.match(
      failure.message,
      /node2 exited while starting: .*(failed to reach primary view|Connection timed out|gcs connect failed)/,
    );
    assert.equal(await clusterSize(), 1);
    await startNode(cluster.dir, 2);
    assert.equal(await clusterSize(), 2);
  });
});
