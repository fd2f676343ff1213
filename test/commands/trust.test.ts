// Attacks with repository write access only (no key), against the command functions: forged
// manifests, deleted and rolled-back backups, a tampered evidence log, forged parts. Each test says
// what the attacker does and what strongbox now does about it.
import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { copyFile, mkdir, mkdtemp, readdir, rename, rm, unlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { planBackup, planningHistory } from "../../src/backup/plan.ts";
import { init } from "../../src/commands/init.ts";
import { generate, rotate } from "../../src/commands/key.ts";
import { list, show } from "../../src/commands/list.ts";
import { copy, prune } from "../../src/commands/offsite.ts";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import { status } from "../../src/commands/status.ts";
import { verifierFor } from "../../src/commands/trust.ts";
import { verify } from "../../src/commands/verify.ts";
import { identitiesOf, signingKeyOf } from "../../src/config/context.ts";
import { loadConfig } from "../../src/config/load.ts";
import { encryptBuffer } from "../../src/crypto/age.ts";
import { parseRecipient } from "../../src/crypto/age-keys.ts";
import type { StrongboxError } from "../../src/errors.ts";
import {
  appendEntry,
  BINLOG_INDEX_FORMAT,
  type BinlogEntry,
  readIndex,
  signEntry,
} from "../../src/repository/binlog-index.ts";
import { readPartChecked } from "../../src/repository/checked-read.ts";
import { evidenceKey } from "../../src/repository/evidence.ts";
import type { Manifest } from "../../src/repository/manifest.ts";
import { decodeBackup } from "../../src/restore/extract.ts";
import { repositorySource } from "../../src/restore/read.ts";
import type { GlobalOptions } from "../../src/terminal/options.ts";
import { MemoryOutput } from "../../src/terminal/output.ts";
import { sleep } from "../../src/util/proc.ts";
import { startCli } from "../helpers/cli.ts";
import { attackerKey, forgedBackup, genuineBackup, plant } from "../helpers/forge.ts";

const DAY = 86_400_000;

function binlogEntry(seq: number): BinlogEntry {
  return {
    format: BINLOG_INDEX_FORMAT,
    seq,
    kind: "skipped",
    node: "db1",
    file: `binlog.00000${seq}`,
    key: null,
    rawSize: 0,
    size: 0,
    sha256: null,
    domain: 1,
    gtidFirst: `1-1-${seq * 10}`,
    gtidLast: `1-1-${seq * 10 + 9}`,
    transactions: 10,
    firstEventAt: null,
    lastEventAt: null,
    gap: null,
    archivedAt: new Date().toISOString(),
  };
}

describe("trust nothing unsigned: attacks with write access only", () => {
  let dir: string;
  let repoDir: string;
  let g: GlobalOptions;
  let recipient: string;

  const config = (extraKeys = "  signingKey: signing.key\n") => `version: 1
cluster:
  nodes: [{ name: db1, host: 127.0.0.1, port: 1 }]
  credentials: { backup: { user: strongbox_backup } }
repositories:
  - { name: main, storage: { type: local, path: ${repoDir} }, retention: { keepLast: 2 } }
  - { name: offsite, storage: { type: local, path: ${join(dir, "offsite")} } }
keys:
  recipients: [${recipient}]
  identity: identity.txt
${extraKeys}stateDir: state
`;

  /** A fresh repository with `n` genuine backups, one a day, the newest yesterday. */
  async function fresh(n: number, type: Manifest["type"] = "logical"): Promise<Manifest[]> {
    await rm(repoDir, { recursive: true, force: true });
    await rm(join(dir, "offsite"), { recursive: true, force: true });
    await rm(join(dir, "state"), { recursive: true, force: true });
    assert.equal((await init(g, {}, new MemoryOutput())).exitCode, 0);
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    try {
      const signing = await signingKeyOf(loaded);
      const out: Manifest[] = [];
      for (let i = n; i >= 1; i--) {
        out.push(
          await genuineBackup(repo, signing, recipient, {
            startedAt: new Date(Date.now() - i * DAY),
            gtid: `0-1-${100 * (n - i + 1)}`,
            type,
          }),
        );
      }
      return out;
    } finally {
      await close();
    }
  }

  const verifyJson = async () => {
    const out = new MemoryOutput(true);
    const e = await verify(g, {}, out).then(
      () => undefined,
      (x: StrongboxError) => x,
    );
    return { error: e, result: JSON.parse(out.stdoutText) as Record<string, unknown> & { ok: boolean } };
  };

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), "sb-trust-"));
    repoDir = join(dir, "repository");
    const out = new MemoryOutput(true);
    await generate({ json: true, verbose: false }, { out: join(dir, "identity.txt") }, out);
    recipient = (JSON.parse(out.stdoutText) as { recipient: string }).recipient;
    await writeFile(join(dir, "strongbox.yaml"), config(), { mode: 0o600 });
    g = { config: join(dir, "strongbox.yaml"), json: false, verbose: false };
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("init writes the signing public key for escrow and starts the evidence log", async () => {
    await fresh(0);
    const pub = readFileSync(join(dir, "signing.key.pub"), "utf8").trim();
    assert.match(pub, /^ed25519:[A-Za-z0-9+/]{43}=$/);
    assert.ok(existsSync(join(repoDir, evidenceKey(1))), "genesis entry");
  });

  it("prune: forged backups with ids in the future are not counted, not deleted, and reported", async () => {
    const genuine = await fresh(3);
    const { repo, close } = await openConfiguredRepository(g.config);
    const future = (d: number) => new Date(Date.now() + d * DAY);
    const forged = [
      await forgedBackup(repo, recipient, { startedAt: future(1), type: "full" }),
      await forgedBackup(repo, recipient, { startedAt: future(2), type: "full", unsigned: true }),
      await forgedBackup(repo, recipient, { startedAt: future(3), type: "full" }),
    ];
    await close();
    const out = new MemoryOutput(true);
    const r = await prune(g, {}, out);
    const res = r.result as { kept: { id: string }[]; removed: string[]; unverified: { id: string }[] };
    // keepLast 2 keeps the two newest GENUINE backups; the oldest genuine one goes by the policy.
    assert.deepEqual(
      res.kept.map((k) => k.id),
      [genuine[1]!.id, genuine[2]!.id],
    );
    assert.deepEqual(res.removed, [genuine[0]!.id]);
    assert.deepEqual(res.unverified.map((u) => u.id).sort(), forged.map((m) => m.id).sort());
    for (const m of forged)
      assert.ok(existsSync(join(repoDir, "backups", m.id, "manifest.json")), "left in place");
    assert.match(out.stderrText, /UNVERIFIED .* \(not counted, left in place\)/);
    // And the removal is recorded: verify finds nothing missing.
    const v = await verifyJson();
    assert.deepEqual((v.result.missing as unknown[]).length, 0);
  });

  it("list: a forged backup is listed as UNVERIFIED with its id, none of its fields", async () => {
    await fresh(1);
    const { repo, close } = await openConfiguredRepository(g.config);
    const forged = await forgedBackup(repo, recipient, { gtid: "0-1-987654321" });
    await close();
    const out = new MemoryOutput();
    await list(g, {}, out);
    assert.match(
      out.stdoutText,
      new RegExp(`UNVERIFIED +${forged.id} +manifest of backup .* fails its signature`),
    );
    assert.doesNotMatch(out.stdoutText, /987654321/);
    const json = new MemoryOutput(true);
    const r = await list(g, {}, json);
    const res = r.result as { backups: { id: string }[]; unverified: { id: string }[] };
    assert.ok(!res.backups.some((b) => b.id === forged.id));
    assert.deepEqual(
      res.unverified.map((u) => u.id),
      [forged.id],
    );
    await assert.rejects(show(g, { id: forged.id }, new MemoryOutput()), { code: "MANIFEST_TAMPERED" });
  });

  it("copy: a forged backup is not copied; a forged manifest holding a genuine id offsite blocks only that one", async () => {
    const genuine = await fresh(2);
    const { repo, close } = await openConfiguredRepository(g.config);
    const forged = await forgedBackup(repo, recipient, {});
    await close();
    // Offsite, the attacker plants an (unsigned) manifest under the id of the newest genuine backup.
    await plant(
      join(dir, "offsite"),
      `backups/${genuine[1]!.id}/manifest.json`,
      JSON.stringify({ ...genuine[1]!, signature: undefined, gtid: "0-1-666" }),
    );
    const out = new MemoryOutput();
    const r = await copy(g, { to: "offsite", missing: true }, out);
    const res = r.result as { copied: string[]; unverified: { id: string }[] };
    assert.deepEqual(res.copied, [genuine[0]!.id]);
    assert.deepEqual(res.unverified.map((u) => u.id).sort(), [forged.id, genuine[1]!.id].sort());
    assert.match(out.stdoutText, new RegExp(`UNVERIFIED ${forged.id}: not copied`));
    assert.ok(
      !existsSync(join(dir, "offsite", "backups", forged.id)),
      "the forged backup stayed where it was",
    );
    // The copy is recorded offsite: a reader there trusts it, and reports the planted manifest.
    const off = new MemoryOutput(true);
    await list(g, { repo: "offsite" }, off);
    const listed = JSON.parse(off.stdoutText) as { backups: { id: string }[]; unverified: { id: string }[] };
    assert.deepEqual(
      listed.backups.map((b) => b.id),
      [genuine[0]!.id],
    );
    assert.deepEqual(
      listed.unverified.map((u) => u.id),
      [genuine[1]!.id],
    );
  });

  it("backup's plan: a forged newer full is never a parent", async () => {
    const genuine = await fresh(2, "full");
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    try {
      const forged = await forgedBackup(repo, recipient, { type: "full", startedAt: new Date() });
      const skipped: string[] = [];
      const history = await planningHistory(await verifierFor(loaded, repo), undefined, "incremental", (d) =>
        skipped.push(d.id),
      );
      assert.deepEqual(
        history.map((m) => m.id),
        [genuine[1]!.id],
      );
      assert.deepEqual(skipped, [forged.id]);
      const node = { name: "db1", host: "127.0.0.1", port: 1 };
      const health = [
        {
          node,
          reachable: true,
          clusterStatus: "Primary",
          state: "Synced",
          ready: true,
          clusterSize: 1,
          clusterUuid: "",
        },
      ] as unknown as Parameters<typeof planBackup>[1];
      const plan = planBackup({ fullEvery: "7d" }, health, history, { kind: "incremental" });
      assert.equal(plan.parent?.id, genuine[1]!.id);
    } finally {
      await close();
    }
  });

  it("a repository from before the evidence log: trusted by signature, then baselined by its first writer", async () => {
    await fresh(0);
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    let legacy: Manifest;
    try {
      // As an older strongbox left it: no evidence/, a record without `evidence`, a signed backup.
      const signing = await signingKeyOf(loaded);
      delete repo.info.evidence;
      await repo.updateInfo({}, signing.privateKeyPem);
      await rm(join(repoDir, "evidence"), { recursive: true });
      legacy = await forgedBackup(repo, recipient, { startedAt: new Date(Date.now() - DAY) });
      // (signed by the real key this time: the way an older version committed it)
      const { signManifest } = await import("../../src/repository/manifest.ts");
      await writeFile(
        join(repoDir, "backups", legacy.id, "manifest.json"),
        JSON.stringify(signManifest(legacy, signing.privateKeyPem, signing.publicKey)),
      );
    } finally {
      await close();
    }
    const out = new MemoryOutput(true);
    await list(g, {}, out);
    assert.deepEqual(
      (JSON.parse(out.stdoutText) as { backups: { id: string }[] }).backups.map((b) => b.id),
      [legacy.id],
    );
    // The first writer records the baseline; from then on a deletion is noticed.
    assert.equal((await prune(g, {}, new MemoryOutput())).exitCode, 0);
    assert.ok(existsSync(join(repoDir, "evidence")));
    assert.equal((await verifyJson()).result.ok, true);
    await rm(join(repoDir, "backups", legacy.id), { recursive: true });
    const v = await verifyJson();
    assert.deepEqual(
      (v.result.missing as { id: string }[]).map((m) => m.id),
      [legacy.id],
    );
  });

  it("verify and status: the newest backup deleted is reported MISSING", async () => {
    const genuine = await fresh(2);
    await rm(join(repoDir, "backups", genuine[1]!.id), { recursive: true });
    const v = await verifyJson();
    assert.equal(v.error?.code, "VERIFY_FAILED");
    assert.deepEqual(
      (v.result.missing as { id: string }[]).map((m) => m.id),
      [genuine[1]!.id],
    );
    const out = new MemoryOutput(true);
    const s = await status(g, out);
    assert.equal(s.exitCode, 2);
    assert.match(out.stdoutText, new RegExp(`MISSING ${genuine[1]!.id}: backup .* was committed`));
  });

  it("a pruned backup put back is not trusted (not in the evidence log)", async () => {
    const genuine = await fresh(3);
    const saved = join(dir, "saved");
    await rm(saved, { recursive: true, force: true });
    await copyDir(join(repoDir, "backups", genuine[0]!.id), saved);
    assert.equal((await prune(g, {}, new MemoryOutput())).exitCode, 0);
    assert.ok(!existsSync(join(repoDir, "backups", genuine[0]!.id)));
    await copyDir(saved, join(repoDir, "backups", genuine[0]!.id));
    const v = await verifyJson();
    assert.equal(v.error?.code, "VERIFY_FAILED");
    assert.deepEqual(
      (v.result.unverified as { id: string; code: string }[]).map((u) => [u.id, u.code]),
      [[genuine[0]!.id, "BACKUP_NOT_IN_EVIDENCE"]],
    );
    // prune neither counts nor deletes it.
    const r = await prune(g, { dryRun: true }, new MemoryOutput(true));
    assert.ok(!(r.result as { removed: string[] }).removed.includes(genuine[0]!.id));
  });

  it("an older copy of a manifest from before a key rotation is refused (BACKUP_ROLLED_BACK)", async () => {
    const genuine = await fresh(1);
    const id = genuine[0]!.id;
    const manifestFile = join(repoDir, "backups", id, "manifest.json");
    const partFile = join(repoDir, genuine[0]!.parts[0]!.key);
    const oldManifest = readFileSync(manifestFile);
    const oldPart = readFileSync(partFile);
    // Rotate to a second identity: the part header is re-wrapped, the manifest replaced.
    const out = new MemoryOutput(true);
    await generate({ json: true, verbose: false }, { out: join(dir, "b.txt"), force: true }, out);
    const b = (JSON.parse(out.stdoutText) as { recipient: string }).recipient;
    await writeFile(g.config!, config().replace(`recipients: [${recipient}]`, `recipients: [${b}]`), {
      mode: 0o600,
    });
    const r = await rotate(g, { identity: join(dir, "identity.txt") }, new MemoryOutput());
    assert.equal(r.exitCode, 0);
    assert.equal((await verifyJson()).result.ok, true);
    // The attacker puts back the old manifest and part: readable again with the removed key.
    await writeFile(manifestFile, oldManifest);
    await writeFile(partFile, oldPart);
    const v = await verifyJson();
    assert.equal(v.error?.code, "VERIFY_FAILED");
    assert.deepEqual(
      (v.result.unverified as { code: string }[]).map((u) => u.code),
      ["BACKUP_ROLLED_BACK"],
    );
    await writeFile(g.config!, config(), { mode: 0o600 });
  });

  it("the evidence log: entries dropped in, signed by another key, or deleted are reported", async () => {
    await fresh(2);
    let v = await verifyJson();
    assert.equal(v.result.ok, true, JSON.stringify(v.result));
    const entries = (await readdir(join(repoDir, "evidence"))).sort();
    // An entry signed by the attacker's key appended after the tail.
    const last = JSON.parse(readFileSync(join(repoDir, "evidence", entries.at(-1)!), "utf8")) as {
      seq: number;
      backups: Record<string, string>;
    };
    const { signature: _s, ...unsigned } = last as unknown as Record<string, unknown>;
    const { canonicalJson, sign } = await import("../../src/crypto/sign.ts");
    const forgedEntry = {
      ...unsigned,
      seq: last.seq + 1,
      backups: {},
    };
    const signed = {
      ...forgedEntry,
      signature: {
        algorithm: "ed25519",
        publicKey: attackerKey.publicKey,
        value: sign(attackerKey.privateKeyPem, Buffer.from(canonicalJson(forgedEntry))),
      },
    };
    await plant(repoDir, evidenceKey(last.seq + 1), JSON.stringify(signed));
    v = await verifyJson();
    assert.equal(v.error?.code, "VERIFY_FAILED");
    assert.match(
      JSON.stringify(v.result.evidence),
      new RegExp(`${evidenceKey(last.seq + 1)} is not signed by a trusted key`),
    );
    // The forged entry does not hide the backups: none is reported missing or untrusted.
    assert.deepEqual(v.result.missing, []);
    await unlink(join(repoDir, evidenceKey(last.seq + 1)));
    // Deleting entries in the middle breaks the chain.
    await unlink(join(repoDir, "evidence", entries[1]!));
    v = await verifyJson();
    assert.match(JSON.stringify(v.result.evidence), /is missing: the log was tampered with/);
  });

  it("the evidence log cut back to an older entry (and the newest backup deleted) is noticed by this host", async () => {
    const genuine = await fresh(2);
    assert.equal((await verifyJson()).result.ok, true); // this host remembers the newest entry
    const entries = (await readdir(join(repoDir, "evidence"))).sort();
    // The newest backup's two entries and the backup itself go.
    await unlink(join(repoDir, "evidence", entries.at(-1)!));
    await unlink(join(repoDir, "evidence", entries.at(-2)!));
    await rm(join(repoDir, "backups", genuine[1]!.id), { recursive: true });
    const v = await verifyJson();
    assert.equal(v.error?.code, "VERIFY_FAILED");
    assert.match(JSON.stringify(v.result.evidence), /the evidence log was rolled back: this host saw entry/);
  });

  it("hash before use: a forged part never reaches the decompressor; the error names it", async () => {
    const genuine = await fresh(1);
    const m = genuine[0]!;
    // The attacker encrypts other content to the public recipient and puts it in place of part 0.
    const forged = await encryptBuffer(Buffer.from("-- forged\nDROP DATABASE important;\n"), [
      parseRecipient(recipient),
    ]);
    await writeFile(join(repoDir, m.parts[0]!.key), forged);
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    const received: Buffer[] = [];
    const consumer = new Writable({
      write(c: Buffer, _e, cb) {
        received.push(c);
        cb();
      },
    });
    try {
      await assert.rejects(
        decodeBackup(repositorySource(repo, await identitiesOf(loaded)), m, { sink: "consumer", consumer }),
        (e: StrongboxError) => {
          assert.equal(e.code, "PART_CORRUPT", String(e));
          assert.match(e.message, new RegExp(`backup ${m.id} part 0 \\(.*\\) fails its SHA-256 check`));
          return true;
        },
      );
    } finally {
      await close();
    }
    assert.equal(Buffer.concat(received).length, 0, "not one byte reached the consumer");
  });

  it("hash before use: a local part is read from the very file that was hashed; a name swapped after the check changes nothing", async () => {
    const genuine = await fresh(1);
    const m = genuine[0]!;
    const part = m.parts[0]!;
    const spoolRoot = await mkdtemp(join(tmpdir(), "sb-spool-"));
    const dead = join(spoolRoot, "strongbox-spool-999999999-abc");
    await mkdir(dead, { mode: 0o700 });
    await writeFile(join(dead, "object"), "left by a killed run");
    const { repo, close } = await openConfiguredRepository(g.config);
    const path = join(repoDir, part.key);
    try {
      const original = readFileSync(path);
      const stream = await readPartChecked(repo, m, part, undefined, { tempDir: spoolRoot });
      // No copy of a local part is made; a killed run's spool is swept all the same.
      assert.deepEqual(await readdir(spoolRoot), []);
      // Checked, then replaced under its name (write access to the directory is enough for that).
      await writeFile(`${path}.forged`, Buffer.alloc(original.length, 0x41));
      await rename(`${path}.forged`, path);
      const chunks: Buffer[] = [];
      for await (const c of stream) chunks.push(c as Buffer);
      assert.ok(Buffer.concat(chunks).equals(original), "the bytes read are the ones that were hashed");
      await assert.rejects(readPartChecked(repo, m, part, undefined, { tempDir: spoolRoot }), {
        code: "PART_CORRUPT",
        message: /fails its SHA-256 check/,
      });
      await writeFile(path, Buffer.concat([original, Buffer.from("x")]));
      await assert.rejects(readPartChecked(repo, m, part, undefined, { tempDir: spoolRoot }), {
        code: "PART_CORRUPT",
        message: /larger than recorded/,
      });
      await writeFile(path, original.subarray(0, 100));
      await assert.rejects(readPartChecked(repo, m, part, undefined, { tempDir: spoolRoot }), {
        code: "PART_CORRUPT",
        message: /has 100 bytes, the manifest says/,
      });
      await writeFile(path, original);
    } finally {
      await close();
      await rm(spoolRoot, { recursive: true, force: true });
    }
  });

  it("hash before use spools objects that are not local files into a private directory that nothing outlives", async () => {
    const genuine = await fresh(1);
    const m = genuine[0]!;
    const spoolRoot = await mkdtemp(join(tmpdir(), "sb-spool-"));
    const dead = join(spoolRoot, "strongbox-spool-999999999-abc");
    await mkdir(dead, { mode: 0o700 });
    await writeFile(join(dead, "object"), "left by a killed run");
    const { repo: local, close } = await openConfiguredRepository(g.config);
    // The same objects through a storage with only get(), as SFTP and S3 are.
    const storage = { description: local.storage.description, get: local.storage.get.bind(local.storage) };
    const repo = Object.assign(Object.create(local), { storage }) as typeof local;
    try {
      const stream = await readPartChecked(repo, m, m.parts[0]!, undefined, { tempDir: spoolRoot });
      // Checked and handed on: the spool's name is gone already, the bytes live in the open stream.
      assert.deepEqual(await readdir(spoolRoot), []);
      let n = 0;
      for await (const c of stream) n += (c as Buffer).length;
      assert.equal(n, m.parts[0]!.size);
      await writeFile(join(repoDir, m.parts[0]!.key), "tampered");
      await assert.rejects(readPartChecked(repo, m, m.parts[0]!, undefined, { tempDir: spoolRoot }), {
        code: "PART_CORRUPT",
      });
      assert.deepEqual(await readdir(spoolRoot), [], "a failed check leaves nothing either");
      // A temp directory that cannot take it: its own clear error, not a read error of the part.
      await assert.rejects(
        readPartChecked(repo, m, m.parts[0]!, undefined, { tempDir: join(spoolRoot, "gone") }),
        (e: StrongboxError) => {
          assert.equal(e.code, "SPOOL_FAILED");
          assert.match(
            e.message,
            /cannot hold .*part-000000\.age in .*gone for its check before use \(ENOENT\)/,
          );
          return true;
        },
      );
    } finally {
      await close();
      await rm(spoolRoot, { recursive: true, force: true });
    }
  });

  it("a reader with only keys.signingPublicKey lists, shows and verifies; writers are refused clearly", async () => {
    const genuine = await fresh(1);
    const pub = readFileSync(join(dir, "signing.key.pub"), "utf8").trim();
    const readerCfg = join(dir, "reader.yaml");
    await writeFile(readerCfg, config(`  signingPublicKey: "${pub}"\n`), { mode: 0o600 });
    const r = { ...g, config: readerCfg };
    assert.equal((await loadConfig(readerCfg)).config.keys.signingKey, undefined);
    const out = new MemoryOutput(true);
    await list(r, {}, out);
    assert.deepEqual(
      (JSON.parse(out.stdoutText) as { backups: { id: string }[] }).backups.map((b) => b.id),
      [genuine[0]!.id],
    );
    assert.equal((await show(r, { id: genuine[0]!.id }, new MemoryOutput())).exitCode, 0);
    assert.equal((await verify(r, { readData: true }, new MemoryOutput())).exitCode, 0);
    await assert.rejects(prune(r, {}, new MemoryOutput()), (e: StrongboxError) => {
      assert.equal(e.code, "SIGNING_KEY_MISSING");
      assert.match(e.message, /has no keys.signingKey: this configuration only reads/);
      return true;
    });
    // A copy of the backup host's config without its private key, and no pinned key: told what to set.
    await writeFile(readerCfg, config("  signingKey: no-such.key\n"), { mode: 0o600 });
    await assert.rejects(list(r, {}, new MemoryOutput()), (e: StrongboxError) => {
      assert.equal(e.code, "SIGNING_KEY_MISSING");
      assert.match(e.message, /no-such\.key is missing, and no keys.signingPublicKey is set/);
      return true;
    });
    // A reader pinning another key trusts nothing here.
    await writeFile(readerCfg, config(`  signingPublicKey: "${attackerKey.publicKey}"\n`), { mode: 0o600 });
    await assert.rejects(list(r, {}, new MemoryOutput()), { code: "REPO_TAMPERED" });
  });

  it("key rotate --signing: skips and reports an unverifiable manifest; readers then need only the new key", async () => {
    const genuine = await fresh(2);
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    const forged = await forgedBackup(repo, recipient, {});
    // An archived binlog's index entry, signed by the key about to be retired.
    const oldKey = await signingKeyOf(loaded);
    await appendEntry(repo, signEntry(binlogEntry(1), oldKey.privateKeyPem, oldKey.publicKey));
    await close();
    const oldManifest = readFileSync(join(repoDir, "backups", genuine[0]!.id, "manifest.json"));
    const out = new MemoryOutput(true);
    const r = await rotate(g, { signing: true }, out);
    assert.equal(r.exitCode, 0);
    const res = r.result as {
      signingPublicKey: string;
      repositories: { resigned: number; skipped: { id: string }[] }[];
    };
    assert.equal(res.repositories[0]!.resigned, 2);
    assert.deepEqual(
      res.repositories[0]!.skipped.map((s) => s.id),
      [forged.id],
    );
    assert.equal(readFileSync(join(dir, "signing.key.pub"), "utf8").trim(), res.signingPublicKey);
    // A reader pinning only the new public key verifies everything genuine, old evidence included.
    const readerCfg = join(dir, "reader.yaml");
    await writeFile(readerCfg, config(`  signingPublicKey: "${res.signingPublicKey}"\n`), { mode: 0o600 });
    await rm(join(repoDir, "backups", forged.id), { recursive: true });
    const v = new MemoryOutput(true);
    assert.equal((await verify({ ...g, config: readerCfg }, {}, v)).exitCode, 0, v.stdoutText);
    // The old key's binlog index entry is vouched for by the rotation's evidence entry; one signed
    // afterwards by the retired (stolen?) key is not.
    const reader = await openConfiguredRepository(readerCfg);
    try {
      await appendEntry(reader.repo, signEntry(binlogEntry(2), oldKey.privateKeyPem, oldKey.publicKey));
      const idx = await readIndex(reader.repo, [res.signingPublicKey]);
      assert.deepEqual(
        idx.entries.map((e) => e.seq),
        [1],
      );
      assert.deepEqual(
        idx.bad.map((b) => b.key),
        ["binlogs/index/0000000002.json"],
      );
    } finally {
      await reader.close();
    }
    // A manifest signed before the rotation, put back, is refused.
    await writeFile(join(repoDir, "backups", genuine[0]!.id, "manifest.json"), oldManifest);
    await assert.rejects(show({ ...g, config: readerCfg }, { id: genuine[0]!.id }, new MemoryOutput()), {
      code: "MANIFEST_TAMPERED",
    });
  });

  it("key rotate --signing, killed with SIGKILL mid-way, leaves a readable repository and resumes", async () => {
    await fresh(40);
    const evidenceDir = join(repoDir, "evidence");
    const before = (await readdir(evidenceDir)).length;
    const { child, result } = startCli(["--config", g.config!, "key", "rotate", "--signing", "--json"]);
    // Wait on the real condition: a few manifests swapped (each swap adds two evidence entries).
    while ((await readdir(evidenceDir)).length < before + 6 && child.exitCode === null) await sleep(5);
    child.kill("SIGKILL");
    const killed = await result;
    assert.equal(killed.code, null, `killed before it finished: ${killed.stdout}`);
    assert.ok(existsSync(join(dir, "signing.key.new")), "the rotation had not completed");
    // Readers on this host trust both keys meanwhile: every manifest verifies, old or new.
    const mid = await verifyJson();
    assert.equal(mid.result.ok, true, JSON.stringify(mid.result));
    const r = await rotate(g, { signing: true }, new MemoryOutput(true));
    const res = r.result as { signingPublicKey: string; repositories: { resigned: number }[] };
    assert.ok(res.repositories[0]!.resigned < 40, "the resumed run re-signs only what was left");
    assert.ok(!existsSync(join(dir, "signing.key.new")));
    const pub = readFileSync(join(dir, "signing.key.pub"), "utf8").trim();
    assert.equal(pub, res.signingPublicKey);
    const readerCfg = join(dir, "reader.yaml");
    await writeFile(readerCfg, config(`  signingPublicKey: "${pub}"\n`), { mode: 0o600 });
    const v = new MemoryOutput(true);
    assert.equal((await verify({ ...g, config: readerCfg }, {}, v)).exitCode, 0, v.stdoutText);
  });

  it("key rotate --signing --prepare: remote readers pin old and new first, and never see a gap", async () => {
    await fresh(2);
    const old = readFileSync(join(dir, "signing.key.pub"), "utf8").trim();
    const p = await rotate(g, { signing: true, prepare: true }, new MemoryOutput(true));
    const next = (p.result as { next: string }).next;
    assert.equal(readFileSync(join(dir, "signing.key.new.pub"), "utf8").trim(), next);
    const readerCfg = join(dir, "reader.yaml");
    const readerVerifies = async (keys: string[]) => {
      await writeFile(readerCfg, config(`  signingPublicKey: ${JSON.stringify(keys)}\n`), { mode: 0o600 });
      return verify({ ...g, config: readerCfg }, {}, new MemoryOutput(true)).then(
        (r) => r.exitCode,
        (e: StrongboxError) => e.code,
      );
    };
    assert.equal(await readerVerifies([old, next]), 0, "before the rotation");
    const r = await rotate(g, { signing: true }, new MemoryOutput(true));
    assert.equal(
      (r.result as { signingPublicKey: string }).signingPublicKey,
      next,
      "the prepared key is used",
    );
    assert.equal(await readerVerifies([old, next]), 0, "after it, with both pinned");
    assert.equal(await readerVerifies([next]), 0, "after it, with only the new key");
    assert.equal(await readerVerifies([old]), "REPO_TAMPERED", "the retired key alone trusts nothing");
    assert.ok(!existsSync(join(dir, "signing.key.new.pub")));
  });

  it("key rotate --signing resumes after being killed half way", async () => {
    const genuine = await fresh(3);
    // The state a kill -9 leaves: the next key exists, one manifest re-signed and recorded as in
    // flight, the repository record still signed by the old key.
    const { generateSigningKey } = await import("../../src/crypto/sign.ts");
    const next = generateSigningKey();
    await writeFile(join(dir, "signing.key.new"), next.privateKeyPem, { mode: 0o600 });
    const { repo, loaded, close } = await openConfiguredRepository(g.config);
    try {
      const { EvidenceWriter } = await import("../../src/repository/evidence.ts");
      const { manifestDigest, signManifest } = await import("../../src/repository/manifest.ts");
      const { signingKeyOf: keyOf } = await import("../../src/config/context.ts");
      const old = await keyOf(loaded);
      const w = await EvidenceWriter.open(repo, next, [old.publicKey]);
      const resigned = signManifest(genuine[1]!, next.privateKeyPem, next.publicKey);
      await w
        .record("replace", [{ id: resigned.id, digest: manifestDigest(resigned) }], async () => {
          await repo.replaceManifest(resigned);
          throw new Error("killed");
        })
        .catch(() => {});
    } finally {
      await close();
    }
    // Readers on this host trust both keys meanwhile: nothing is untrusted.
    assert.equal((await verifyJson()).result.ok, true);
    const r = await rotate(g, { signing: true }, new MemoryOutput(true));
    const res = r.result as { signingPublicKey: string; repositories: { resigned: number }[] };
    assert.equal(res.signingPublicKey, next.publicKey, "the interrupted run's key is used");
    assert.equal(res.repositories[0]!.resigned, 2);
    assert.ok(!existsSync(join(dir, "signing.key.new")));
    assert.equal((await verifyJson()).result.ok, true);
  });
});

async function copyDir(from: string, to: string): Promise<void> {
  await mkdir(to, { recursive: true });
  for (const f of await readdir(from)) await copyFile(join(from, f), join(to, f));
}
