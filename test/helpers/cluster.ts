// One real Galera cluster per test file: start it in `before`, stop it in `after`.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import type { Credentials } from "../../src/galera/connection.ts";
import { type Connection, connectNode } from "../../src/galera/connection.ts";
import { readSecret, readState, sandboxDown, sandboxNodes } from "../../src/sandbox/cluster.ts";
import type { SandboxNode } from "../../src/sandbox/layout.ts";
import { createSandbox } from "../../src/sandbox/setup.ts";

export interface TestCluster {
  dir: string;
  nodes: SandboxNode[];
  admin: Credentials;
  backup: Credentials;
  /** strongbox.yaml written by sandbox up. */
  configPath: string;
  connect(index?: number): Promise<Connection>;
}

// Test files run in parallel: each picks its own port range, spaced by pid.
let nextBase = 34000 + (process.pid % 200) * 100;

/**
 * Registers before/after hooks that start an N-node sandbox once for the calling test file.
 * The returned object is filled in when `before` has run.
 */
export function useCluster(options: { nodes?: number; keep?: boolean; tls?: boolean } = {}): TestCluster {
  const cluster = { nodes: [] } as unknown as TestCluster;
  before(
    async () => {
      const dir = await mkdtemp(join(tmpdir(), "strongbox-test-"));
      const { findFreeBasePort } = await import("../../src/sandbox/cluster.ts");
      const basePort = await findFreeBasePort(options.nodes ?? 3, nextBase);
      nextBase = basePort + 100;
      await createSandbox({ dir, nodes: options.nodes ?? 3, basePort, bufferPool: "128M", tls: options.tls });
      const state = await readState(dir);
      cluster.dir = dir;
      cluster.nodes = sandboxNodes(state);
      cluster.admin = await readSecret(dir, "admin");
      cluster.backup = await readSecret(dir, "backup");
      cluster.configPath = join(dir, "strongbox.yaml");
      cluster.connect = (index = 1) => {
        const n = cluster.nodes[index - 1]!;
        return connectNode(
          { name: n.name, host: "127.0.0.1", port: n.port, socket: n.socket },
          cluster.admin,
          {
            multipleStatements: true,
          },
        );
      };
    },
    { timeout: 300_000 },
  );
  after(
    async () => {
      if (!cluster.dir) return;
      await sandboxDown(cluster.dir).catch(() => {});
      if (!options.keep) await rm(cluster.dir, { recursive: true, force: true });
    },
    { timeout: 300_000 },
  );
  return cluster;
}
