// Waits until the sandbox server is idle. Right after a load of gigabytes InnoDB is still flushing
// dirty pages for minutes; measuring then would charge that work to whichever tool runs first.
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { connectNode, queryRows } from "../src/galera/connection.ts";
import { readSecret } from "../src/sandbox/cluster.ts";
import type { SandboxNode } from "../src/sandbox/layout.ts";

const CLOCK_TICKS = 100;

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "latin1");
  const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return Number(f[11]) + Number(f[12]);
}

export interface QuiesceResult {
  seconds: number;
  dirtyPagesBefore: number;
  idle: boolean;
}

/** Flushes the buffer pool and waits (at most `maxS`) until mariadbd uses under 5% of a core. */
export async function quiesce(sandboxDir: string, node: SandboxNode, maxS = 300): Promise<QuiesceResult> {
  const started = Date.now();
  const pid = Number(readFileSync(node.pidFile, "utf8").trim());
  const admin = await readSecret(sandboxDir, "admin");
  const conn = await connectNode(
    { name: node.name, host: "127.0.0.1", port: node.port, socket: node.socket },
    admin,
  );
  let dirtyPagesBefore = 0;
  let idle = false;
  try {
    const dirty = async () =>
      Number(
        (
          await queryRows<{ Value: string }>(conn, "SHOW GLOBAL STATUS LIKE 'Innodb_buffer_pool_pages_dirty'")
        )[0]?.Value ?? 0,
      );
    dirtyPagesBefore = await dirty();
    const [old] = await queryRows<{ pct: string; lwm: string }>(
      conn,
      "SELECT @@GLOBAL.innodb_max_dirty_pages_pct AS pct, @@GLOBAL.innodb_max_dirty_pages_pct_lwm AS lwm",
    );
    await conn.query("SET GLOBAL innodb_max_dirty_pages_pct_lwm = 0");
    await conn.query("SET GLOBAL innodb_max_dirty_pages_pct = 0");
    try {
      while ((Date.now() - started) / 1000 < maxS) {
        const before = cpuTicks(pid);
        await sleep(2000);
        const busy = (cpuTicks(pid) - before) / CLOCK_TICKS / 2;
        if (busy < 0.05 && (await dirty()) < 64) {
          idle = true;
          break;
        }
      }
    } finally {
      await conn.query(`SET GLOBAL innodb_max_dirty_pages_pct = ${Number(old?.pct ?? 90)}`);
      await conn.query(`SET GLOBAL innodb_max_dirty_pages_pct_lwm = ${Number(old?.lwm ?? 0)}`);
    }
  } finally {
    await conn.end().catch(() => {});
  }
  return { seconds: (Date.now() - started) / 1000, dirtyPagesBefore, idle };
}
