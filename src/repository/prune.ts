// prune: apply the retention policy. The manifest goes first (the backup disappears at once),
// then its parts; objects of crashed runs (no manifest) are removed too.

import type { SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { gtidInList } from "../mariadb/gtid.ts";
import { type BinlogEntry, indexKey, readIndex } from "./binlog-index.ts";
import type { Manifest } from "./manifest.ts";
import { type PinState, readPins } from "./pins.ts";
import type { Repository } from "./repository.ts";
import { applyRetention, type RetentionPolicy } from "./retention.ts";
import { type BackupVerifier, type Distrusted, openEvidenceWriter } from "./trusted.ts";

export interface PruneResult {
  kept: { id: string; reasons: string[] }[];
  removed: string[];
  orphans: string[];
  /** Manifests that are not trusted: never counted, never removed, left for investigation. */
  unverified: Distrusted[];
  /** Backups the evidence log records whose manifest is gone. */
  missing: Distrusted[];
  /** Archived binlog files that no kept backup needs any more (all before the oldest kept one). */
  binlogsRemoved: string[];
  /** Pins whose signature or content fails: their backups were kept all the same. */
  tamperedPins: PinState["tampered"];
  objectsDeleted: number;
  dryRun: boolean;
}

export async function prune(o: {
  repo: Repository;
  verifier: BackupVerifier;
  signing: SigningKey;
  policy: RetentionPolicy;
  /** The signing public key pins are checked against (a failing pin still keeps its backup). */
  trustedPublicKey: string;
  dryRun: boolean;
  now?: Date;
}): Promise<PruneResult> {
  if (o.repo.storage.capabilities.appendOnly) {
    throw new StrongboxError(
      "REPO_APPEND_ONLY",
      `repository ${o.repo.name} is append-only: prune refuses to delete there`,
      {
        hint: "run prune from a separate configuration (and credentials) that may delete, e.g. on the offsite host",
      },
    );
  }
  const { committed, orphans } = await o.repo.scan();
  // Retention counts verified backups only: a forged or rolled-back manifest never pushes a real
  // backup out, and is itself left in place.
  const set = await o.verifier.inventory(committed);
  const manifests = set.backups;
  const pins = await readPins(o.repo, o.trustedPublicKey);
  const decision = applyRetention(
    manifests.map((m) => ({
      id: m.id,
      time: new Date(m.startedAt),
      parent: m.parent,
      pinned: pins.pinned.has(m.id),
    })),
    o.policy,
    o.now,
  );
  const oldBinlogs = await binlogsBefore(
    o.repo,
    manifests.filter((m) => decision.keep.has(m.id)),
    o.verifier.keys,
  );
  const result: PruneResult = {
    kept: [...decision.keep].map(([id, reasons]) => ({ id, reasons })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    removed: decision.remove,
    orphans,
    unverified: set.unverified,
    missing: set.missing,
    binlogsRemoved: oldBinlogs.map((e) => `${e.node}/${e.file || "gap"}`),
    tamperedPins: pins.tampered,
    objectsDeleted: 0,
    dryRun: o.dryRun,
  };
  if (o.dryRun) return result;
  const evidence = await openEvidenceWriter(o.verifier, o.signing, { committed });
  if (decision.remove.length > 0) {
    await evidence.record(
      "remove",
      decision.remove.map((id) => ({ id, digest: null })),
      async () => {
        for (const id of decision.remove) {
          await o.repo.storage.delete(o.repo.manifestKey(id));
          result.objectsDeleted += 1 + (await o.repo.removeUncommitted(id));
        }
      },
    );
  }
  for (const id of orphans) result.objectsDeleted += await o.repo.removeUncommitted(id);
  // Index entry first (the file stops being part of the archive), then the object.
  for (const e of oldBinlogs) {
    await o.repo.storage.delete(indexKey(e.seq));
    if (e.key) await o.repo.storage.delete(e.key);
    result.objectsDeleted += e.key ? 2 : 1;
  }
  result.objectsDeleted += (await o.repo.storage.cleanupTemp?.(0)) ?? 0;
  return result;
}

/**
 * Binlog index entries entirely before the oldest kept physical backup: recovery to any point
 * from a kept backup never replays them. With no kept backup that has a GTID, nothing goes.
 */
export async function binlogsBefore(
  repo: Repository,
  kept: Manifest[],
  trusted?: readonly string[],
): Promise<BinlogEntry[]> {
  // With trusted keys, only entries that verify are considered (a forged one is never a reason).
  const { entries } = await readIndex(repo, trusted);
  const domain = entries.find((e) => e.kind === "file")?.domain;
  if (domain === undefined) return [];
  const starts = kept
    .filter((m) => m.type !== "logical" && m.gtid)
    .map((m) => gtidInList(m.gtid!, domain)?.seq)
    .filter((n): n is number => n !== undefined);
  if (starts.length === 0) return [];
  const oldest = Math.min(...starts);
  return entries.filter((e) => {
    const last = e.kind === "gap" ? e.gap?.before : e.gtidLast;
    const seq = last ? gtidInList(last, domain)?.seq : undefined;
    return seq !== undefined && seq <= oldest;
  });
}
