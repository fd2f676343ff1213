// A real MariaDB Galera cluster on loopback, for trying Strongbox and for its tests. On one host
// (the default) or, with --hosts, each node a host of its own as far as one machine allows: its own
// loopback address, its own OS account owning its directory, its own sshd (sshd.ts).
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { chmod, mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { Credentials } from "../galera/connection.ts";
import { run, sleep } from "../util/proc.ts";
import {
  type Account,
  assertDirReachableByOthers,
  chownTree,
  createAccount,
  removeAccount,
  requireRoot,
} from "./accounts.ts";
import {
  backupOsUser,
  clusterLayout,
  DEFAULT_BASE_PORT,
  DEFAULT_NODES,
  type HostsLayout,
  type SandboxNode,
  sandboxPaths,
} from "./layout.ts";
import { renderNodeCnf } from "./mycnf.ts";
import {
  type NodeStatus,
  probeNode,
  readPid,
  socketSql,
  startMariadbd,
  stateTransferFailed,
  stopProcess,
  waitSynced,
} from "./processes.ts";
import { agentStatus, startNodeSshd, stopNodeSshd } from "./sshd.ts";
import { checkJoinTls, copyNodeTls, makeSandboxTls, tlsCnf } from "./tls.ts";

export const REQUIRED_PACKAGES: { path: string; pkg: string }[] = [
  { path: "/usr/sbin/mariadbd", pkg: "mariadb-server" },
  { path: "/usr/bin/mariadb-install-db", pkg: "mariadb-server" },
  { path: "/usr/bin/mariadb", pkg: "mariadb-client" },
  { path: "/usr/lib/galera/libgalera_smm.so", pkg: "galera-4" },
  { path: "/usr/bin/mariabackup", pkg: "mariadb-backup" },
  { path: "/usr/bin/socat", pkg: "socat" },
];

export interface SandboxState {
  version: 1;
  dir: string;
  nodes: number;
  basePort: number;
  clusterName: string;
  runAsRoot: boolean;
  osUser: string;
  createdAt: string;
  tls?: boolean;
  /** With --hosts: the accounts' id, the backup host's account and every account this sandbox made. */
  hosts?: HostsLayout & { backupUser: string; accounts: string[] };
}

export interface UpOptions {
  dir: string;
  nodes?: number;
  basePort?: number;
  bufferPool?: string;
  /** Called with short progress messages. */
  log?: (message: string) => void;
  timeoutMs?: number;
  /** Extra [mysqld] lines per node (tuning; fault tests). */
  extraCnf?: (node: SandboxNode) => string[];
  /** TLS everywhere: client connections (require_secure_transport), gcomm, IST and SST (DIR/tls). */
  tls?: boolean;
  /** Each node a host of its own: address, OS account, sshd with the agent (needs root). */
  hosts?: boolean;
}

const MODE_DIR = 0o700;
const MODE_FILE = 0o600;
export const SANDBOX_USERS = {
  admin: "strongbox_admin",
  backup: "strongbox_backup",
  sst: "strongbox_sst",
} as const;

export function checkPackages(required = REQUIRED_PACKAGES): void {
  const missing = [...new Set(required.filter((p) => !existsSync(p.path)).map((p) => p.pkg))];
  if (missing.length > 0) {
    throw new StrongboxError("SANDBOX_PACKAGES_MISSING", `missing Debian packages: ${missing.join(", ")}`, {
      hint: `install them with: apt-get install -y ${missing.join(" ")}`,
    });
  }
}

function portFree(port: number, host: string): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

async function takenPorts(nodes: SandboxNode[]): Promise<string[]> {
  const taken: string[] = [];
  for (const n of nodes) {
    for (const [what, port] of [
      ["client", n.port],
      ["gmcast", n.gmcastPort],
      ["IST", n.istPort],
      ["SST", n.sstPort],
      ...(n.osUser ? [["SSH", n.sshPort] as const] : []),
    ] as const) {
      if (!(await portFree(port, n.address))) taken.push(`${n.address}:${port} (${n.name} ${what})`);
    }
  }
  return taken;
}

/** Finds a base port from which every port a cluster of `nodes` needs is free. */
export async function findFreeBasePort(
  nodes: number,
  from = DEFAULT_BASE_PORT,
  hosts?: HostsLayout,
): Promise<number> {
  for (let base = from; base < 60000; base += 100) {
    if ((await takenPorts(clusterLayout("/nonexistent", nodes, base, hosts))).length === 0) return base;
  }
  throw new StrongboxError("SANDBOX_NO_PORTS", "no free range of loopback ports found for the sandbox");
}

export async function readState(dir: string): Promise<SandboxState> {
  const file = sandboxPaths(dir).state;
  try {
    return JSON.parse(await readFile(file, "utf8")) as SandboxState;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === "EACCES") {
      // A multi-host sandbox: its record and secrets are root's, like the hosts it stands for.
      throw new StrongboxError(
        "SANDBOX_HOSTS_ROOT",
        `the sandbox in ${dir} is root's: sandbox commands run as root`,
        {
          hint: "run it as root; the backup host's commands (init, backup, verify…) run as its account",
        },
      );
    }
    throw new StrongboxError("SANDBOX_NOT_FOUND", `no sandbox in ${dir}`, {
      hint: "start one with: strongbox sandbox up --dir DIR",
    });
  }
}

