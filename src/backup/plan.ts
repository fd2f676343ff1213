// Planning one backup: full or incremental, its parent, and the donors to try in order.
import { StrongboxError } from "../errors.ts";
import { describeHealth, isEligible, type NodeHealth, rankDonors } from "../galera/health.ts";
import type { BackupType, Manifest } from "../repository/manifest.ts";
import { type BackupVerifier, type Distrusted, isDistrust } from "../repository/trusted.ts";
import { parseDuration } from "../util/duration.ts";

/** What the plan depends on in the configuration. */
export interface PlanPolicy {
  backupNode?: string | undefined;
  writerNode?: string | undefined;
  /** A full when the last one is older than this (a duration, e.g. "7d"). */
  fullEvery: string;
}

export interface BackupPlan {
  kind: BackupType;
  parent: Manifest | null;
  candidates: NodeHealth[];
  reason: string;
}

/** Decides full or incremental, the parent, and the donors to try, from the nodes' health. */
export function planBackup(
  policy: PlanPolicy,
  health: NodeHealth[],
  history: Manifest[],
  req: { kind?: BackupType; node?: string },
  now = Date.now(),
): BackupPlan {
  const prefs = { backupNode: policy.backupNode, writerNode: policy.writerNode };
  const pinned = (name: string, why: string): NodeHealth[] => {
    const h = health.find((x) => x.node.name === name);
    if (!h) throw new StrongboxError("NODE_UNKNOWN", `no node named "${name}" in the configuration`);
    if (!isEligible(h)) {
      throw new StrongboxError("NODE_NOT_SYNCED", `${why} node ${name} is not usable: ${describeHealth(h)}`, {
        stage: "choose-node",
      });
    }
    return [h];
  };
  if (req.node && !health.some((x) => x.node.name === req.node)) {
    throw new StrongboxError("NODE_UNKNOWN", `no node named "${req.node}" in the configuration`, {
      hint: `configured: ${health.map((x) => x.node.name).join(", ")}`,
    });
  }
  if (req.kind === "logical") {
    return {
      kind: "logical",
      parent: null,
      candidates: req.node ? pinned(req.node, "requested") : rankDonors(health, prefs),
      reason: "requested",
    };
  }
  const physical = history.filter((m) => m.type === "full" || m.type === "incremental");
  const lastFull = [...physical].reverse().find((m) => m.type === "full");
  const parent = physical[physical.length - 1] ?? null;
  let kind: "full" | "incremental";
  let reason: string;
  if (req.kind === "full") [kind, reason] = ["full", "requested"];
  else if (req.kind === "incremental") {
    if (!parent) {
      throw new StrongboxError("NO_PARENT", "there is no full backup to base an incremental on", {
        hint: "take one with: strongbox backup --full",
      });
    }
    [kind, reason] = ["incremental", "requested"];
  } else if (!lastFull || now - Date.parse(lastFull.startedAt) >= parseDuration(policy.fullEvery)) {
    [kind, reason] = [
      "full",
      lastFull ? `last full is older than ${policy.fullEvery}` : "no full backup yet",
    ];
  } else [kind, reason] = ["incremental", `last full is newer than ${policy.fullEvery}`];

  if (kind === "incremental" && parent) {
    // InnoDB LSNs are per node: an incremental is only valid against a parent taken on the same node.
    const h = health.find((x) => x.node.name === parent.donor);
    if (req.node && req.node !== parent.donor) {
      throw new StrongboxError(
        "INCREMENTAL_NODE",
        `an incremental must be taken on ${parent.donor}, where its parent ${parent.id} was taken (LSNs are per node)`,
        { hint: "omit --node, or take --full on the node you want" },
      );
    }
    if (h && isEligible(h)) return { kind, parent, candidates: [h], reason };
    if (req.kind === "incremental") {
      throw new StrongboxError(
        "INCREMENTAL_NODE",
        `the chain's node ${parent.donor} is not usable (${h ? describeHealth(h) : "not configured"}); an incremental must come from it`,
        { hint: "take a --full backup from another node" },
      );
    }
    kind = "full";
    reason = `the chain's node ${parent.donor} is not Synced, so a new full`;
  }
  return {
    kind,
    parent: kind === "incremental" ? parent : null,
    candidates: req.node ? pinned(req.node, "requested") : rankDonors(health, prefs),
    reason,
  };
}

/**
 * The manifests `planBackup` needs: none for a requested full or logical backup, else the newest
 * back to the last full (the chain an incremental continues), read newest first. A repository of a
 * year of daily backups is not read and verified in full before every backup. Only verified
 * manifests count (signature and evidence log): an untrusted one is never a parent, and is passed
 * to `onUntrusted` and skipped.
 */
export async function planningHistory(
  verifier: Pick<BackupVerifier, "repo" | "get">,
  committed: Promise<readonly string[] | undefined> | readonly string[] | undefined,
  kind: BackupType | undefined,
  onUntrusted: (d: Distrusted) => void = () => {},
): Promise<Manifest[]> {
  // Not even the scan is waited for: a full backup's start does not grow with the repository.
  if (kind === "full" || kind === "logical") return [];
  const ids = (await committed) ?? (await verifier.repo.scan()).committed;
  const newestFirst: Manifest[] = [];
  for (let i = ids.length - 1; i >= 0; i--) {
    const id = ids[i]!;
    let m: Manifest;
    try {
      m = await verifier.get(id);
    } catch (e) {
      if (!isDistrust(e)) throw e;
      onUntrusted({ id, code: (e as StrongboxError).code, message: (e as Error).message });
      continue;
    }
    newestFirst.push(m);
    if (m.type === "full") break;
  }
  return newestFirst.reverse();
}
