// grastate.dat: the Galera saved state a restored data directory bootstraps a new cluster from.
import { rm, writeFile } from "node:fs/promises";
import { join } from "node:path";

const UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000";

export function grastate(uuid: string, seqno: number, safeToBootstrap = true): string {
  return `# GALERA saved state\nversion: 2.1\nuuid:    ${uuid}\nseqno:   ${seqno}\nsafe_to_bootstrap: ${safeToBootstrap ? 1 : 0}\n`;
}

/**
 * Writes grastate.dat into a data directory: the backup's position, or (no position) "unknown",
 * for data that has left the history of the cluster it came from.
 */
export async function writeGrastate(
  dataDir: string,
  state: { uuid: string; seqno: number } | null,
): Promise<void> {
  const text = state ? grastate(state.uuid, state.seqno) : grastate(UNKNOWN_UUID, -1);
  await writeFile(join(dataDir, "grastate.dat"), text, { mode: 0o600 });
}

/**
 * Marks a data directory that a restore is still writing: `safe_to_bootstrap: 0`, so
 * galera_new_cluster refuses it (the restore replaces it with writeGrastate when it is complete).
 * A restore killed with SIGKILL, which cannot clean up, leaves this behind, never a bootable
 * directory of the wrong data.
 */
export async function writeUnfinishedGrastate(dataDir: string): Promise<void> {
  await writeFile(join(dataDir, "grastate.dat"), grastate(UNKNOWN_UUID, -1, false), { mode: 0o600 });
}

export async function removeGrastate(dataDir: string): Promise<void> {
  await rm(join(dataDir, "grastate.dat"), { force: true });
}
