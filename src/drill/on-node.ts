// restore-test --on NODE: the scratch restore, the throw-away server and its checks run on a
// designated test host through its agent; this host checks and decrypts the parts and sends the
// compressed streams, as restore --onto does. The result is the same as a local restore-test's.
import type { ClusterNode, NodeAgent } from "../galera/connection.ts";
import type { Manifest, ManifestDetails } from "../repository/manifest.ts";
import type { Assertion, RowTolerance } from "../restore/checks.ts";
import type { PlaintextSource } from "../restore/read.ts";
import { VERSION } from "../version.ts";
import type { RestoreTestResult } from "./restore-test.ts";

export async function restoreTestOnNode(o: {
  node: ClusterNode & { agent: NodeAgent };
  source: PlaintextSource;
  chain: Manifest[];
  details: Pick<ManifestDetails, "inventory">;
  mariabackupPath: string;
  assertions: Assertion[];
  rowCountTolerance: RowTolerance;
  bufferPool: string;
  signal?: AbortSignal | undefined;
  log?: (message: string) => void;
}): Promise<RestoreTestResult> {
  // Loaded only here: ssh2 costs every other command about 50 ms of its start.
  const { callWithChain } = await import("../protocol/client.ts");
  return callWithChain<RestoreTestResult>(
    o.node,
    VERSION,
    {
      op: "restore-test",
      chain: o.chain,
      inventory: o.details.inventory,
      mariabackupPath: o.mariabackupPath,
      assertions: o.assertions,
      rowCountTolerance: o.rowCountTolerance,
      bufferPool: o.bufferPool,
    },
    { chain: o.chain, open: o.source, signal: o.signal, log: o.log },
  );
}