export function sandboxNodes(state: SandboxState): SandboxNode[] {
  return clusterLayout(state.dir, state.nodes, state.basePort, state.hosts);
}

/** Where the backup host's side lives: DIR itself, or with --hosts the backup account's home. */
export function backupHome(state: SandboxState): string {
  return state.hosts ? sandboxPaths(state.dir).backupHome : state.dir;
}

export async function readSecret(dir: string, name: keyof typeof SANDBOX_USERS): Promise<Credentials> {
  const password = (await readFile(join(sandboxPaths(dir).secrets, `${name}.password`), "utf8")).trim();
  return { user: SANDBOX_USERS[name], password };
}

function password(): string {
  return randomBytes(24).toString("base64url");
}

export async function sandboxUp(o: UpOptions): Promise<SandboxState> {
  checkPackages();
  if (o.hosts) requireRoot();
  const log = o.log ?? (() => {});
  const nodesCount = o.nodes ?? DEFAULT_NODES;
  if (!Number.isInteger(nodesCount) || nodesCount < 1 || nodesCount > 9) {
    throw new StrongboxError("SANDBOX_BAD_NODES", `--nodes must be between 1 and 9 (got ${nodesCount})`);
  }
  const dir = o.dir;
  const paths = sandboxPaths(dir);
  if (existsSync(paths.state)) {
    const state = await readState(dir);
    const running = await Promise.all(sandboxNodes(state).map(readPid));
    if (running.some((p) => p !== null)) {
      throw new StrongboxError("SANDBOX_RUNNING", `a sandbox is already running in ${dir}`, {
        hint: "stop it with: strongbox sandbox down --dir DIR, or choose another --dir",
      });
    }
    throw new StrongboxError("SANDBOX_EXISTS", `a stopped sandbox exists in ${dir}`, {
      hint: "start its nodes with sandbox start-node, or remove it with: strongbox sandbox down --purge",
    });
  }
  // A sandbox writes DIR/strongbox.yaml: never over a configuration of someone's own.
  if (existsSync(paths.config)) {
    throw new StrongboxError(
      "SANDBOX_DIR_IN_USE",
      `${paths.config} exists and is not a sandbox's; sandbox up would overwrite it`,
      { hint: "choose another --dir" },
    );
  }
  // The accounts of the nodes must reach their homes below DIR.
  if (o.hosts) assertDirReachableByOthers(dir, "the sandbox directory");
  const hosts = o.hosts ? { id: randomBytes(3).toString("hex") } : undefined;
  const basePort = o.basePort ?? (await findFreeBasePort(nodesCount, DEFAULT_BASE_PORT, hosts));
  const nodes = clusterLayout(dir, nodesCount, basePort, hosts);
  const taken = await takenPorts(nodes);
  if (taken.length > 0) {
    const free = await findFreeBasePort(nodesCount, basePort + 100, hosts).catch(() => undefined);
    throw new StrongboxError("SANDBOX_PORT_TAKEN", `ports in use: ${taken.join(", ")}`, {
      hint: free
        ? `choose another base port, e.g. --base-port ${free}`
        : "free them or choose another --base-port",
    });
  }
  const runAsRoot = process.getuid?.() === 0 && !hosts;
  const state: SandboxState = {
    version: 1,
    dir,
    nodes: nodesCount,
    basePort,
    clusterName: "strongbox-sandbox",
    runAsRoot,
    osUser: hosts ? nodes[0]!.osUser! : userInfo().username,
    createdAt: new Date().toISOString(),
    tls: o.tls ?? false,
    ...(hosts
      ? {
          hosts: {
            ...hosts,
            backupUser: backupOsUser(hosts.id),
            accounts: [...nodes.map((n) => n.osUser!), backupOsUser(hosts.id)],
          },
        }
      : {}),
  };
  // With --hosts the accounts pass through DIR to their homes, but may not list it.
  await mkdir(dir, { recursive: true, mode: hosts ? 0o711 : MODE_DIR });
  if (hosts) await chmod(dir, 0o711); // an existing empty directory
  await mkdir(paths.secrets, { recursive: true, mode: MODE_DIR });
  const secrets = { admin: password(), backup: password(), sst: password() };
  for (const [name, value] of Object.entries(secrets)) {
    await writeFile(join(paths.secrets, `${name}.password`), `${value}\n`, { mode: MODE_FILE, flag: "wx" });
  }
  // Written before any account is made, so that down --purge finds every one of them.
  await writeFile(paths.state, `${JSON.stringify(state, null, 2)}\n`, { mode: MODE_FILE });
  // One cluster CA; the node certificate names localhost and every node's address.
  const tls = o.tls
    ? await makeSandboxTls(join(dir, "tls"), { addresses: nodes.map((n) => n.address) })
    : undefined;
  const accounts = new Map<string, Account>();
  if (state.hosts) {
    log(`creating OS accounts ${state.hosts.accounts.join(", ")}`);
    for (const n of nodes) accounts.set(n.name, await createAccount(n.osUser!, n.dir));
    await mkdir(paths.backupHome, { mode: MODE_DIR });
    await chownTree(paths.backupHome, await createAccount(state.hosts.backupUser, paths.backupHome));
  }
  for (const n of nodes) {
    await mkdir(n.datadir, { recursive: true, mode: MODE_DIR });
    await mkdir(n.tmpdir, { recursive: true, mode: MODE_DIR });
    // With --hosts each node reads its certificate and key from its own home, as on a real host.
    const nodeTls = tls && accounts.has(n.name) ? await copyNodeTls(tls, join(n.dir, "tls")) : tls;
    const withTls = nodeTls ? tlsCnf(nodeTls) : { mysqld: [], provider: [], sst: [] };
    await writeFile(
      n.cnf,
      renderNodeCnf(n, {
        clusterName: state.clusterName,
        nodes,
        sstUser: SANDBOX_USERS.sst,
        sstPassword: secrets.sst,
        runAsRoot,
        bufferPool: o.bufferPool ?? "256M",
        extra: [...withTls.mysqld, ...(o.extraCnf?.(n) ?? [])],
        providerOptions: withTls.provider,
        sst: withTls.sst,
      }),
      { mode: MODE_FILE },
    );
    const account = accounts.get(n.name);
    if (account) {
      await mkdir(n.restoreRoot, { mode: MODE_DIR });
      await chownTree(n.dir, account);
    }
  }
  const first = nodes[0]!;
  const firstAccount = accounts.get(first.name);
  const timeoutMs = o.timeoutMs ?? 120_000;
  log(`initialising ${first.name} data directory`);
  await run(
    "/usr/bin/mariadb-install-db",
    [
      `--defaults-file=${first.cnf}`,
      "--auth-root-authentication-method=socket",
      `--auth-root-socket-user=${state.osUser}`,
      "--skip-test-db",
      "--wsrep-on=OFF",
    ],
    {
      timeoutMs: 120_000,
      label: "mariadb-install-db",
      ...(firstAccount ? { uid: firstAccount.uid, gid: firstAccount.gid, cwd: first.dir } : {}),
    },
  );
  log(`bootstrapping ${first.name} (${first.address}, client port ${first.port})`);
  const pid1 = startMariadbd(first, true);
  await waitSynced(first, pid1, undefined, timeoutMs);
  await createUsers(
    first,
    state.osUser,
    secrets,
    nodes.slice(1).flatMap((n) => n.osUser ?? []),
  );
  const admin = { user: SANDBOX_USERS.admin, password: secrets.admin };
  await waitSynced(first, pid1, admin, timeoutMs);
  await checkJoinTls(first, []);
  for (const [i, n] of nodes.slice(1).entries()) {
    await checkJoinTls(n, nodes.slice(0, i + 1));
    log(`joining ${n.name} by SST (${n.address}, client port ${n.port})`);
    const pid = startMariadbd(n, false);
    await waitSynced(n, pid, admin, timeoutMs);
  }
  log(`cluster of ${nodesCount} node(s) is Synced`);
  return state;
}

