// wsrep_desync around a backup: the donor stops sending flow control while mariabackup reads it.
// Always turned back off, after the receive queue drains, also when the backup fails or is aborted.
import { mkdir, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { pidAlive } from "../util/liveness.ts";
import { sleep } from "../util/proc.ts";
import {
  type Connection,
  type Credentials,
  connectNode,
  type NodeEndpoint,
  showGlobal,
  type TlsOptions,
} from "./connection.ts";

export interface DesyncGuard {
  /** Waits for wsrep_local_recv_queue to drain (bounded), then sets wsrep_desync=OFF. Idempotent. */
  release(): Promise<void>;
}

export async function desyncNode(
  node: NodeEndpoint,
  admin: Credentials,
  options: { tls?: TlsOptions; drainTimeoutMs?: number; log?: (m: string) => void } = {},
): Promise<DesyncGuard> {
  const conn: Connection = await connectNode(node, admin, { tls: options.tls });
  try {
    const before = await showGlobal(conn, "VARIABLES", "wsrep_desync");
    if (before.get("wsrep_desync") === "ON") {
      // Someone else desynced it (another tool, a DBA): leave it as we found it.
      await conn.end();
      options.log?.(`${node.name} was already desynced; leaving wsrep_desync as it is`);
      return { release: async () => {} };
    }
    await conn.query("SET GLOBAL wsrep_desync = ON");
  } catch (e) {
    await conn.end().catch(() => {});
    throw new StrongboxError(
      "DESYNC_FAILED",
      `cannot set wsrep_desync on ${node.name}: ${(e as Error).message}`,
      {
        stage: "desync",
        hint: "the admin account needs SUPER (or set cluster.desync: off)",
        cause: e,
      },
    );
  }
  let released = false;
  return {
    release: async () => {
      if (released) return;
      released = true;
      try {
        await releaseOn(conn, options.drainTimeoutMs);
      } catch {
        // The connection may have died with a long backup (wait_timeout) or a restarted node: retry fresh.
        const again = await connectNode(node, admin, { tls: options.tls });
        try {
          await releaseOn(again, options.drainTimeoutMs);
        } finally {
          await again.end().catch(() => {});
        }
      } finally {
        await conn.end().catch(() => {});
      }
    },
  };
}

async function releaseOn(conn: Connection, drainTimeoutMs = 120_000): Promise<void> {
  const deadline = Date.now() + drainTimeoutMs;
  for (;;) {
    const s = await showGlobal(conn, "STATUS", "wsrep_local_recv_queue");
    if (Number(s.get("wsrep_local_recv_queue") ?? 0) === 0 || Date.now() > deadline) break;
    await sleep(200);
  }
  await conn.query("SET GLOBAL wsrep_desync = OFF");
}

// A marker file per desynced node, so that a run killed with SIGKILL (no cleanup possible) is
// repaired by the next run: it finds the marker of a dead process and turns desync off.
interface DesyncMarker {
  node: string;
  pid: number;
  since: string;
}

function markerPath(stateDir: string, node: string): string {
  return join(stateDir, `desync-${node}.json`);
}

export async function writeDesyncMarker(stateDir: string, node: string): Promise<void> {
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const m: DesyncMarker = { node, pid: process.pid, since: new Date().toISOString() };
  await writeFile(markerPath(stateDir, node), JSON.stringify(m), { mode: 0o600 });
}

export async function clearDesyncMarker(stateDir: string, node: string): Promise<void> {
  await rm(markerPath(stateDir, node), { force: true });
}

/** Turns desync off on nodes left desynced by a run that died; returns the nodes repaired. */
export async function repairAbandonedDesync(
  stateDir: string,
  nodes: NodeEndpoint[],
  admin: Credentials | undefined,
  options: { tls?: TlsOptions; log?: (m: string) => void } = {},
): Promise<string[]> {
  let files: string[];
  try {
    files = (await readdir(stateDir)).filter((f) => /^desync-.+\.json$/.test(f));
  } catch {
    return [];
  }
  const repaired: string[] = [];
  for (const f of files) {
    let m: DesyncMarker;
    try {
      m = JSON.parse(await readFile(join(stateDir, f), "utf8")) as DesyncMarker;
    } catch {
      continue;
    }
    if (pidAlive(m.pid)) continue;
    const node = nodes.find((n) => n.name === m.node);
    if (node && admin) {
      try {
        const conn = await connectNode(node, admin, { tls: options.tls });
        try {
          await conn.query("SET GLOBAL wsrep_desync = OFF");
        } finally {
          await conn.end().catch(() => {});
        }
        options.log?.(
          `turned wsrep_desync off on ${m.node}: a backup (pid ${m.pid}) died with it on at ${m.since}`,
        );
        repaired.push(m.node);
      } catch (e) {
        options.log?.(
          `warning: ${m.node} may still be desynced by a dead backup (pid ${m.pid}): ${(e as Error).message}`,
        );
        continue;
      }
    }
    await rm(join(stateDir, f), { force: true });
  }
  return repaired;
}
