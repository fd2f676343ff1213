// forget ID: remove one backup now, by hand, with the chain rule: a backup that incrementals
// depend on goes only together with them (--with-dependents), and never while one of them is
// pinned. The manifests go first, newest first, so a chain is never left with a missing middle.
import type { SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { readPins } from "./pins.ts";
import type { Repository } from "./repository.ts";
import { type BackupVerifier, openEvidenceWriter } from "./trusted.ts";

export interface ForgetResult {
  /** The backups removed (or to remove, with dryRun), newest first. */
  removed: string[];
  objectsDeleted: number;
  dryRun: boolean;
}

export async function forgetBackup(o: {
  repo: Repository;
  id: string;
  withDependents: boolean;
  trustedPublicKey: string;
  /** Only verified backups are forgotten or counted as dependents (signature, evidence log). */
  verifier: BackupVerifier;
  /** Signs the evidence entries that record the removal. */
  signing: SigningKey;
  dryRun: boolean;
}): Promise<ForgetResult> {
  const { repo, id } = o;
  if (repo.storage.capabilities.appendOnly) {
    throw new StrongboxError(
      "REPO_APPEND_ONLY",
      `repository ${repo.name} is append-only: forget refuses to delete there`,
      {
        hint: "forget from a separate configuration (and credentials) that may delete",
      },
    );
  }
  // BACKUP_NOT_FOUND, or why it is not trusted: an untrusted object is left for investigation.
  await o.verifier.get(id);
  const manifests = (await o.verifier.inventory()).backups;
  const going = new Set([id]);
  // Children, grandchildren…: whatever chains onto a backup that goes.
  for (let grew = true; grew; ) {
    grew = false;
    for (const m of manifests) {
      if (m.parent && going.has(m.parent) && !going.has(m.id)) {
        going.add(m.id);
        grew = true;
      }
    }
  }
  const dependents = [...going].filter((d) => d !== id).sort();
  const pins = await readPins(repo, o.trustedPublicKey);
  const pinned = [...going].filter((d) => pins.pinned.has(d)).sort();
  if (pinned.length > 0) {
    throw new StrongboxError(
      "BACKUP_PINNED",
      pinned.includes(id)
        ? `backup ${id} is pinned`
        : `backup ${id} is needed by pinned backup(s) ${pinned.join(", ")}`,
      { hint: `unpin first: strongbox backup unpin ${pinned[0]}` },
    );
  }
  if (dependents.length > 0 && !o.withDependents) {
    throw new StrongboxError(
      "BACKUP_HAS_DEPENDENTS",
      `backup ${id} is the parent of ${dependents.length} incremental backup(s): ${dependents.join(", ")}`,
      { hint: "add --with-dependents to forget them too, or keep it" },
    );
  }
  const removed = [...going].sort().reverse();
  const result: ForgetResult = { removed, objectsDeleted: 0, dryRun: o.dryRun };
  if (o.dryRun) return result;
  const evidence = await openEvidenceWriter(o.verifier, o.signing);
  await evidence.record(
    "remove",
    removed.map((gone) => ({ id: gone, digest: null })),
    async () => {
      for (const gone of removed) {
        await repo.storage.delete(repo.manifestKey(gone));
        result.objectsDeleted += 1 + (await repo.removeUncommitted(gone));
      }
    },
  );
  return result;
}
