// Verify before acting: the one way commands read backups. A manifest is used only when its
// signature verifies against a trusted key AND the evidence log records exactly that manifest.
// Anything else is UNVERIFIED: reported with its id, never a parent, never counted by retention,
// never listed as a backup, and left in place.
import type { SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { type EvidenceView, EvidenceWriter, readEvidence } from "./evidence.ts";
import { type Manifest, manifestDigest, verifyManifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";

/** A committed backup that is not trusted, or one the evidence log records that is gone. */
export interface Distrusted {
  id: string;
  code: string;
  message: string;
}

export interface BackupSet {
  /** Verified backups, oldest first. */
  backups: Manifest[];
  /** Manifests present but not trusted (bad signature, not the recorded version, not recorded). */
  unverified: Distrusted[];
  /** Backups the evidence log records as committed whose manifest is gone. */
  missing: Distrusted[];
  evidence: EvidenceView;
}

/** Codes of a manifest that is read but not trusted (any other failure is the storage's, and thrown). */
const DISTRUST = new Set([
  "MANIFEST_TAMPERED",
  "MANIFEST_UNSIGNED",
  "MANIFEST_CORRUPT",
  "BACKUP_ROLLED_BACK",
  "BACKUP_NOT_IN_EVIDENCE",
  "EVIDENCE_TAMPERED",
]);

/** Whether an error of reading a manifest means it is not trusted (rather than unreadable storage). */
export function isDistrust(e: unknown): boolean {
  return DISTRUST.has((e as StrongboxError).code);
}

export class BackupVerifier {
  readonly repo: Repository;
  readonly keys: readonly string[];
  readonly evidence: EvidenceView;

  private constructor(repo: Repository, keys: readonly string[], evidence: EvidenceView) {
    this.repo = repo;
    this.keys = keys;
    this.evidence = evidence;
  }

  /** Reads the evidence log's tail (`full`: the whole chain, as verify and status do). */
  static async load(
    repo: Repository,
    keys: string | readonly string[],
    o: { full?: boolean } = {},
  ): Promise<BackupVerifier> {
    const list = typeof keys === "string" ? [keys] : keys;
    return new BackupVerifier(repo, list, await readEvidence(repo, list, o));
  }

  /** Throws unless `m` is signed by a trusted key and is the manifest the evidence log records. */
  check(m: Manifest): void {
    verifyManifest(m, this.keys);
    const t = this.evidence.tail;
    if (!t) {
      if (this.repo.info.evidence !== undefined) {
        throw new StrongboxError(
          "EVIDENCE_TAMPERED",
          `repository ${this.repo.name} keeps an evidence log, but it has no entry signed by a trusted key: backup ${m.id} cannot be checked against it`,
          { hint: "the log was deleted or rolled back; use an offsite copy and investigate" },
        );
      }
      return; // written before the evidence log existed: its first writer records a baseline
    }
    const digest = manifestDigest(m);
    const recorded = t.backups[m.id];
    const pending = t.pending[m.id];
    if (digest === recorded || (pending != null && digest === pending)) return;
    if (recorded !== undefined || pending != null) {
      throw new StrongboxError(
        "BACKUP_ROLLED_BACK",
        `manifest of backup ${m.id} is not the version the evidence log records (entry ${t.seq}): an older copy put back, from before a key rotation?`,
        { hint: "do not trust it; copy the backup back from an offsite repository" },
      );
    }
    throw new StrongboxError(
      "BACKUP_NOT_IN_EVIDENCE",
      `backup ${m.id} is not in the repository's evidence log: a forged backup, or a pruned one put back`,
      { hint: "do not trust it; it is left in place for investigation" },
    );
  }

  /** A backup's manifest, only if it is trusted. */
  async get(id: string): Promise<Manifest> {
    const m = await this.repo.get(id);
    this.check(m);
    return m;
  }

  /** The repository's backups, split into trusted ones, untrusted ones and missing ones. */
  async inventory(committed?: readonly string[]): Promise<BackupSet> {
    const ids = committed ?? (await this.repo.scan()).committed;
    const set: BackupSet = { backups: [], unverified: [], missing: [], evidence: this.evidence };
    const read = await Promise.all(
      ids.map((id) =>
        this.get(id).then(
          (m) => ({ id, m }),
          (e: unknown) => ({ id, e }),
        ),
      ),
    );
    for (const r of read) {
      if ("m" in r) set.backups.push(r.m);
      else {
        const e = r.e as StrongboxError;
        if (e.code === "BACKUP_NOT_FOUND") continue; // removed since the scan (a prune elsewhere)
        if (!isDistrust(e)) throw r.e;
        set.unverified.push({ id: r.id, code: e.code, message: e.message });
      }
    }
    set.missing = this.missingFrom(ids);
    return set;
  }

  /** Ids the evidence log records as committed that `present` lacks (and are not being removed). */
  missingFrom(present: readonly string[]): Distrusted[] {
    const t = this.evidence.tail;
    if (!t) return [];
    const have = new Set(present);
    return Object.keys(t.backups)
      .filter((id) => !have.has(id) && t.pending[id] !== null)
      .sort()
      .map((id) => ({
        id,
        code: "BACKUP_MISSING",
        message: `backup ${id} was committed (evidence entry ${t.seq}) but its manifest is gone: deleted behind strongbox's back`,
      }));
  }
}

/** One line per problem of a backup set and its evidence log: what verify and status report. */
export function trustProblems(set: BackupSet): string[] {
  return [
    ...set.unverified.map((u) => `UNVERIFIED ${u.id}: ${u.message}`),
    ...set.missing.map((u) => `MISSING ${u.id}: ${u.message}`),
    ...set.evidence.problems,
  ];
}

/**
 * The evidence writer of a writer holding the lock: in-flight changes a killed writer left are
 * settled, and a repository from before the evidence log gets its baseline (the backups that
 * verify now). A repository that keeps a log but has no trusted entry is refused: writing a new
 * baseline would hide the deletion.
 */
export async function openEvidenceWriter(
  verifier: BackupVerifier,
  signing: SigningKey,
  o: { committed?: readonly string[] } = {},
): Promise<EvidenceWriter> {
  const repo = verifier.repo;
  const w = await EvidenceWriter.open(repo, signing, verifier.keys);
  if (!w.state) {
    if (repo.info.evidence !== undefined) {
      throw new StrongboxError(
        "EVIDENCE_TAMPERED",
        `repository ${repo.name}: the evidence log has no entry signed by a trusted key; refusing to write`,
        { hint: "run strongbox verify, and investigate before writing to this repository" },
      );
    }
    const set = await verifier.inventory(o.committed);
    await w.baseline("baseline", Object.fromEntries(set.backups.map((m) => [m.id, manifestDigest(m)])));
    return w;
  }
  await w.settle(async (id) => {
    try {
      return manifestDigest(await repo.get(id));
    } catch (e) {
      if ((e as StrongboxError).code === "BACKUP_NOT_FOUND") return null;
      throw e;
    }
  });
  return w;
}
