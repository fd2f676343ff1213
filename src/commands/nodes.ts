// Naming a node on the command line (restore --onto, restore-test --on, restore-table --into-node):
// it must be configured, and for work on the node, have an agent to do it there.
import { clusterNodes } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { UsageError } from "../errors.ts";
import type { ClusterNode, NodeAgent } from "../galera/connection.ts";

export function configuredNode(loaded: LoadedConfig, name: string, flag: string): ClusterNode {
  const nodes = clusterNodes(loaded);
  const node = nodes.find((n) => n.name === name);
  if (!node)
    throw new UsageError(
      `${flag} ${name}: no such node in the configuration (nodes: ${nodes.map((n) => n.name).join(", ")})`,
    );
  return node;
}

export function agentNode(
  loaded: LoadedConfig,
  name: string,
  flag: string,
): ClusterNode & { agent: NodeAgent } {
  const node = configuredNode(loaded, name, flag);
  if (!node.agent)
    throw new UsageError(
      `${flag} ${name}: the node has no agent (configure cluster.nodes[].agent, docs/deployment.md)`,
    );
  return node as ClusterNode & { agent: NodeAgent };
}
