// prune: apply the retention policy. The manifest goes first (the backup disappears at once),
// then its parts; objects of crashed runs (no manifest) are removed too.
import { StrongboxError } from "../errors.ts";
import type { Repository } from "./repository.ts";
import { applyRetention, type RetentionPolicy } from "./retention.ts";

export interface PruneResult {
  kept: { id: string; reasons: string[] }[];
  removed: string[];
  orphans: string[];
  objectsDeleted: number;
  dryRun: boolean;
}

export async function prune(o: {
  repo: Repository;
  policy: RetentionPolicy;
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
  const manifests = await o.repo.list();
  const decision = applyRetention(
    manifests.map((m) => ({ id: m.id, time: new Date(m.startedAt), parent: m.parent })),
    o.policy,
    o.now,
  );
  const { orphans } = await o.repo.scan();
  const result: PruneResult = {
    kept: [...decision.keep].map(([id, reasons]) => ({ id, reasons })).sort((a, b) => (a.id < b.id ? -1 : 1)),
    removed: decision.remove,
    orphans,
    objectsDeleted: 0,
    dryRun: o.dryRun,
  };
  if (o.dryRun) return result;
  for (const id of decision.remove) {
    await o.repo.storage.delete(o.repo.manifestKey(id));
    result.objectsDeleted += 1 + (await o.repo.removeUncommitted(id));
  }
  for (const id of orphans) result.objectsDeleted += await o.repo.removeUncommitted(id);
  result.objectsDeleted += (await o.repo.storage.cleanupTemp?.(0)) ?? 0;
  return result;
}
