// grastate.dat: the Galera saved state a restored data directory bootstraps a new cluster from.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";

const UNKNOWN_UUID = "00000000-0000-0000-0000-000000000000";

export function grastate(uuid: string, seqno: number): string {
  return `# GALERA saved state\nversion: 2.1\nuuid:    ${uuid}\nseqno:   ${seqno}\nsafe_to_bootstrap: 1\n`;
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
