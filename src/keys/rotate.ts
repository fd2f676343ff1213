// Key rotation without re-encrypting payloads.
//
// Recipients: each part's age header is re-wrapped for the new recipient set (same file key,
// new stanzas, new MAC) and written as a NEW object next to the old one; then the manifest, with
// the new part keys, hashes and recipients, is re-signed and replaces the old manifest
// atomically; only then are the old parts deleted. A crash at any point leaves a manifest whose
// parts all exist and match: before the swap the old ones, after it the new ones. Leftovers
// (generations of a part the manifest does not name) are removed by the next rotation, which runs
// under the writer lock like this one, so no other writer adds parts to a committed backup.
// Every object is checked against its signed size and SHA-256 as it is copied (rewrap.ts).
// Archived binlogs are re-wrapped the same way (binlogs.ts).
//
// Signing key: every manifest is verified with the old key and re-signed with the new one; the
// new key is kept in `<signingKey>.new` until all are done, so an interrupted run resumes.
// Every manifest swap is recorded in the evidence log around it (docs/repository-format.md), and
// a manifest that does not verify is reported and skipped.
import { decryptBuffer, encryptBuffer } from "../crypto/age.ts";
import type { AgeIdentity, AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { EvidenceWriter } from "../repository/evidence.ts";
import { manifestDigest, signManifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import type { BackupVerifier, Distrusted } from "../repository/trusted.ts";
import { nextGeneration, rewrapObject } from "./rewrap.ts";

/** The next generation's key for a part: part-000003.age → part-000003.g2.age → part-000003.g3.age */
export function rotatedKey(key: string): string {
  if (!/^.*\/part-\d+(?:\.g\d+)?\.age$/.test(key)) {
    throw new StrongboxError("ROTATE_BAD_KEY", `unexpected part key ${key}`);
  }
  return nextGeneration(key);
}

const PART_OBJECT_RE = /^backups\/([^/]+)\/part-\d+(?:\.g\d+)?\.age$/;

/** Whether two recipient name lists hold the same set. */
export function sameRecipients(a: readonly string[] | undefined, b: readonly string[]): boolean {
  return !!a && a.length === b.length && a.every((r) => b.includes(r));
}

export interface RotateResult {
  backups: number;
  parts: number;
  /** Part objects no manifest names (left by an interrupted rotation), removed. */
  leftovers: number;
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
  const result: RotateResult = { backups: 0, parts: 0, leftovers: 0, skipped: set.unverified };
  const partObjects = new Map<string, string[]>();
  for await (const obj of o.repo.storage.list("backups/", o.signal ? { signal: o.signal } : {})) {
    const id = PART_OBJECT_RE.exec(obj.key)?.[1];
    if (id) partObjects.set(id, [...(partObjects.get(id) ?? []), obj.key]);
  }
  for (let m of set.backups) {
    o.signal?.throwIfAborted();
    const id = m.id;
    const gone = new Set<string>();
    if (!sameRecipients(m.encryption.recipients, o.recipientNames)) {
      const parts: PartRecord[] = [];
      for (const p of m.parts) {
        const stored = await rewrapObject(o.repo, p, rotatedKey(p.key), o.identities, o.recipients, o.signal);
        parts.push({ ...p, ...stored });
      }
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
      o.signal?.throwIfAborted();
      await o.evidence.record("replace", [{ id, digest: manifestDigest(next) }], () =>
        o.repo.replaceManifest(next),
      );
      for (const p of m.parts) {
        await o.repo.storage.delete(p.key);
        gone.add(p.key);
      }
      o.log?.(`re-keyed ${id}: ${parts.length} part(s)`);
      result.backups++;
      result.parts += parts.length;
      m = next;
    }
    // What an interrupted rotation left: generations of parts the manifest does not name.
    const named = new Set(m.parts.map((p) => p.key));
    for (const key of partObjects.get(id) ?? []) {
      if (named.has(key) || gone.has(key)) continue;
      await o.repo.storage.delete(key);
      result.leftovers++;
    }
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