async function createUsers(
  node: SandboxNode,
  osUser: string,
  secrets: Record<string, string>,
  /** With --hosts, the other nodes' accounts: each logs in over its own node's socket. */
  socketUsers: string[],
): Promise<void> {
  // Wait until the server accepts connections on the socket.
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await socketSql(node, osUser, "SELECT 1;");
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await sleep(300);
    }
  }
  const q = (s: string) => s.replace(/\\/g, "\\\\").replace(/'/g, "\\'");
  const sql = [
    ...["localhost", "127.0.0.1"].flatMap((h) => [
      `CREATE USER '${SANDBOX_USERS.admin}'@'${h}' IDENTIFIED BY '${q(secrets.admin!)}';`,
      `GRANT ALL PRIVILEGES ON *.* TO '${SANDBOX_USERS.admin}'@'${h}' WITH GRANT OPTION;`,
      `CREATE USER '${SANDBOX_USERS.backup}'@'${h}' IDENTIFIED BY '${q(secrets.backup!)}';`,
      // The minimal set (docs/least-privilege.md): physical RELOAD, PROCESS, BINLOG MONITOR;
      // logical and the inventory SELECT, SHOW VIEW, TRIGGER, EVENT.
      `GRANT SELECT, RELOAD, PROCESS, BINLOG MONITOR, SHOW VIEW, EVENT, TRIGGER ON *.* TO '${SANDBOX_USERS.backup}'@'${h}';`,
    ]),
    `CREATE USER '${SANDBOX_USERS.sst}'@'localhost' IDENTIFIED BY '${q(secrets.sst!)}';`,
    `GRANT RELOAD, PROCESS, LOCK TABLES, BINLOG MONITOR, SLAVE MONITOR ON *.* TO '${SANDBOX_USERS.sst}'@'localhost';`,
    // As mariadb-install-db made it for the first node's account: the owner of each host's server.
    ...socketUsers.flatMap((u) => [
      `CREATE USER '${u}'@'localhost' IDENTIFIED VIA unix_socket;`,
      `GRANT ALL PRIVILEGES ON *.* TO '${u}'@'localhost' WITH GRANT OPTION;`,
    ]),
  ].join("\n");
  await socketSql(node, osUser, sql);
}

