// The whole cycle on real remote storage: backup → verify → restore-test, once on SFTP (OpenSSH)
// and once on S3 (Ceph RADOS Gateway), with the repository configured like an operator would.
import assert from "node:assert/strict";
import { mkdtempSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { cli, editConfig } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { startCutProxy } from "../helpers/cut-proxy.ts";
import { useS3Server } from "../helpers/s3server.ts";
import { sshFieldsOf, useSshd } from "../helpers/sshd.ts";

describe("backup → verify → restore-test on remote repositories", () => {
  const cluster = useCluster({ nodes: 1 });
  const sshd = useSshd();
  const s3 = useS3Server();

  const cycle = async (config: string, repo: string) => {
    assert.equal((await cli(["--config", config, "init", "--repo", repo])).code, 0);
    let r = await cli(["--config", config, "backup", "--full", "--repo", repo, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    const full = JSON.parse(r.stdout);
    assert.ok(full.parts.length >= 2, "several parts, uploaded as separate objects");
    r = await cli(["--config", config, "backup", "--incremental", "--repo", repo, "--json"]);
    assert.equal(r.code, 0, r.stderr);
    r = await cli(["--config", config, "verify", "--repo", repo, "--read-data", "--json"]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(JSON.parse(r.stdout).backups.length, 2);
    r = await cli(["--config", config, "restore-test", "--repo", repo, "--json"]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.equal(JSON.parse(r.stdout).passed, true);
  };

  it("loads data", async () => {
    const c = await cluster.connect(1);
    await loadDataset(c, { sizeBytes: 6_000_000, seed: 11 });
    await c.end();
  });

  it("SFTP: key auth, pinned host key", async () => {
    const s = sshd.server;
    const config = editConfig(cluster.configPath, join(cluster.dir, "sftp.yaml"), (c) => {
      c.backup.partSize = "1MiB";
      c.repositories.push({
        name: "sftp",
        storage: {
          type: "sftp",
          ...sshFieldsOf(s),
          path: join(s.dir, "repo"),
        },
      });
    });
    await cycle(config, "sftp");
  });

  it("SFTP: the server gone in the middle of a backup: one clear line, nothing committed, no spool left", async () => {
    const s = sshd.server;
    const spoolParent = mkdtempSync(join(cluster.dir, "tmp-"));
    // The native sealer spools parts here before they are uploaded (src/pipeline/spool.ts).
    const sftp = join(cluster.dir, "sftp.yaml");
    const before = await cli(["--config", sftp, "list", "--repo", "sftp", "--json"]);
    assert.equal(before.code, 0, before.stderr);
    // Cut once 512 KiB went out: the SSH handshake and the first part's first bytes.
    const proxy = await startCutProxy(s, 512 << 10);
    try {
      const config = editConfig(sftp, join(cluster.dir, "sftp-cut.yaml"), (c) => {
        c.repositories.find((r: { name: string }) => r.name === "sftp").storage.port = proxy.port;
      });
      const r = await cli(["--config", config, "backup", "--full", "--repo", "sftp"], {
        TMPDIR: spoolParent,
      });
      assert.equal(r.code, 2, r.stderr);
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, /(connect|connection|unavailable|refused|closed)/i);
      assert.deepEqual(readdirSync(spoolParent), [], "the spool is removed");
      const after = await cli(["--config", sftp, "list", "--repo", "sftp", "--json"]);
      assert.equal(after.code, 0, after.stderr);
      assert.deepEqual(
        JSON.parse(after.stdout).backups,
        JSON.parse(before.stdout).backups,
        "nothing committed",
      );
    } finally {
      await proxy.close();
    }
  });

  it("S3: HTTPS with a private CA, credentials file", async () => {
    const s = s3.server;
    await s.createBucket("strongbox-cycle");
    const config = editConfig(cluster.configPath, join(cluster.dir, "s3.yaml"), (c) => {
      c.backup.partSize = "1MiB";
      c.repositories.push({
        name: "s3",
        storage: {
          type: "s3",
          endpoint: s.httpsEndpoint,
          region: s.region,
          bucket: "strongbox-cycle",
          prefix: "prod/",
          forcePathStyle: true,
          credentialsFile: s.credentialsFile,
          caFile: s.caFile,
        },
      });
    });
    await cycle(config, "s3");
  });
});
