// Restore refuses a stream or a manifest crafted to write outside its target directory.
import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { crc32, zstdCompressSync } from "node:zlib";
import { encryptBuffer } from "../../src/crypto/age.ts";
import { generateX25519Identity, parseIdentities, parseRecipient } from "../../src/crypto/age-keys.ts";
import { generateSigningKey } from "../../src/crypto/sign.ts";
import { EvidenceWriter } from "../../src/repository/evidence.ts";
import {
  MANIFEST_FORMAT,
  type Manifest,
  manifestDigest,
  newBackupId,
  signManifest,
} from "../../src/repository/manifest.ts";
import { Repository } from "../../src/repository/repository.ts";
import { decodeBackup } from "../../src/restore/extract.ts";
import { repositorySource } from "../../src/restore/read.ts";
import { XbstreamReader } from "../../src/restore/xbstream.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import { cli } from "../helpers/cli.ts";

function chunk(path: string, payload: Buffer | null): Buffer {
  const p = Buffer.from(path);
  const head = Buffer.alloc(14);
  head.write("XBSTCK01", 0);
  head[8] = 0;
  head[9] = (payload ? "P" : "E").charCodeAt(0);
  head.writeUInt32LE(p.length, 10);
  if (!payload) return Buffer.concat([head, p]);
  const meta = Buffer.alloc(20);
  meta.writeBigUInt64LE(BigInt(payload.length), 0);
  meta.writeBigUInt64LE(0n, 8);
  meta.writeUInt32LE(crc32(payload), 16);
  return Buffer.concat([head, p, meta, payload]);
}

const xbstream = (files: [string, string][]) =>
  Buffer.concat(files.flatMap(([path, body]) => [chunk(path, Buffer.from(body)), chunk(path, null)]));

async function validate(stream: Buffer): Promise<void> {
  const reader = new XbstreamReader();
  // Fed in small pieces, so that headers and payloads span reads.
  for (let i = 0; i < stream.length; i += 7) reader.push(stream.subarray(i, i + 7));
  reader.finish();
}

