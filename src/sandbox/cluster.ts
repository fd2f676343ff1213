// A real MariaDB Galera cluster on loopback, for trying Strongbox and for its tests.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync } from "node:fs";
import { mkdir, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { userInfo } from "node:os";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { type Connection, type Credentials, connectNode, showGlobal } from "../galera/connection.ts";
import { pidAlive } from "../util/liveness.ts";
import { run, sleep } from "../util/proc.ts";
import { clusterLayout, DEFAULT_BASE_PORT, DEFAULT_NODES, type SandboxNode, sandboxPaths } from "./layout.ts";
import { renderNodeCnf } from "./mycnf.ts";
import { makeSandboxTls } from "./tls.ts";

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
  /** TLS for client connections, with require_secure_transport (certificates in DIR/tls). */
  tls?: boolean;
}

export interface NodeStatus {
  name: string;
  index: number;
  pid: number | null;
  port: number;
  socket: string;
  running: boolean;
  state: string;
  clusterStatus: string;
  clusterSize: number;
  ready: boolean;
  error?: string;
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

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once("error", () => resolve(false));
    srv.listen({ port, host: "127.0.0.1", exclusive: true }, () => srv.close(() => resolve(true)));
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
    ] as const) {
      if (!(await portFree(port))) taken.push(`${port} (${n.name} ${what})`);
    }
  }
  return taken;
}

/** Finds a base port from which every port a cluster of `nodes` needs is free. */
export async function findFreeBasePort(nodes: number, from = DEFAULT_BASE_PORT): Promise<number> {
  for (let base = from; base < 60000; base += 100) {
    if ((await takenPorts(clusterLayout("/nonexistent", nodes, base))).length === 0) return base;
  }
  throw new StrongboxError("SANDBOX_NO_PORTS", "no free range of loopback ports found for the sandbox");
}

export async function readState(dir: string): Promise<SandboxState> {
  const file = sandboxPaths(dir).state;
  try {
    return JSON.parse(await readFile(file, "utf8")) as SandboxState;
  } catch {
    throw new StrongboxError("SANDBOX_NOT_FOUND", `no sandbox in ${dir}`, {
      hint: "start one with: strongbox sandbox up --dir DIR",
    });
  }
}

export function sandboxNodes(state: SandboxState): SandboxNode[] {
  return clusterLayout(state.dir, state.nodes, state.basePort);
}

async function readPid(node: SandboxNode): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(node.pidFile, "utf8")).trim(), 10);
    return Number.isFinite(pid) && pidAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** An error log line without its time and thread id. */
export function withoutLogPrefix(line: string): string {
  // MariaDB pads the hour with a space: "2026-11-27  0:35:05 0 [ERROR] …" before 10:00.
  return line.replace(/^\d{4}-\d\d-\d\d +\d{1,2}:\d\d:\d\d \d+ /, "").trim();
}

/**
 * Whether a joiner that exited while starting failed its state transfer, which Galera leaves to
 * a new start of the node. Seen on the loaded 2-core CI machine: the joiner dropped out of the
 * primary component during the SST ("Will never receive state. Need to abort.").
 */
export function stateTransferFailed(errorTail: string): boolean {
  return /Will never receive state|sst_received\(\) failed|SST (failed|script aborted)/i.test(errorTail);
}

/** The last error lines of a node's log, on one line (timestamps dropped). */
async function errorLogTail(node: SandboxNode, lines = 3): Promise<string> {
  try {
    const text = await readFile(node.errorLog, "utf8");
    return text
      .trimEnd()
      .split("\n")
      .filter((l) => /\[ERROR\]|Aborting|FATAL/i.test(l))
      .slice(-lines)
      .map(withoutLogPrefix)
      .join(" | ");
  } catch {
    return "(no error log)";
  }
}

export async function readSecret(dir: string, name: keyof typeof SANDBOX_USERS): Promise<Credentials> {
  const password = (await readFile(join(sandboxPaths(dir).secrets, `${name}.password`), "utf8")).trim();
  return { user: SANDBOX_USERS[name], password };
}