/** A node's status with where it lives: its address and OS account, and with --hosts its agent. */
export interface SandboxNodeStatus extends NodeStatus {
  address: string;
  osUser: string;
  agent?: {
    host: string;
    port: number;
    user: string;
    hostKey: string;
    /** The node's sshd, which starts the agent for the backup host's key. */
    sshdPid: number | null;
    listening: boolean;
    command: string;
    /** The directory on the node for restores onto it (owned by the node's account). */
    restoreRoot: string;
  };
}

export async function sandboxStatus(
  dir: string,
): Promise<{ state: SandboxState; nodes: SandboxNodeStatus[] }> {
  const state = await readState(dir);
  const admin = await readSecret(dir, "admin");
  const nodes = await Promise.all(
    sandboxNodes(state).map(async (n): Promise<SandboxNodeStatus> => {
      const status = { ...(await probeNode(n, admin)), address: n.address, osUser: n.osUser ?? state.osUser };
      if (!n.osUser) return status;
      const agent = await agentStatus(n);
      return { ...status, agent };
    }),
  );
  return { state, nodes };
}

function nodeByIndex(state: SandboxState, k: number): SandboxNode {
  const node = sandboxNodes(state)[k - 1];
  if (!node) {
    throw new StrongboxError("SANDBOX_BAD_NODE", `no node ${k} in this sandbox (it has ${state.nodes})`);
  }
  return node;
}

