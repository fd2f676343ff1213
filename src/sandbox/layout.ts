// Where each sandbox node lives: its directory, socket and four loopback ports.
import { join } from "node:path";

export interface SandboxNode {
  index: number;
  name: string;
  dir: string;
  datadir: string;
  socket: string;
  pidFile: string;
  errorLog: string;
  tmpdir: string;
  cnf: string;
  port: number;
  gmcastPort: number;
  istPort: number;
  sstPort: number;
}

export const PORTS_PER_NODE = 10;
export const DEFAULT_BASE_PORT = 33100;
export const DEFAULT_NODES = 3;

export function nodeLayout(dir: string, index: number, basePort: number): SandboxNode {
  const nodeDir = join(dir, `node${index}`);
  const base = basePort + (index - 1) * PORTS_PER_NODE;
  return {
    index,
    name: `node${index}`,
    dir: nodeDir,
    datadir: join(nodeDir, "data"),
    socket: join(nodeDir, "mysqld.sock"),
    pidFile: join(nodeDir, "mysqld.pid"),
    errorLog: join(nodeDir, "error.log"),
    tmpdir: join(nodeDir, "tmp"),
    cnf: join(nodeDir, "my.cnf"),
    port: base,
    gmcastPort: base + 1,
    istPort: base + 2,
    sstPort: base + 3,
  };
}

export function clusterLayout(dir: string, nodes: number, basePort: number): SandboxNode[] {
  return Array.from({ length: nodes }, (_, i) => nodeLayout(dir, i + 1, basePort));
}

export function sandboxPaths(dir: string) {
  return {
    state: join(dir, "sandbox.json"),
    secrets: join(dir, "secrets"),
    config: join(dir, "strongbox.yaml"),
    repository: join(dir, "repository"),
    keys: join(dir, "keys"),
  };
}