export function startMariadbd(node: SandboxNode, bootstrap: boolean): number {
  const args = [`--defaults-file=${node.cnf}`];
  if (bootstrap) args.push("--wsrep-new-cluster");
  const child = spawn("/usr/sbin/mariadbd", args, {
    detached: true,
    stdio: "ignore",
    // wsrep SST scripts are found on PATH.
    env: { ...process.env, PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${process.env.PATH ?? ""}` },
  });
  child.unref();
  if (child.pid === undefined)
    throw new StrongboxError("SANDBOX_START_FAILED", `${node.name}: mariadbd did not start`);
  return child.pid;
}

async function probeNode(node: SandboxNode, creds: Credentials | undefined): Promise<NodeStatus> {
  const pid = await readPid(node);
  const base: NodeStatus = {
    name: node.name,
    index: node.index,
    pid,
    port: node.port,
    socket: node.socket,
    running: pid !== null,
    state: pid === null ? "down" : "starting",
    clusterStatus: "",
    clusterSize: 0,
    ready: false,
  };
  if (pid === null || !creds) return base;
  let conn: Connection | undefined;
  try {
    conn = await connectNode(
      { name: node.name, host: "127.0.0.1", port: node.port, socket: node.socket },
      creds,
      {
        timeoutMs: 2000,
      },
    );
    const s = await showGlobal(conn, "STATUS", "wsrep_%");
    return {
      ...base,
      state: s.get("wsrep_local_state_comment") ?? "unknown",
      clusterStatus: s.get("wsrep_cluster_status") ?? "",
      clusterSize: Number(s.get("wsrep_cluster_size") ?? 0),
      ready: s.get("wsrep_ready") === "ON",
    };
  } catch (e) {
    return { ...base, error: (e as Error).message };
  } finally {
    await conn?.end().catch(() => {});
  }
}

export async function waitSynced(
  node: SandboxNode,
  pid: number,
  creds: Credentials | undefined,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (!pidAlive(pid)) {
      throw new StrongboxError(
        "SANDBOX_NODE_FAILED",
        `${node.name} exited while starting: ${await errorLogTail(node)}`,
        {
          hint: `full log: ${node.errorLog}`,
        },
      );
    }
    if (creds) {
      const st = await probeNode(node, creds);
      if (st.state === "Synced" && st.clusterStatus === "Primary" && st.ready) return;
    } else if (existsSync(node.socket)) {
      return;
    }
    await sleep(300);
  }
  throw new StrongboxError(
    "SANDBOX_NODE_TIMEOUT",
    `${node.name} did not reach Synced within ${Math.round(timeoutMs / 1000)} s: ${await errorLogTail(node)}`,
    { hint: `full log: ${node.errorLog}` },
  );
}

/** Runs SQL as the OS user over the socket (unix_socket auth), SQL on stdin so nothing secret is in argv. */
async function socketSql(node: SandboxNode, osUser: string, sql: string): Promise<string> {
  const r = await run(
    "/usr/bin/mariadb",
    [`--socket=${node.socket}`, `--user=${osUser}`, "--batch", "--skip-column-names"],
    {
      input: sql,
      timeoutMs: 60_000,
    },
  );
  return r.stdout;
}

function password(): string {
  return randomBytes(24).toString("base64url");
}

export async function sandboxUp(o: UpOptions): Promise<SandboxState> {
  checkPackages();
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
  const basePort = o.basePort ?? (await findFreeBasePort(nodesCount));
  const nodes = clusterLayout(dir, nodesCount, basePort);
  const taken = await takenPorts(nodes);
  if (taken.length > 0) {
    const free = await findFreeBasePort(nodesCount, basePort + 100).catch(() => undefined);
    throw new StrongboxError("SANDBOX_PORT_TAKEN", `ports in use: ${taken.join(", ")}`, {
      hint: free
        ? `choose another base port, e.g. --base-port ${free}`
        : "free them or choose another --base-port",
    });
  }
  const runAsRoot = process.getuid?.() === 0;
  const osUser = userInfo().username;
  const state: SandboxState = {
    version: 1,
    dir,
    nodes: nodesCount,
    basePort,
    clusterName: "strongbox-sandbox",
    runAsRoot,
    osUser,
    createdAt: new Date().toISOString(),
    tls: o.tls ?? false,
  };
  await mkdir(dir, { recursive: true, mode: MODE_DIR });
  await mkdir(paths.secrets, { recursive: true, mode: MODE_DIR });
  const secrets = { admin: password(), backup: password(), sst: password() };
  for (const [name, value] of Object.entries(secrets)) {
    await writeFile(join(paths.secrets, `${name}.password`), `${value}\n`, { mode: MODE_FILE, flag: "wx" });
  }
  await writeFile(paths.state, `${JSON.stringify(state, null, 2)}\n`, { mode: MODE_FILE });
  const tls = o.tls ? await makeSandboxTls(join(dir, "tls")) : undefined;
  const tlsCnf = tls
    ? [
        `ssl_ca=${tls.ca}`,
        `ssl_cert=${tls.serverCert}`,
        `ssl_key=${tls.serverKey}`,
        "require_secure_transport=ON",
      ]
    : [];
  for (const n of nodes) {
    await mkdir(n.datadir, { recursive: true, mode: MODE_DIR });
    await mkdir(n.tmpdir, { recursive: true, mode: MODE_DIR });
    await writeFile(
      n.cnf,
      renderNodeCnf(n, {
        clusterName: state.clusterName,
        nodes,
        sstUser: SANDBOX_USERS.sst,
        sstPassword: secrets.sst,
        runAsRoot,
        bufferPool: o.bufferPool ?? "256M",
        extra: [...tlsCnf, ...(o.extraCnf?.(n) ?? [])],
      }),
      { mode: MODE_FILE },
    );
  }
  const first = nodes[0]!;
  const timeoutMs = o.timeoutMs ?? 120_000;
  log(`initialising ${first.name} data directory`);
  await run(
    "/usr/bin/mariadb-install-db",
    [
      `--defaults-file=${first.cnf}`,
      "--auth-root-authentication-method=socket",
      `--auth-root-socket-user=${osUser}`,
      "--skip-test-db",
      "--wsrep-on=OFF",
    ],
    { timeoutMs: 120_000, label: "mariadb-install-db" },
  );
  log(`bootstrapping ${first.name} (client port ${first.port})`);
  const pid1 = startMariadbd(first, true);
  await waitSynced(first, pid1, undefined, timeoutMs);
  await createUsers(first, osUser, secrets);
  const admin = { user: SANDBOX_USERS.admin, password: secrets.admin };
  await waitSynced(first, pid1, admin, timeoutMs);
  for (const n of nodes.slice(1)) {
    log(`joining ${n.name} by SST (client port ${n.port})`);
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
  ].join("\n");
  await socketSql(node, osUser, sql);
}

export async function sandboxStatus(dir: string): Promise<{ state: SandboxState; nodes: NodeStatus[] }> {
  const state = await readState(dir);
  const admin = await readSecret(dir, "admin");
  const nodes = await Promise.all(sandboxNodes(state).map((n) => probeNode(n, admin)));
  return { state, nodes };
}

function nodeByIndex(state: SandboxState, k: number): SandboxNode {
  const node = sandboxNodes(state)[k - 1];
  if (!node) {
    throw new StrongboxError("SANDBOX_BAD_NODE", `no node ${k} in this sandbox (it has ${state.nodes})`);
  }
  return node;
}

async function stopProcess(node: SandboxNode, pid: number, timeoutMs = 90_000): Promise<void> {
  process.kill(pid, "SIGTERM");
  const deadline = Date.now() + timeoutMs;
  while (pidAlive(pid)) {
    if (Date.now() > deadline) {
      process.kill(pid, "SIGKILL");
      await sleep(200);
      break;
    }
    await sleep(100);
  }
  if (pidAlive(pid))
    throw new StrongboxError("SANDBOX_STOP_FAILED", `${node.name} (pid ${pid}) did not stop`);
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
  const others = await Promise.all(sandboxNodes(state).map(readPid));
  const bootstrap = others.every((p) => p === null);
  if (bootstrap) await markSafeToBootstrap(node);
  const admin = await readSecret(dir, "admin");
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
  if (options.purge) await rm(dir, { recursive: true, force: true });
  return stopped;
}