export async function stopNode(dir: string, k: number): Promise<void> {
  const state = await readState(dir);
  const node = nodeByIndex(state, k);
  const pid = await readPid(node);
  if (pid === null) throw new StrongboxError("SANDBOX_NODE_DOWN", `${node.name} is not running`);
  await stopProcess(node, pid);
}

/** Starts a stopped node; it rejoins by IST, or bootstraps a new component when it is the only one. */
export async function startNode(dir: string, k: number, timeoutMs = 120_000): Promise<void> {
  const state = await readState(dir);
  const node = nodeByIndex(state, k);
  if ((await readPid(node)) !== null) {
    throw new StrongboxError("SANDBOX_NODE_UP", `${node.name} is already running`);
  }
  const all = sandboxNodes(state);
  const others = await Promise.all(all.map(readPid));
  const bootstrap = others.every((p) => p === null);
  await checkJoinTls(
    node,
    all.filter((_, i) => others[i] !== null),
  );
  if (bootstrap) await markSafeToBootstrap(node);
  const admin = await readSecret(dir, "admin");
  // A host brought back after `sandbox down` has its sshd started again too.
  if (node.osUser) await startNodeSshd(node);
  try {
    await waitSynced(node, startMariadbd(node, bootstrap), admin, timeoutMs);
  } catch (e) {
    // A joiner whose state transfer failed gets one more start, as a DBA would give it.
    const failedSst =
      (e as StrongboxError).code === "SANDBOX_NODE_FAILED" && stateTransferFailed((e as Error).message);
    if (bootstrap || !failedSst) throw e;
    await waitSynced(node, startMariadbd(node, false), admin, timeoutMs);
  }
}

async function markSafeToBootstrap(node: SandboxNode): Promise<void> {
  const file = join(node.datadir, "grastate.dat");
  try {
    const text = await readFile(file, "utf8");
    await writeFile(file, text.replace(/safe_to_bootstrap:\s*0/, "safe_to_bootstrap: 1"));
  } catch {
    // No grastate.dat: nothing to mark.
  }
}

export async function sandboxDown(dir: string, options: { purge?: boolean } = {}): Promise<number> {
  const state = await readState(dir);
  let stopped = 0;
  // Stop the joiners first so the last one stops cleanly as the whole primary component.
  for (const node of sandboxNodes(state).reverse()) {
    const pid = await readPid(node);
    if (pid !== null) {
      await stopProcess(node, pid);
      stopped++;
    }
  }
  // Each host's sshd with its sessions (agents) goes too.
  for (const node of sandboxNodes(state)) if (node.osUser) await stopNodeSshd(node);
  if (options.purge) {
    // Only the accounts this sandbox made, and only once nothing of theirs runs.
    for (const name of state.hosts?.accounts ?? []) await removeAccount(name);
    await rm(dir, { recursive: true, force: true });
  }
  return stopped;
}
