// A throw-away mariadbd on a restored data directory: wsrep off, its own socket, port and tmpdir,
// no grant tables (it listens on loopback only and lives for minutes), stopped and removed always.
import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { mkdir, readFile } from "node:fs/promises";
import { createServer } from "node:net";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { type Connection, type Credentials, connectNode } from "../galera/connection.ts";
import { pidAlive } from "../util/liveness.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { sleep, terminate } from "../util/proc.ts";

export interface ScratchServer {
  pid: number;
  socket: string;
  port: number;
  errorLog: string;
  /** Who logs in (root without grant tables; else the OS user by unix_socket): for option files. */
  account: Credentials;
  connect(options?: { multipleStatements?: boolean }): Promise<Connection>;
  stop(): Promise<void>;
}

/** sun_path holds 108 bytes with the terminating NUL. */
const MAX_SOCKET_PATH = 107;

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once("error", reject);
    srv.listen(0, "127.0.0.1", () => {
      const port = (srv.address() as { port: number }).port;
      srv.close(() => resolve(port));
    });
  });
}

async function logTail(path: string): Promise<string> {
  try {
    return (await readFile(path, "utf8"))
      .trimEnd()
      .split("\n")
      .filter((l) => /ERROR|Aborting|FATAL/i.test(l))
      .slice(-4)
      .join(" | ");
  } catch {
    return "(no error log)";
  }
}

export async function startScratchServer(
  datadir: string,
  workDir: string,
  o: {
    bufferPool?: string;
    timeoutMs?: number;
    signal?: AbortSignal;
    /** Use the grant tables and log in by unix_socket as `socketUser` (a fresh install-db datadir). */
    socketUser?: string;
  } = {},
): Promise<ScratchServer> {
  const tmp = join(workDir, "tmp");
  await mkdir(tmp, { recursive: true, mode: 0o700 });
  // A unix socket path has at most 107 bytes: a deep scratch directory gets its socket in a
  // private directory under the system's temp dir instead, removed when the server stops.
  const sockDir =
    Buffer.byteLength(join(workDir, "mysqld.sock")) <= MAX_SOCKET_PATH
      ? undefined
      : await privateTempDir("sb-sock-");
  const socket = join(sockDir?.path ?? workDir, "mysqld.sock");
  const errorLog = join(workDir, "error.log");
  const port = await freePort();
  const args = [
    "--no-defaults",
    `--datadir=${datadir}`,
    `--socket=${socket}`,
    `--port=${port}`,
    "--bind-address=127.0.0.1",
    `--pid-file=${join(workDir, "mysqld.pid")}`,
    `--log-error=${errorLog}`,
    `--tmpdir=${tmp}`,
    "--wsrep-on=OFF",
    "--skip-log-bin",
    "--skip-slave-start",
    ...(o.socketUser ? [] : ["--skip-grant-tables"]),
    "--performance-schema=OFF",
    `--innodb-buffer-pool-size=${o.bufferPool ?? "256M"}`,
    ...(process.getuid?.() === 0 ? ["--user=root"] : []),
  ];
  const child = spawn("/usr/sbin/mariadbd", args, { stdio: "ignore" });
  const pid = child.pid;
  if (pid === undefined) {
    await sockDir?.remove();
    throw new StrongboxError("SCRATCH_START_FAILED", "the scratch mariadbd did not start");
  }
  let exited = false;
  child.once("exit", () => {
    exited = true;
  });
  const server: ScratchServer = {
    pid,
    socket,
    port,
    errorLog,
    account: { user: o.socketUser ?? "root" },
    connect: (opts = {}) =>
      connectNode(
        { name: "scratch", host: "127.0.0.1", port, socket },
        { user: o.socketUser ?? "root" },
        {
          multipleStatements: opts.multipleStatements,
          timeoutMs: 5000,
          socketAuth: o.socketUser !== undefined,
        },
      ),
    stop: async () => {
      if (!exited && pidAlive(pid)) await terminate(child, 60_000);
      await sockDir?.remove();
    },
  };
  const deadline = Date.now() + (o.timeoutMs ?? 180_000);
  for (;;) {
    if (exited) {
      await sockDir?.remove();
      throw new StrongboxError(
        "SCRATCH_START_FAILED",
        `the scratch mariadbd exited while starting: ${await logTail(errorLog)}`,
        {
          hint: `log: ${errorLog}`,
        },
      );
    }
    if (existsSync(socket)) {
      try {
        const c = await server.connect();
        await c.end();
        return server;
      } catch {
        // not ready yet
      }
    }
    if (Date.now() > deadline || o.signal?.aborted) {
      await server.stop();
      throw new StrongboxError(
        "SCRATCH_START_FAILED",
        `the scratch mariadbd did not become ready: ${await logTail(errorLog)}`,
      );
    }
    await sleep(200);
  }
}
