// Key management on real backups: add/remove recipients, rotate (header re-wrap), signing key rotation.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { headerLength } from "../../src/crypto/age-header.ts";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { cli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";

describe("key management", () => {
  const cluster = useCluster({ nodes: 1 });
  const cfg = () => cluster.configPath;
  const run = async (...args: string[]) => cli(["--config", cfg(), ...args]);
  const keyA = () => join(cluster.dir, "keys/identity.txt");
  const keyB = () => join(cluster.dir, "keys/b.txt");
  const recipientOf = (file: string) => readFileSync(file, "utf8").match(/age1[0-9a-z]+/)![0];
  const partFiles = (id: string) =>
    readdirSync(join(cluster.dir, "repository/backups", id))
      .filter((f) => f.startsWith("part-"))
      .map((f) => join(cluster.dir, "repository/backups", id, f));
  let first = "";
  let second = "";
  let payloadBefore = Buffer.alloc(0);

  it("adds a recipient: new backups are encrypted to both, old ones only to the old set", async () => {
    const c = await cluster.connect(1);
    await loadDataset(c, { sizeBytes: 4_000_000, seed: 5 });
    await c.end();
    assert.equal((await run("init")).code, 0);
    let r = await run("backup", "--full", "--json");
    assert.equal(r.code, 0, r.stderr);
    first = JSON.parse(r.stdout).id;
    const part = readFileSync(partFiles(first)[0]!);
    payloadBefore = part.subarray(headerLength(part)!);

    assert.equal((await cli(["key", "generate", "--out", keyB()])).code, 0);
    r = await run("key", "add-recipient", recipientOf(keyB()));
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /run `strongbox key rotate`/);
    r = await run("backup", "--full", "--json");
    assert.equal(r.code, 0, r.stderr);
    second = JSON.parse(r.stdout).id;
    assert.deepEqual(
      JSON.parse(r.stdout).encryption.recipients.sort(),
      [recipientOf(keyA()), recipientOf(keyB())].sort(),
    );

    r = await run("verify", second, "--read-data", "--identity", keyB());
    assert.equal(r.code, 0, r.stderr);
    r = await run("verify", first, "--read-data", "--identity", keyB());
    assert.equal(r.code, 2);
    assert.match(r.stderr, /does not match any recipient/);
  });

  it("removes the old recipient and rotates: headers re-wrapped, payloads untouched, old key useless", async () => {
    let r = await run("key", "remove-recipient", recipientOf(keyA()));
    assert.equal(r.code, 0, r.stderr);
    r = await run("key", "rotate", "--identity", keyA());
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /2 backup\(s\) re-keyed/);

    const part = readFileSync(partFiles(first)[0]!);
    assert.ok(partFiles(first)[0]!.endsWith(".g2.age"), "a new object replaced the old part");
    assert.equal(partFiles(first).length, 1, "the old part was removed after the manifest swap");
    assert.ok(part.subarray(headerLength(part)!).equals(payloadBefore), "payload bytes unchanged");

    r = await run("verify", "--read-data", "--identity", keyB());
    assert.equal(r.code, 0, r.stderr);
    r = await run("verify", first, "--read-data", "--identity", keyA());
    assert.equal(r.code, 2);
    assert.match(r.stderr, new RegExp(`it was encrypted to ${recipientOf(keyB())}`));
    // Break-glass with the standard tool and the new identity.
    const out = execFileSync("bash", [
      "-c",
      `age -d -i ${keyB()} ${partFiles(first)[0]} | zstd -d | head -c 8`,
    ]);
    assert.equal(out.toString(), "XBSTCK01");
  });

  it("rotates the signing key: manifests re-signed, the retired key no longer trusted", async () => {
    const before = readFileSync(join(cluster.dir, "keys/signing.key"), "utf8");
    const r = await run("key", "rotate", "--signing", "--json");
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout);
    assert.equal(out.repositories[0].resigned, 2);
    const after = readFileSync(join(cluster.dir, "keys/signing.key"), "utf8");
    assert.notEqual(after, before);
    assert.ok(readdirSync(join(cluster.dir, "keys")).some((f) => f.startsWith("signing.key.retired-")));
    assert.ok(!existsSync(join(cluster.dir, "keys/signing.key.new")));
    const m = JSON.parse(
      readFileSync(join(cluster.dir, "repository/backups", first, "manifest.json"), "utf8"),
    );
    assert.equal(m.signature.publicKey, out.signingPublicKey);
    const v = await run("verify");
    assert.equal(v.code, 0, v.stderr);
    // A new backup is signed with the new key too.
    const b = await run("backup", "--full", "--json");
    assert.equal(b.code, 0, b.stderr);
    assert.equal(JSON.parse(b.stdout).signature.publicKey, out.signingPublicKey);
  });

  it("refuses to remove the last recipient and an unknown one", async () => {
    let r = await run("key", "remove-recipient", recipientOf(keyB()));
    assert.equal(r.code, 2);
    assert.match(r.stderr, /refusing to remove the last recipient/);
    r = await run(
      "key",
      "remove-recipient",
      "age1qyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqszqgpqyqs3290gq",
    );
    assert.equal(r.code, 2);
    assert.match(r.stderr, /is not a recipient/);
  });
});
