// The locality guard: mariabackup copies whatever data directory it finds on the host it runs on,
// so a physical backup of a node without an agent runs here only when this host is that node's.
// The proof: the server's @@datadir is readable here, and the process in its @@pid_file is alive
// and works in that directory. Otherwise one node's files could be labelled with another's positions.
import { accessSync, constants, readFileSync, readlinkSync, realpathSync } from "node:fs";
import { hostname } from "node:os";
import { StrongboxError } from "../errors.ts";
import { type Connection, queryRows } from "../galera/connection.ts";
import { pidAlive } from "../util/liveness.ts";

function notLocal(node: string, why: string): StrongboxError {
  return new StrongboxError(
    "NODE_NOT_LOCAL",
    `refusing a physical backup of ${node} on ${hostname()}: ${why}`,
    {
      stage: "choose-node",
      hint: `configure cluster.nodes[].agent for ${node} (docs/deployment.md), or run strongbox on that node`,
    },
  );
}

export async function assertLocalNode(conn: Connection, node: string): Promise<void> {
  const [row] = await queryRows<{ datadir: string; pidFile: string }>(
    conn,
    "SELECT @@datadir AS datadir, @@pid_file AS pidFile",
  );
  const datadir = row?.datadir ?? "";
  let real: string;
  try {
    accessSync(datadir, constants.R_OK | constants.X_OK);
    real = realpathSync(datadir);
  } catch {
    throw notLocal(node, `its data directory ${datadir} is not readable here`);
  }
  let pid: number;
  try {
    pid = Number(readFileSync(row!.pidFile, "utf8").trim());
  } catch {
    throw notLocal(node, `its pid file ${row?.pidFile} is not readable here`);
  }
  if (!pidAlive(pid)) throw notLocal(node, `no process ${pid} (from ${row?.pidFile}) runs here`);
  let cwd: string | undefined;
  try {
    cwd = readlinkSync(`/proc/${pid}/cwd`);
  } catch {
    cwd = undefined; // another user's process: its working directory is not ours to see
  }
  if (cwd !== undefined && cwd !== real) {
    throw notLocal(node, `process ${pid} works in ${cwd}, not in the server's data directory ${real}`);
  }
}
