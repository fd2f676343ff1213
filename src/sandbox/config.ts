// The strongbox.yaml that `sandbox up` writes: a ready configuration for the sandbox cluster.
import { writeFile } from "node:fs/promises";
import { stringify } from "yaml";
import type { StrongboxConfig } from "../config/schema.ts";
import { SANDBOX_USERS, type SandboxState, sandboxNodes } from "./cluster.ts";
import { sandboxPaths } from "./layout.ts";

export function sandboxConfig(state: SandboxState): StrongboxConfig {
  const nodes = sandboxNodes(state);
  const last = nodes[nodes.length - 1]!;
  return {
    version: 1,
    cluster: {
      name: state.clusterName,
      nodes: nodes.map((n) => ({
        name: n.name,
        host: "127.0.0.1",
        port: n.port,
        // With TLS the nodes are reached over TCP, so the encrypted path is the one used.
        ...(state.tls ? {} : { socket: n.socket }),
        datadir: n.datadir,
        defaultsFile: n.cnf,
      })),
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

export async function writeSandboxConfig(state: SandboxState): Promise<string> {
  const path = sandboxPaths(state.dir).config;
  const header =
    "# Written by `strongbox sandbox up` for the sandbox cluster in this directory.\n" +
    "# Relative paths are relative to this file. See docs/configuration.md.\n";
  await writeFile(path, header + stringify(sandboxConfig(state)), { mode: 0o600 });
  return path;
}
