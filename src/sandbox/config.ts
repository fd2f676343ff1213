// The strongbox.yaml that `sandbox up` writes: a ready configuration for the sandbox cluster.
import { writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stringify } from "yaml";
import type { StrongboxConfig } from "../config/schema.ts";
import { backupHome, SANDBOX_USERS, type SandboxState, sandboxNodes } from "./cluster.ts";
import { AGENT_KEY } from "./hosts.ts";
import type { SandboxNode } from "./layout.ts";

type NodeConfig = StrongboxConfig["cluster"]["nodes"][number];

/**
 * One node as the backup host sees it. On one host: its socket and data directory here. With
 * --hosts: its address over TCP (its socket is in its account's home, not the backup host's), and
 * its agent behind its sshd, host key pinned; datadir and defaultsFile are paths on the node.
 */
function nodeConfig(state: SandboxState, n: SandboxNode, hostKey: string | undefined): NodeConfig {
  const common = { name: n.name, host: n.address, port: n.port, datadir: n.datadir, defaultsFile: n.cnf };
  if (!state.hosts) {
    // With TLS the nodes are reached over TCP, so the encrypted path is the one used.
    return { ...common, ...(state.tls ? {} : { socket: n.socket }) };
  }
  if (!hostKey) throw new Error(`no host key for ${n.name}`);
  return {
    ...common,
    agent: {
      host: n.address,
      port: n.sshPort,
      user: n.osUser!,
      privateKey: AGENT_KEY,
      hostKey,
      connectTimeout: "20s",
      command: "strongbox agent",
    },
  };
}

export function sandboxConfig(state: SandboxState, hostKeys = new Map<string, string>()): StrongboxConfig {
  const nodes = sandboxNodes(state);
  const last = nodes[nodes.length - 1]!;
  return {
    version: 1,
    cluster: {
      name: state.clusterName,
      nodes: nodes.map((n) => nodeConfig(state, n, hostKeys.get(n.name))),
      // Applications write to node1 in the demo; back up from the last node.
      writerNode: nodes[0]!.name,
      backupNode: last.name,
      desync: "auto",
      retryOnNextNode: true,
      credentials: {
        backup: { user: SANDBOX_USERS.backup, passwordFile: "secrets/backup.password" },
        admin: { user: SANDBOX_USERS.admin, passwordFile: "secrets/admin.password" },
      },
      ...(state.tls
        ? { tls: { ca: "tls/ca.pem", cert: "tls/client-cert.pem", key: "tls/client-key.pem" } }
        : {}),
    },
    repositories: [{ name: "local", storage: { type: "local", path: "repository" }, appendOnly: false }],
    keys: {
      recipients: [],
      // One recipient per line: the demo appends an escrow key here with `key generate`.
      recipientsFile: "keys/recipients.txt",
      signingKey: "keys/signing.key",
      // Only because this is a sandbox: a real backup host must not hold the identity.
      identity: "keys/identity.txt",
    },
    backup: {
      partSize: "64MiB",
      compressionLevel: 1,
      compressionThreads: 0,
      fullEvery: "7d",
      mariabackupPath: "mariabackup",
      mariadbDumpPath: "mariadb-dump",
      parallel: 2,
      exactCountMaxRows: 1_000_000,
      lockTtl: "2h",
      timeout: "24h",
      stallTimeout: "5m",
      copyTo: [],
    },
    restoreTest: {
      bufferPool: "256M",
      rowCountTolerance: 0,
      estimateTolerance: 0.5,
      assertions: [
        {
          name: "the backup account survives a restore",
          sql: "SELECT COUNT(*) > 0 FROM mysql.global_priv WHERE User = 'strongbox_backup'",
          expect: "1",
        },
      ],
    },
  };
}

export async function writeSandboxConfig(
  state: SandboxState,
  hostKeys?: Map<string, string>,
): Promise<string> {
  const path = join(backupHome(state), "strongbox.yaml");
  const header = state.hosts
    ? "# Written by `strongbox sandbox up --hosts` for the backup host's account of this sandbox.\n" +
      "# Physical backups run in each node's agent over SSH. See docs/deployment.md.\n"
    : "# Written by `strongbox sandbox up` for the sandbox cluster in this directory.\n" +
      "# Relative paths are relative to this file. See docs/configuration.md.\n";
  await writeFile(path, header + stringify(sandboxConfig(state, hostKeys), { lineWidth: 0 }), {
    mode: 0o600,
  });
  return path;
}
