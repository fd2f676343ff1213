// Where each sandbox node lives: its directory, socket, address and ports. On one host (the
// default) every node listens on 127.0.0.1 with its own ports; with --hosts each node is a host
// of its own: its own loopback address (127.0.0.11, .12, …), the same port numbers on each, and
// an OS account owning its directory.
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
  /** The address every port of the node listens on. */
  address: string;
  port: number;
  gmcastPort: number;
  istPort: number;
  sstPort: number;
  /** The node's sshd (--hosts only). */
  sshPort: number;
  /** The node's OS account, which owns `dir` and runs mariadbd and the agent (--hosts only). */
  osUser?: string;
  /** The node's sshd: host key, config, pid and log, root's (--hosts only). */
  sshdDir: string;
  /** Where restores onto this node may go: its account's, 0700 (--hosts only). */
  restoreRoot: string;
}

export const PORTS_PER_NODE = 10;
export const DEFAULT_BASE_PORT = 33100;
export const DEFAULT_NODES = 3;

/** With --hosts: who is who. `id` keeps the accounts of two sandboxes on one machine apart. */
export interface HostsLayout {
  id: string;
}

export function hostAddress(index: number): string {
  return `127.0.0.${10 + index}`;
}

export function nodeOsUser(id: string, name: string): string {
  return `sbx-${id}-${name}`;
}

export function backupOsUser(id: string): string {
  return `sbx-${id}-backup`;
}

export function nodeLayout(dir: string, index: number, basePort: number, hosts?: HostsLayout): SandboxNode {
  const name = `node${index}`;
  const nodeDir = join(dir, name);
  // One host: each node its own range of ports. Separate hosts: the same ports on each address.
  const base = hosts ? basePort : basePort + (index - 1) * PORTS_PER_NODE;
  return {
    index,
    name,
    dir: nodeDir,
    datadir: join(nodeDir, "data"),
    socket: join(nodeDir, "mysqld.sock"),
    pidFile: join(nodeDir, "mysqld.pid"),
    errorLog: join(nodeDir, "error.log"),
    tmpdir: join(nodeDir, "tmp"),
    cnf: join(nodeDir, "my.cnf"),
    address: hosts ? hostAddress(index) : "127.0.0.1",
    port: base,
    gmcastPort: base + 1,
    istPort: base + 2,
    sstPort: base + 3,
    sshPort: base + 4,
    ...(hosts ? { osUser: nodeOsUser(hosts.id, name) } : {}),
    sshdDir: join(dir, "sshd", name),
    restoreRoot: join(nodeDir, "restore"),
  };
}

export function clusterLayout(
  dir: string,
  nodes: number,
  basePort: number,
  hosts?: HostsLayout,
): SandboxNode[] {
  return Array.from({ length: nodes }, (_, i) => nodeLayout(dir, i + 1, basePort, hosts));
}

export function sandboxPaths(dir: string) {
  return {
    state: join(dir, "sandbox.json"),
    secrets: join(dir, "secrets"),
    config: join(dir, "strongbox.yaml"),
    repository: join(dir, "repository"),
    keys: join(dir, "keys"),
    /** With --hosts: the backup host's account's home (config, keys, repository). */
    backupHome: join(dir, "backup"),
  };
}
