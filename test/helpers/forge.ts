// Backups without a cluster, for tests of what readers trust: genuine ones made as the backup host
// makes them (real zstd stream, age parts to the recipient, signed manifest, evidence entries), and
// an attacker's work, who can write to the repository but holds no key: own signing key, parts
// encrypted to the public recipient, files copied, deleted and put back.
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { encryptBuffer } from "../../src/crypto/age.ts";
import { parseRecipient } from "../../src/crypto/age-keys.ts";
import { generateSigningKey, type SigningKey } from "../../src/crypto/sign.ts";
import type { PartRecord } from "../../src/pipeline/parts.ts";
import { EvidenceWriter } from "../../src/repository/evidence.ts";
import {
  MANIFEST_FORMAT,
  type Manifest,
  manifestDigest,
  newBackupId,
  signManifest,
} from "../../src/repository/manifest.ts";
import type { Repository } from "../../src/repository/repository.ts";

/** A logical dump's text: what mariadb-dump would write, with its trailer. */
export function dumpText(marker: string, bytes = 4096): string {
  const rows = Math.max(1, Math.floor(bytes / 64));
  const lines = [`-- MariaDB dump ${marker}`];
  for (let i = 0; i < rows; i++) lines.push(`INSERT INTO t VALUES (${i}, '${marker}-${i}');`);
  lines.push("-- Dump completed on 2026-12-07 10:00:00");
  return `${lines.join("\n")}\n`;
}

/** Encrypts `plain` (compressed stream bytes) in parts of `partSize` to `recipient`; stores them. */
export async function storeParts(
  repo: Repository,
  id: string,
  plain: Buffer,
  recipient: string,
  partSize = 1024,
): Promise<PartRecord[]> {
  const parts: PartRecord[] = [];
  for (let i = 0, off = 0; off < plain.length; i++, off += partSize) {
    const slice = plain.subarray(off, off + partSize);
    const stored = await encryptBuffer(slice, [parseRecipient(recipient)]);
    const key = repo.partKey(id, i);
    await repo.storage.put(key, stored);
    parts.push({
      index: i,
      key,
      size: stored.length,
      sha256: createHash("sha256").update(stored).digest("hex"),
      plainSize: slice.length,
    });
  }
  return parts;
}

export interface BackupSpec {
  id?: string;
  type?: Manifest["type"];
  parent?: string | null;
  startedAt?: Date;
  gtid?: string | null;
  sql?: string;
  partSize?: number;
}

/** The manifest of a logical backup whose parts are stored (not signed, not committed). */
export async function buildBackup(
  repo: Repository,
  recipient: string,
  spec: BackupSpec = {},
): Promise<Manifest> {
  const startedAt = spec.startedAt ?? new Date();
  const id = spec.id ?? newBackupId(startedAt);
  const sql = Buffer.from(spec.sql ?? dumpText(id));
  const compressed = execFileSync("zstd", ["-q", "-c", "-1"], { input: sql });
  const parts = await storeParts(repo, id, compressed, recipient, spec.partSize);
  const details = await encryptBuffer(
    Buffer.from(
      JSON.stringify({
        donorHost: "db1.example",
        donorPort: 3306,
        nodes: [],
        inventory: { schemas: [], tables: [], routines: 0, triggers: 0, events: 0 },
      }),
    ),
    [parseRecipient(recipient)],
  );
  const type = spec.type ?? "logical";
  return {
    format: MANIFEST_FORMAT,
    id,
    type,
    parent: spec.parent ?? null,
    chainRoot: id,
    cluster: { name: "galera", uuid: null, seqno: null, size: 1 },
    donor: "db1",
    serverVersion: "11.4.0-MariaDB",
    gtid: spec.gtid ?? null,
    binlog: null,
    lsn: null,
    startedAt: startedAt.toISOString(),
    finishedAt: startedAt.toISOString(),
    durations: { total: 1 },
    bytes: { raw: sql.length, compressed: compressed.length, stored: parts.reduce((s, p) => s + p.size, 0) },
    compression: { algorithm: "zstd", level: 1 },
    encryption: { format: "age-v1", recipients: [recipient], passphrase: false },
    parts,
    details: details.toString("base64"),
    tool: {
      name: "strongbox",
      version: "test",
      backupTool: type === "logical" ? "mariadb-dump" : "mariabackup",
    },
  };
}

/** A genuine backup, as the backup host commits it: signed, recorded in the evidence log. */
export async function genuineBackup(
  repo: Repository,
  signing: SigningKey,
  recipient: string,
  spec: BackupSpec = {},
): Promise<Manifest> {
  const signed = signManifest(
    await buildBackup(repo, recipient, spec),
    signing.privateKeyPem,
    signing.publicKey,
  );
  const w = await EvidenceWriter.open(repo, signing, [signing.publicKey]);
  await w.record("commit", [{ id: signed.id, digest: manifestDigest(signed) }], () => repo.commit(signed));
  return signed;
}

/** The attacker's own signing key: signatures that verify, but not against a trusted key. */
export const attackerKey = generateSigningKey();

/**
 * A backup written with repository write access only: real parts encrypted to the public
 * recipient, a manifest signed by the attacker's key (`unsigned`: none at all), no evidence.
 */
export async function forgedBackup(
  repo: Repository,
  recipient: string,
  spec: BackupSpec & { unsigned?: boolean } = {},
): Promise<Manifest> {
  const m = await buildBackup(repo, recipient, spec);
  const out = spec.unsigned ? m : signManifest(m, attackerKey.privateKeyPem, attackerKey.publicKey);
  await repo.commit(out);
  return out;
}

/** Writes a file into a local repository directory as an attacker would (no strongbox code). */
export async function plant(dir: string, key: string, body: string | Buffer): Promise<void> {
  await mkdir(join(dir, key, ".."), { recursive: true });
  await writeFile(join(dir, key), body);
}

/**
 * Signs `m` with the backup host's key and commits it (or, `replace`, swaps it for the committed
 * one) with its evidence entries, as the backup host does: for tests that make or change
 * genuine backups by hand.
 */
export async function commitAsBackupHost(
  repo: Repository,
  signing: SigningKey,
  m: Manifest,
  o: { replace?: boolean } = {},
): Promise<Manifest> {
  const signed = signManifest(m, signing.privateKeyPem, signing.publicKey);
  const w = await EvidenceWriter.open(repo, signing, [signing.publicKey]);
  await w.record(o.replace ? "replace" : "commit", [{ id: signed.id, digest: manifestDigest(signed) }], () =>
    o.replace ? repo.replaceManifest(signed) : repo.commit(signed),
  );
  return signed;
}

/** Removes a committed backup as prune does (recorded in the evidence log before and after). */
export async function removeAsBackupHost(repo: Repository, signing: SigningKey, id: string): Promise<void> {
  const w = await EvidenceWriter.open(repo, signing, [signing.publicKey]);
  await w.record("remove", [{ id, digest: null }], async () => {
    await repo.storage.delete(repo.manifestKey(id));
    await repo.removeUncommitted(id);
  });
}
