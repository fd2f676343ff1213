// The processes of sandbox nodes: start mariadbd (as the node's account with --hosts), wait until
// it is Synced, probe its wsrep state, stop it; the error log's last words for the messages.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { StrongboxError } from "../errors.ts";
import { type Connection, type Credentials, connectNode, showGlobal } from "../galera/connection.ts";
import { pidAlive } from "../util/liveness.ts";
import { run, sleep } from "../util/proc.ts";
import { accountOf } from "./accounts.ts";
import type { SandboxNode } from "./layout.ts";

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

export async function readPid(node: SandboxNode): Promise<number | null> {
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

export function startMariadbd(node: SandboxNode, bootstrap: boolean): number {
  const args = [`--defaults-file=${node.cnf}`];
  if (bootstrap) args.push("--wsrep-new-cluster");
  const account = node.osUser ? accountOf(node.osUser) : undefined;
  const child = spawn("/usr/sbin/mariadbd", args, {
    detached: true,
    ...(account ? { uid: account.uid, gid: account.gid, cwd: node.dir } : {}),
    stdio: "ignore",
    env: {
      ...process.env,
      // wsrep SST scripts are found on PATH.
      PATH: `/usr/bin:/usr/sbin:/bin:/sbin:${process.env.PATH ?? ""}`,
      // With --hosts, the node's account at home as on its own host.
      ...(account ? { HOME: account.home, USER: account.name, LOGNAME: account.name } : {}),
    },
  });
  child.unref();
  if (child.pid === undefined)
    throw new StrongboxError("SANDBOX_START_FAILED", `${node.name}: mariadbd did not start`);
  return child.pid;
}

export async function probeNode(node: SandboxNode, creds: Credentials | undefined): Promise<NodeStatus> {
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
      { name: node.name, host: node.address, port: node.port, socket: node.socket },
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

/**
 * Runs SQL as the OS user over the socket (unix_socket auth), SQL on stdin so nothing secret is in
 * argv. With --hosts the client runs as the node's own account, which the server knows by its uid.
 */
export async function socketSql(node: SandboxNode, osUser: string, sql: string): Promise<string> {
  const r = await run(
    "/usr/bin/mariadb",
    [`--socket=${node.socket}`, `--user=${osUser}`, "--batch", "--skip-column-names"],
    {
      input: sql,
      timeoutMs: 60_000,
      ...(node.osUser ? { uid: accountOf(node.osUser).uid, gid: accountOf(node.osUser).gid } : {}),
    },
  );
  return r.stdout;
}

export async function stopProcess(node: SandboxNode, pid: number, timeoutMs = 90_000): Promise<void> {
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
