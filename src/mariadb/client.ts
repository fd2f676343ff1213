// The mariadb command-line client as a supervised child that SQL is piped into: a logical backup
// loaded into a server, restored tables loaded into a live node. Credentials go through an
// unnamed 0600 option file on fd 3 (never argv, nothing left behind even after kill -9).
import { spawn } from "node:child_process";
import type { Writable } from "node:stream";
import { StrongboxError } from "../errors.ts";
import type { Credentials, NodeEndpoint, TlsOptions } from "../galera/connection.ts";
import { closeOptionFd, OPTION_FILE, optionFileFd } from "../util/optionfile.ts";
import { TailBuffer } from "../util/proc.ts";
import { clientOptions } from "./backup-tools.ts";

export interface SqlClient {
  /** Where the SQL goes; end it to let the client finish. */
  stdin: Writable;
  /** Resolves when the client exited 0; rejects with LOAD_FAILED and its stderr tail otherwise. */
  done: Promise<void>;
  /** Stops the client (the input failed): an open transaction is rolled back by the server. */
  kill(): void;
}

export async function startSqlClient(o: {
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions | undefined;
  /** The default schema of the session (tables of a dump without USE statements go there). */
  database?: string | undefined;
  mariadb?: string | undefined;
}): Promise<SqlClient> {
  const fd = optionFileFd({ client: { ...clientOptions(o.node, o.creds, o.tls), database: o.database } });
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(o.mariadb ?? "mariadb", [`--defaults-file=${OPTION_FILE}`, "--binary-mode"], {
      stdio: ["pipe", "ignore", "pipe", fd],
    });
  } finally {
    closeOptionFd(fd);
  }
  const err = new TailBuffer();
  child.stderr!.on("data", (c: Buffer) => err.push(c));
  child.stdin!.on("error", () => {});
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", (e) =>
      reject(new StrongboxError("CHILD_NOT_FOUND", `mariadb: ${e.message}`, { cause: e })),
    );
    child.once("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new StrongboxError(
              "LOAD_FAILED",
              `mariadb exited with code ${code} while loading into ${o.node.name}: ${err.lastLines() || "(no output)"}`,
            ),
          ),
    );
  });
  done.catch(() => {});
  return {
    stdin: child.stdin!,
    done,
    kill: () => {
      if (child.exitCode === null) child.kill("SIGTERM");
    },
  };
}
