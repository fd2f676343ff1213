// The chain of a backup: its full at the root, then every incremental up to it, each verified
// (signature and evidence log) before any of its fields is used.
import { StrongboxError } from "../errors.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { BackupVerifier } from "./trusted.ts";

/** `trust`: a loaded verifier, or the trusted signing public key(s) to load one with. */
export async function resolveChain(
  repo: Repository,
  id: string,
  trust: BackupVerifier | string | readonly string[],
): Promise<Manifest[]> {
  const verifier = trust instanceof BackupVerifier ? trust : await BackupVerifier.load(repo, trust);
  const chain: Manifest[] = [];
  let m = await verifier.get(id);
  chain.unshift(m);
  while (m.parent) {
    const parentId = m.parent;
    const child = m;
    m = await verifier.get(parentId).catch((e: StrongboxError) => {
      if (e.code !== "BACKUP_NOT_FOUND") throw e;
      throw new StrongboxError(
        "CHAIN_BROKEN",
        `backup ${child.id} needs its parent ${parentId}, which is missing from repository ${repo.name}`,
        {
          hint: "restore an older full backup, or copy the parent back from an offsite repository",
        },
      );
    });
    if (m.lsn && child.lsn && child.lsn.from !== m.lsn.to) {
      throw new StrongboxError(
        "CHAIN_BROKEN",
        `backup ${child.id} starts at LSN ${child.lsn.from} but its parent ${m.id} ends at ${m.lsn.to}`,
      );
    }
    if (m.donor !== child.donor) {
      throw new StrongboxError(
        "CHAIN_BROKEN",
        `backup ${child.id} was taken on ${child.donor} but its parent ${m.id} on ${m.donor}`,
      );
    }
    chain.unshift(m);
    if (chain.length > 10_000)
      throw new StrongboxError("CHAIN_BROKEN", `backup ${id}: the parent links form a loop`);
  }
  if (chain[0]!.type !== "full" && chain[0]!.type !== "logical") {
    throw new StrongboxError(
      "CHAIN_BROKEN",
      `the chain of ${id} starts with ${chain[0]!.id}, which is not a full backup`,
    );
  }
  return chain;
}
