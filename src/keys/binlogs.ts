// Key rotation of the binlog archive: every archived binlog file whose signed index entry does not
// name the new recipient set is re-wrapped like a backup part (rewrap.ts): new object (the next
// generation of its key), then its index entry, re-signed with the new key, size, SHA-256 and
// recipients, replaces the old entry atomically, then the old object is deleted. Entries written
// before recipients were recorded in the index are re-wrapped on the first rotation.
//
// A crash leaves each entry naming an object that exists and matches it. Generations of a file
// the entry does not name are removed here on the next run: the archiver only ever writes the
// first generation of a file not yet in the index, and rotation runs under the writer lock.
import type { AgeIdentity, AgeRecipient } from "../crypto/age-keys.ts";
import { INDEX_PREFIX, readTrustedIndex, replaceEntry, signEntry } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import { generationBase, nextGeneration, rewrapObject } from "./rewrap.ts";
import { sameRecipients } from "./rotate.ts";

export interface BinlogRotateResult {
  /** Archived binlog files re-wrapped. */
  files: number;
  /** Objects no index entry names (left by an interrupted rotation), removed. */
  leftovers: number;
}

export async function rotateBinlogs(o: {
  repo: Repository;
  /** Index entries must verify against one of these (the current key, then a new one). */
  acceptedPublicKeys: string[];
  signing: { privateKeyPem: string; publicKey: string };
  identities: AgeIdentity[];
  recipients: AgeRecipient[];
  recipientNames: string[];
  signal?: AbortSignal;
  log?: (m: string) => void;
}): Promise<BinlogRotateResult> {
  // Every entry verified (or vouched for by the evidence log) before anything is rewritten.
  const entries = await readTrustedIndex(o.repo, o.acceptedPublicKeys);
  const objects: string[] = [];
  for await (const obj of o.repo.storage.list("binlogs/", o.signal ? { signal: o.signal } : {})) {
    if (!obj.key.startsWith(INDEX_PREFIX)) objects.push(obj.key);
  }
  const result: BinlogRotateResult = { files: 0, leftovers: 0 };
  /** generation base → the key its entry names now */
  const named = new Map<string, string>();
  for (const e of entries) {
    if (e.kind !== "file" || !e.key || !e.sha256) continue;
    o.signal?.throwIfAborted();
    let key = e.key;
    if (!sameRecipients(e.recipients, o.recipientNames)) {
      const stored = await rewrapObject(
        o.repo,
        { key: e.key, size: e.size, sha256: e.sha256 },
        nextGeneration(e.key),
        o.identities,
        o.recipients,
        o.signal,
      );
      o.signal?.throwIfAborted();
      await replaceEntry(
        o.repo,
        signEntry(
          { ...e, ...stored, recipients: o.recipientNames },
          o.signing.privateKeyPem,
          o.signing.publicKey,
        ),
      );
      await o.repo.storage.delete(e.key);
      key = stored.key;
      result.files++;
    }
    const base = generationBase(key);
    if (base) named.set(base, key);
  }
  for (const key of objects) {
    const base = generationBase(key);
    const current = base === undefined ? undefined : named.get(base);
    // Only other generations of an indexed file: an object of a file being archived right now is
    // not in the index yet and stays.
    if (current === undefined || current === key || entries.some((e) => e.key === key)) continue;
    await o.repo.storage.delete(key);
    result.leftovers++;
  }
  if (result.files > 0) o.log?.(`re-keyed ${result.files} archived binlog file(s)`);
  return result;
}
