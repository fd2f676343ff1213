// Asking every node how it is, and choosing the donor for a backup.
import { StrongboxError } from "../errors.ts";
import {
  type Connection,
  type Credentials,
  connectNode,
  type NodeEndpoint,
  showGlobal,
  type TlsOptions,
} from "./connection.ts";

export interface NodeHealth {
  node: NodeEndpoint;
  reachable: boolean;
  clusterStatus: string;
  state: string;
  ready: boolean;
  clusterSize: number;
  clusterUuid: string;
  lastCommitted: number;
  desynced: boolean;
  error?: string;
  /** Why the node could not be asked, when it could not (NODE_TLS, FILE_MISSING, NODE_UNREACHABLE…). */
  failure?: StrongboxError;
}

export async function probeNode(
  node: NodeEndpoint,
  creds: Credentials,
  options: { tls?: TlsOptions; timeoutMs?: number } = {},
): Promise<NodeHealth> {
  const { health, conn } = await probeNodeKeepingConnection(node, creds, options);
  await conn?.end().catch(() => {});
  return health;
}

/** probeNode that hands over its connection when the node answered: the caller ends it. */
export async function probeNodeKeepingConnection(
  node: NodeEndpoint,
  creds: Credentials,
  options: { tls?: TlsOptions; timeoutMs?: number } = {},
): Promise<{ health: NodeHealth; conn?: Connection }> {
  let conn: Connection | undefined;
  try {
    conn = await connectNode(node, creds, { timeoutMs: options.timeoutMs ?? 3000, tls: options.tls });
    const s = await showGlobal(conn, "STATUS", "wsrep_%");
    const v = await showGlobal(conn, "VARIABLES", "wsrep_desync");
    // A server without Galera is a cluster of one: treat it as a healthy Primary, Synced node.
    const galera = s.has("wsrep_cluster_status") && s.get("wsrep_cluster_status") !== "Disconnected";
    const health: NodeHealth = {
      node,
      reachable: true,
      clusterStatus: galera ? (s.get("wsrep_cluster_status") ?? "") : "Primary",
      state: galera ? (s.get("wsrep_local_state_comment") ?? "") : "Synced",
      ready: galera ? s.get("wsrep_ready") === "ON" : true,
      clusterSize: galera ? Number(s.get("wsrep_cluster_size") ?? 0) : 1,
      clusterUuid: s.get("wsrep_cluster_state_uuid") ?? "",
      lastCommitted: Number(s.get("wsrep_last_committed") ?? -1),
      desynced: v.get("wsrep_desync") === "ON",
    };
    return { health, conn };
  } catch (e) {
    await conn?.end().catch(() => {});
    return { health: unreachable(node, e) };
  }
}

/** The health of a node that could not be asked, and why. */
export function unreachable(node: NodeEndpoint, e: unknown): NodeHealth {
  return {
    node,
    reachable: false,
    clusterStatus: "",
    state: "unreachable",
    ready: false,
    clusterSize: 0,
    clusterUuid: "",
    lastCommitted: -1,
    desynced: false,
    error: e instanceof StrongboxError ? e.message : (e as Error).message,
    ...(e instanceof StrongboxError ? { failure: e } : {}),
  };
}

export function isEligible(h: NodeHealth): boolean {
  return h.reachable && h.clusterStatus === "Primary" && h.state === "Synced" && h.ready;
}

export function describeHealth(h: NodeHealth): string {
  if (!h.reachable) return `${h.node.name}: unreachable (${h.error ?? "no answer"})`;
  return `${h.node.name}: ${h.clusterStatus || "?"}/${h.state || "?"}${h.ready ? "" : " not ready"} size ${h.clusterSize}`;
}

/**
 * Orders eligible nodes by preference: the configured backup node, then nodes that are not the
 * writer, then the writer as a last resort. Throws NO_SYNCED_NODE with every node's state.
 */
export function rankDonors(
  health: NodeHealth[],
  prefs: { backupNode?: string; writerNode?: string },
): NodeHealth[] {
  const eligible = health.filter(isEligible);
  if (eligible.length === 0) {
    // Every node refused this host the same way (TLS, a file of the configuration, the password):
    // that is the problem to fix here, not a cluster that needs to recover.
    const first = health[0]?.failure;
    if (
      first &&
      first.code !== "NODE_UNREACHABLE" &&
      health.every((h) => !h.reachable && h.failure?.code === first.code)
    ) {
      const others = health.slice(1).map((h) => h.node.name);
      throw new StrongboxError(
        first.code,
        `${first.message}${others.length > 0 ? ` (and the same on ${others.join(", ")})` : ""}`,
        { stage: "choose-node", ...(first.hint ? { hint: first.hint } : {}), cause: first },
      );
    }
    throw new StrongboxError(
      "NO_SYNCED_NODE",
      `no node is Synced in a Primary component: ${health.map(describeHealth).join("; ")}`,
      { stage: "choose-node", hint: "wait for the cluster to recover, or check the nodes' error logs" },
    );
  }
  const rank = (h: NodeHealth) =>
    h.node.name === prefs.backupNode ? 0 : h.node.name === prefs.writerNode ? 2 : 1;
  return [...eligible].sort((a, b) => rank(a) - rank(b));
}
