import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { chmod, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { renderConfigReference } from "../../src/config/docs.ts";
import { defaultConfigPath, loadConfig, parseConfigText } from "../../src/config/load.ts";
import { ConfigError, type StrongboxError } from "../../src/errors.ts";

const GOOD = `
version: 1
cluster:
  nodes:
    - { name: db1, host: db1.example }
    - { name: db2, host: db2.example, port: 3307 }
  backupNode: db2
  credentials:
    backup: { user: backup, passwordFile: backup.pw }
repositories:
  - name: local
    storage: { type: local, path: /var/backups/strongbox }
keys:
  recipients: [age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq]
  signingKey: signing.key
`;

describe("config", () => {
  it("accepts a good file and fills defaults", () => {
    const c = parseConfigText(GOOD, "test.yaml");
    assert.equal(c.cluster.nodes[0]!.port, 3306);
    assert.equal(c.cluster.nodes[1]!.port, 3307);
    assert.equal(c.cluster.desync, "auto");
    assert.equal(c.backup.partSize, "64MiB");
    assert.equal(c.backup.compressionLevel, 1);
  });

  it("reports every problem with its path at once", () => {
    const bad = `
version: 2
cluster:
  nodes:
    - { name: "db 1", port: 99999 }
  backupNode: nope
  desync: sometimes
  credentials: {}
repositories:
  - name: local
    storage: { type: ftp, path: x }
keys:
  signingKey: k
  surprise: true
`;
    let err: unknown;
    try {
      parseConfigText(bad, "bad.yaml");
    } catch (e) {
      err = e;
    }
    assert.ok(err instanceof ConfigError);
    const text = err.problems.join("\n");
    for (const path of [
      "version",
      "cluster.nodes[0].name",
      "cluster.nodes[0].port",
      "cluster.desync",
      "cluster.credentials.backup",
      "repositories[0].storage.type",
      "keys",
    ]) {
      assert.match(
        text,
        new RegExp(`^${path.replace(/[[\].]/g, "\\$&")}: `, "m"),
        `missing problem at ${path}:\n${text}`,
      );
    }
    assert.ok(err.problems.length >= 7, text);
    assert.match(err.oneLine(), /^bad\.yaml has \d+ problem\(s\): /);
    assert.ok(!err.oneLine().includes("\n"));
  });

  it("a node agent: defaults filled in, and a host key is required", () => {
    const withAgent = GOOD.replace(
      "- { name: db1, host: db1.example }",
      '- { name: db1, host: db1.example, agent: { user: strongbox, privateKey: k, hostKey: "SHA256:abc" } }',
    );
    const agent = parseConfigText(withAgent, "a.yaml").cluster.nodes[0]!.agent!;
    assert.equal(agent.port, 22);
    assert.equal(agent.command, "strongbox agent");
    assert.equal(agent.connectTimeout, "20s");
    const blind = withAgent.replace(', hostKey: "SHA256:abc"', "");
    assert.throws(
      () => parseConfigText(blind, "b.yaml"),
      (e: ConfigError) =>
        e.problems.some((p) => /^cluster\.nodes\[0\]\.agent\.hostKey: set hostKey or knownHostsFile/.test(p)),
    );
  });

  it("reports cross-field problems (unknown backupNode) with their path", () => {
    const text = GOOD.replace("backupNode: db2", "backupNode: db9");
    assert.throws(
      () => parseConfigText(text, "x.yaml"),
      (e: ConfigError) => e.problems.some((p) => p.startsWith('cluster.backupNode: no node named "db9"')),
    );
  });

  it("reports YAML syntax errors with the line", () => {
    assert.throws(
      () => parseConfigText("version: 1\ncluster: [\n", "y.yaml"),
      (e: ConfigError) => e.message.includes("not valid YAML") && /line \d+/.test(e.problems[0] ?? ""),
    );
  });

  it("refuses a config file readable by others, and a missing one, with the fix", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sb-config-"));
    const path = join(dir, "strongbox.yaml");
    await writeFile(path, GOOD, { mode: 0o644 });
    await chmod(path, 0o644);
    await assert.rejects(
      loadConfig(path),
      (e: StrongboxError) =>
        e.code === "CONFIG_TOO_OPEN" && e.exitCode === 78 && /chmod 600/.test(e.oneLine()),
    );
    await chmod(path, 0o600);
    const loaded = await loadConfig(path);
    assert.equal(loaded.resolvePath("signing.key"), join(dir, "signing.key"));
    await assert.rejects(
      loadConfig(join(dir, "missing.yaml")),
      (e: StrongboxError) =>
        e.code === "CONFIG_NOT_FOUND" && e.exitCode === 78 && /not found/.test(e.message),
    );
  });

  it("STRONGBOX_CONFIG names the file when --config is absent", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sb-config-"));
    const path = join(dir, "other.yaml");
    await writeFile(path, GOOD, { mode: 0o600 });
    process.env.STRONGBOX_CONFIG = path;
    try {
      assert.equal((await loadConfig()).path, path);
    } finally {
      delete process.env.STRONGBOX_CONFIG;
    }
  });

  it("SSH: without privateKey the ssh-agent is used; sshAgent: false then leaves no key", () => {
    const withSftp = (extra: string) =>
      GOOD.replace(
        "    storage: { type: local, path: /var/backups/strongbox }",
        `    storage: { type: sftp, host: backup.example, user: sb, path: repo, hostKey: "SHA256:abc"${extra} }`,
      );
    const c = parseConfigText(withSftp(""), "test.yaml");
    assert.equal(
      c.repositories[0]!.storage.type === "sftp" && c.repositories[0]!.storage.privateKey,
      undefined,
    );
    assert.throws(
      () => parseConfigText(withSftp(", sshAgent: false"), "test.yaml"),
      (e: ConfigError) =>
        e.problems.some((p) =>
          p.startsWith("repositories[0].storage.privateKey: sshAgent: false leaves no key"),
        ),
    );
  });

  it("without --config or STRONGBOX_CONFIG: ./strongbox.yaml when present, else /etc/strongbox/strongbox.yaml", async () => {
    const dir = await mkdtemp(join(tmpdir(), "sb-config-"));
    const before = process.cwd();
    process.chdir(dir);
    try {
      assert.equal(defaultConfigPath(), "/etc/strongbox/strongbox.yaml");
      await assert.rejects(loadConfig(), (e: StrongboxError) =>
        /config file \/etc\/strongbox\/strongbox.yaml (not found|cannot be read)/.test(e.message),
      );
      await writeFile(join(dir, "strongbox.yaml"), GOOD, { mode: 0o600 });
      assert.equal(defaultConfigPath(), "strongbox.yaml");
      assert.equal((await loadConfig()).path, join(dir, "strongbox.yaml"));
      assert.equal(defaultConfigPath("x.yaml"), "x.yaml");
    } finally {
      process.chdir(before);
    }
  });

  it("docs/configuration.md is generated from the schema (run npm run docs:config)", () => {
    const onDisk = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    assert.equal(onDisk, renderConfigReference());
  });
});
