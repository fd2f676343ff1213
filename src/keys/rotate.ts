// Key rotation without re-encrypting payloads.
//
// Recipients: each part's age header is re-wrapped for the new recipient set (same file key,
// new stanzas, new MAC) and written as a NEW object next to the old one; then the manifest, with
// the new part keys, hashes and recipients, is re-signed and replaces the old manifest
// atomically; only then are the old parts deleted. A crash at any point leaves a manifest whose
// parts all exist and match: before the swap the old ones, after it the new ones. Leftovers are
// unreferenced objects, removed by the next rotation or prune.
//
// Signing key: every manifest is verified with the old key and re-signed with the new one; the
// new key is kept in `<signingKey>.new` until all are done, so an interrupted run resumes.
// Every manifest swap is recorded in the evidence log around it (docs/repository-format.md), and
// a manifest that does not verify is reported and skipped.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { decryptBuffer, encryptBuffer, rewrapHeader } from "../crypto/age.ts";
import { headerLength } from "../crypto/age-header.ts";
import type { AgeIdentity, AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { EvidenceWriter } from "../repository/evidence.ts";
import { manifestDigest, signManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import type { BackupVerifier, Distrusted } from "../repository/trusted.ts";
import { readAll } from "../util/stream.ts";

const HEADER_PROBE = 64 * 1024;

async function readHeaderBytes(repo: Repository, key: string): Promise<{ header: Buffer; length: number }> {
  const prefix = await readAll(await repo.storage.get(key, { start: 0, end: HEADER_PROBE - 1 }));
  const length = headerLength(prefix);
  if (length === undefined)
    throw new StrongboxError(
      "AGE_HEADER_INVALID",
      `${key}: no complete age header in its first ${HEADER_PROBE} bytes`,
    );
  return { header: prefix.subarray(0, length), length };
}

/** The next generation's key for a part: part-000003.age → part-000003.g2.age → part-000003.g3.age */
export function rotatedKey(key: string): string {
  const m = /^(.*\/part-\d+)(?:\.g(\d+))?\.age$/.exec(key);
  if (!m) throw new StrongboxError("ROTATE_BAD_KEY", `unexpected part key ${key}`);
  return `${m[1]}.g${Number(m[2] ?? 1) + 1}.age`;
}

async function rewrapPart(
  repo: Repository,
  part: PartRecord,
  identities: AgeIdentity[],
  recipients: AgeRecipient[],
  signal?: AbortSignal,
): Promise<PartRecord> {
  const { header, length } = await readHeaderBytes(repo, part.key);
  let newHeader: Buffer;
  try {
    newHeader = rewrapHeader(header, identities, recipients);
  } catch (e) {
    if ((e as StrongboxError).code === "AGE_NO_IDENTITY_MATCH") {
      throw new StrongboxError(
        "WRONG_KEY",
        `the identity cannot open ${part.key}; rotation needs an identity of the current recipients`,
        { cause: e },
      );
    }
    throw e;
  }
  const payload = await repo.storage.get(part.key, { start: length, signal });
  const hash = createHash("sha256");
  let size = 0;
  async function* body() {
    hash.update(newHeader);
    size += newHeader.length;
    yield newHeader;
    for await (const c of payload) {
      hash.update(c as Buffer);
      size += (c as Buffer).length;
      yield c as Buffer;
    }
  }
  const key = rotatedKey(part.key);
  await repo.storage.put(key, Readable.from(body()), { signal });
  return { ...part, key, size, sha256: hash.digest("hex") };
}

export interface RotateResult {
  backups: number;
  parts: number;
  /** Manifests that are not trusted: reported and left as they are, never a reason to stop. */
  skipped: Distrusted[];
}

export async function rotateRecipients(o: {
  repo: Repository;
  /** Reads only verified manifests (signature and evidence log). */
  trust: BackupVerifier;
  /** Records each manifest swap (in flight, then done), so readers accept either side of it. */
  evidence: EvidenceWriter;
  signing: { privateKeyPem: string; publicKey: string };
  identities: AgeIdentity[];
  recipients: AgeRecipient[];
  recipientNames: string[];
  passphrase: boolean;
  signal?: AbortSignal;
  log?: (m: string) => void;
}): Promise<RotateResult> {
  if (o.repo.storage.capabilities.appendOnly) {
    throw new StrongboxError(
      "REPO_APPEND_ONLY",
      `repository ${o.repo.name} is append-only: rotate its keys where deletes are allowed`,
    );
  }
  const set = await o.trust.inventory();
  const result: RotateResult = { backups: 0, parts: 0, skipped: set.unverified };
  for (const m of set.backups) {
    o.signal?.throwIfAborted();
    const id = m.id;
    const same =
      m.encryption.recipients.length === o.recipientNames.length &&
      m.encryption.recipients.every((r) => o.recipientNames.includes(r));
    if (same) continue;
    const parts: PartRecord[] = [];
    for (const p of m.parts) parts.push(await rewrapPart(o.repo, p, o.identities, o.recipients, o.signal));
    const details = await decryptBuffer(Buffer.from(m.details, "base64"), o.identities);
    const next = signManifest(
      {
        ...m,
        parts,
        details: (await encryptBuffer(details, o.recipients)).toString("base64"),
        encryption: { ...m.encryption, recipients: o.recipientNames, passphrase: o.passphrase },
      },
      o.signing.privateKeyPem,
      o.signing.publicKey,
    );
    await o.evidence.record("replace", [{ id, digest: manifestDigest(next) }], () =>
      o.repo.replaceManifest(next),
    );
    for (const p of m.parts) await o.repo.storage.delete(p.key);
    o.log?.(`re-keyed ${id}: ${parts.length} part(s)`);
    result.backups++;
    result.parts += parts.length;
  }
  return result;
}

/**
 * Re-signs every verified manifest with the new key (readers trust the old and the new one until
 * this completes). An interrupted run resumes: manifests already signed with the new key are
 * skipped. An untrusted manifest is reported and skipped, never re-signed.
 */
export async function resignAll(o: {
  repo: Repository;
  trust: BackupVerifier;
  evidence: EvidenceWriter;
  signing: { privateKeyPem: string; publicKey: string };
  log?: (m: string) => void;
}): Promise<{ resigned: number; skipped: Distrusted[] }> {
  const set = await o.trust.inventory();
  let resigned = 0;
  for (const m of set.backups) {
    if (m.signature?.publicKey === o.signing.publicKey) continue;
    const next = signManifest(m, o.signing.privateKeyPem, o.signing.publicKey);
    await o.evidence.record("replace", [{ id: m.id, digest: manifestDigest(next) }], () =>
      o.repo.replaceManifest(next),
    );
    resigned++;
  }
  for (const u of set.unverified) o.log?.(`UNVERIFIED ${u.id} not re-signed: ${u.message}`);
  return { resigned, skipped: set.unverified };
}
