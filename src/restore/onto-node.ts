// restore --onto NODE: the chain restored into a directory on a node, by its agent. Here (the
// backup host, or a recovery host holding the identity) every part is checked against the signed
// manifest and decrypted; the node gets each backup's compressed stream inside SSH and unpacks,
// prepares and writes grastate.dat there. The identity never leaves this host.
import type { ClusterNode, NodeAgent } from "../galera/connection.ts";
import type { Manifest } from "../repository/manifest.ts";
import { VERSION } from "../version.ts";
import type { PlaintextSource } from "./read.ts";
import type { RestoreResult } from "./restore.ts";

export interface RemoteRestore {
  node: ClusterNode & { agent: NodeAgent };
  source: PlaintextSource;
  chain: Manifest[];
  targetDir: string;
  force?: boolean | undefined;
  prepare?: boolean | undefined;
  mariabackupPath: string;
  signal?: AbortSignal | undefined;
  log?: (message: string) => void;
}

export async function restoreOntoNode(o: RemoteRestore): Promise<RestoreResult> {
  // Loaded only here: ssh2 costs every other command about 50 ms of its start.
  const { callWithChain } = await import("../protocol/client.ts");
  return callWithChain<RestoreResult>(
    o.node,
    VERSION,
    {
      op: "restore",
      chain: o.chain,
      targetDir: o.targetDir,
      force: o.force ?? false,
      prepare: o.prepare !== false,
      mariabackupPath: o.mariabackupPath,
    },
    { chain: o.chain, open: o.source, signal: o.signal, log: o.log },
  );
}