/** A local repository with a configuration, and a way to commit signed backups of any stream. */
async function craftedRepository() {
  const dir = await mkdtemp(join(tmpdir(), "sb-crafted-"));
  const { identity, recipient } = generateX25519Identity();
  const signing = generateSigningKey();
  await mkdir(join(dir, "keys"), { mode: 0o700 });
  await writeFile(join(dir, "keys/identity.txt"), `${identity}\n`, { mode: 0o600 });
  await writeFile(join(dir, "keys/signing.key"), signing.privateKeyPem, { mode: 0o600 });
  await writeFile(join(dir, "backup.password"), "unused\n", { mode: 0o600 });
  await writeFile(
    join(dir, "strongbox.yaml"),
    [
      "version: 1",
      "cluster:",
      "  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]",
      "  credentials: { backup: { user: b, passwordFile: backup.password } }",
      "repositories: [{ name: local, storage: { type: local, path: repo } }]",
      "keys:",
      `  recipients: [${recipient}]`,
      "  signingKey: keys/signing.key",
      "  identity: keys/identity.txt",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const storage = await LocalStorage.open(join(dir, "repo"));
  const repo = await Repository.init("local", storage, {
    recipients: [recipient],
    passphrase: false,
    signingPublicKey: signing.publicKey,
    compression: { algorithm: "zstd", level: 1 },
    partSize: 1 << 20,
    signingPrivateKeyPem: signing.privateKeyPem,
  });
  const craft = async (stream: Buffer, partKey?: (id: string) => string): Promise<string> => {
    const id = newBackupId();
    const plain = zstdCompressSync(stream);
    const part = await encryptBuffer(plain, [parseRecipient(recipient)]);
    const key = partKey ? partKey(id) : repo.partKey(id, 0);
    if (!partKey) await storage.put(key, part);
    const { createHash } = await import("node:crypto");
    const m: Manifest = {
      format: MANIFEST_FORMAT,
      id,
      type: "full",
      parent: null,
      chainRoot: id,
      cluster: { name: "x", uuid: null, seqno: null, size: 1 },
      donor: "db1",
      serverVersion: null,
      gtid: null,
      binlog: null,
      lsn: { from: 0, to: 1, last: 1 },
      startedAt: new Date().toISOString(),
      finishedAt: new Date().toISOString(),
      durations: {},
      bytes: { raw: stream.length, compressed: plain.length, stored: part.length },
      compression: { algorithm: "zstd", level: 1 },
      encryption: { format: "age-v1", recipients: [recipient], passphrase: false },
      parts: [
        {
          index: 0,
          key,
          size: part.length,
          sha256: createHash("sha256").update(part).digest("hex"),
          plainSize: plain.length,
        },
      ],
      details: (await encryptBuffer(Buffer.from("{}"), [parseRecipient(recipient)])).toString("base64"),
      tool: { name: "strongbox", version: "test", backupTool: "mariabackup" },
    };
    // Signed and recorded as the backup host does: the attack here is the stream, not the manifest.
    const signed = signManifest(m, signing.privateKeyPem, signing.publicKey);
    const evidence = await EvidenceWriter.open(repo, signing, [signing.publicKey]);
    await evidence.record("commit", [{ id, digest: manifestDigest(signed) }], () => repo.commit(signed));
    return id;
  };

  return { dir, storage, repo, craft };
}

describe("crafted backups", () => {
  it("the stream validator accepts a well-formed stream and rejects escapes, bad CRCs and truncation", async () => {
    await validate(
      xbstream([
        ["ibdata1", "x".repeat(1000)],
        ["shop/orders.ibd", "y"],
      ]),
    );
    for (const evil of ["../evil", "/etc/passwd", "a/../../b", "a//b"]) {
      await assert.rejects(
        validate(xbstream([[evil, "boom"]])),
        (e: { code: string }) => e.code === "STREAM_UNSAFE_PATH",
        evil,
      );
    }
    const good = xbstream([["ibdata1", "payload"]]);
    const flipped = Buffer.from(good);
    flipped[40] = flipped[40]! ^ 1;
    await assert.rejects(validate(flipped), (e: { code: string }) => e.code === "STREAM_CORRUPT");
    await assert.rejects(validate(good.subarray(0, good.length - 10)), (e: { message: string }) =>
      /truncated/.test(e.message),
    );
  });

  it("restore of a signed backup whose stream escapes the target: refused, nothing written outside", async () => {
    const { dir, craft } = await craftedRepository();
    const escaping = await craft(
      xbstream([
        ["ibdata1", "ok"],
        ["../../escaped-file", "pwned"],
      ]),
    );
    const target = join(dir, "target", "data");
    let r = await cli([
      "--config",
      join(dir, "strongbox.yaml"),
      "restore",
      escaping,
      "--target-dir",
      target,
      "--no-prepare",
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(
      r.stderr,
      /^strongbox: error: the backup stream contains an unsafe path "\.\.\/\.\.\/escaped-file"/m,
    );
    assert.ok(!existsSync(join(dir, "escaped-file")) && !existsSync(join(dir, "target", "escaped-file")));
    assert.deepEqual(readdirSync(target), [], "the half-restored target was emptied again");

    const outside = await craft(xbstream([["ibdata1", "ok"]]), () => "../../../etc/passwd");
    r = await cli([
      "--config",
      join(dir, "strongbox.yaml"),
      "restore",
      outside,
      "--target-dir",
      join(dir, "t2"),
      "--no-prepare",
    ]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /^strongbox: error: .*invalid storage key "\.\.\/\.\.\/\.\.\/etc\/passwd"/m);
    assert.deepEqual(
      readdirSync(dir).sort(),
      // state/: the run catalog, where the failed restore is recorded.
      ["keys", "repo", "backup.password", "state", "strongbox.yaml", "target", "t2"].sort(),
    );
  });

  it("a flipped byte in the X25519 stanza is damage (SHA-256), not a wrong key; no FileHandle left to the GC", async () => {
    const { dir, repo, craft } = await craftedRepository();
    const config = join(dir, "strongbox.yaml");
    const stream = xbstream([["ibdata1", "z".repeat(5000)]]);
    const good = await craft(stream);
    const bad = await craft(stream);
    const partFile = join(dir, "repo", repo.partKey(bad, 0));
    const bytes = readFileSync(partFile);
    // The stanza body is the line after "-> X25519 <share>": the wrapped file key.
    const body = bytes.indexOf("\n", bytes.indexOf("-> X25519")) + 5;
    bytes[body] = bytes[body] === 0x41 ? 0x42 : 0x41;
    writeFileSync(partFile, bytes);

    const verify = await cli(["--config", config, "verify", "--read-data", bad]);
    assert.equal(verify.code, 2, verify.stderr);
    assert.match(
      verify.stderr,
      new RegExp(`^strongbox: error: backup ${bad} part 0 .* fails its SHA-256 check`),
    );
    assert.doesNotMatch(verify.stderr + verify.stdout, /does not match any recipient/);
    const target = join(dir, "restored");
    const restore = await cli(["--config", config, "restore", bad, "--target-dir", target, "--no-prepare"]);
    assert.equal(restore.code, 2, restore.stderr);
    assert.match(restore.stderr, /fails its SHA-256 check \(restore from an offsite copy\)/);
    assert.deepEqual(readdirSync(target), []);

    // A wrong identity is still a wrong key.
    const other = join(dir, "other.txt");
    writeFileSync(other, `${generateX25519Identity().identity}\n`, { mode: 0o600 });
    const wrong = await cli(["--config", config, "verify", "--read-data", "--identity", other, good]);
    assert.equal(wrong.code, 2);
    assert.match(wrong.stderr, /the identity does not match any recipient of backup/);

    // Failed reads close their files: nothing for the garbage collector to close (DEP0137).
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const warnings: string[] = [];
    const onWarning = (w: Error) => warnings.push(w.message);
    process.on("warning", onWarning);
    try {
      const identities = parseIdentities(readFileSync(join(dir, "keys/identity.txt"), "utf8"));
      const m = await repo.get(bad);
      for (let i = 0; i < 3; i++) {
        await assert.rejects(decodeBackup(repositorySource(repo, identities), m, { sink: "scan" }), {
          code: "PART_CORRUPT",
        });
      }
      // A part that is larger than recorded fails in the check itself.
      writeFileSync(partFile, Buffer.concat([readFileSync(partFile), Buffer.alloc(10)]));
      await assert.rejects(decodeBackup(repositorySource(repo, identities), m, { sink: "scan" }), {
        code: "PART_CORRUPT",
      });
      for (let i = 0; i < 3; i++) {
        gc();
        await new Promise((r) => setImmediate(r));
      }
    } finally {
      process.off("warning", onWarning);
    }
    assert.deepEqual(
      warnings.filter((w) => /garbage collection/.test(w)),
      [],
    );
  });
});
