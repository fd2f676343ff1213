// Loading a logical backup into a running server through the mariadb client (credentials in an
// unnamed 0600 option file on fd 3, never argv).
import { spawn } from "node:child_process";
import { StrongboxError } from "../errors.ts";
import type { Credentials, NodeEndpoint, TlsOptions } from "../galera/connection.ts";
import { tlsClientOptions } from "../mariadb/backup-tools.ts";
import type { Manifest } from "../repository/manifest.ts";
import { closeOptionFd, OPTION_FILE, optionFileFd } from "../util/optionfile.ts";
import { TailBuffer } from "../util/proc.ts";
import { decodeBackup } from "./extract.ts";
import type { PlaintextSource } from "./read.ts";

export async function loadLogical(o: {
  source: PlaintextSource;
  manifest: Manifest;
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions | undefined;
  signal?: AbortSignal;
}): Promise<{ rawBytes: number; seconds: number }> {
  const t0 = performance.now();
  const fd = optionFileFd({
    client: {
      user: o.creds.user,
      password: o.creds.password,
      ...(o.node.socket ? { socket: o.node.socket } : { host: o.node.host, port: o.node.port }),
      ...tlsClientOptions(o.tls),
    },
  });
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn("mariadb", [`--defaults-file=${OPTION_FILE}`, "--binary-mode"], {
      stdio: ["pipe", "ignore", "pipe", fd],
    });
  } finally {
    closeOptionFd(fd);
  }
  const err = new TailBuffer();
  child.stderr!.on("data", (c: Buffer) => err.push(c));
  const done = new Promise<void>((resolve, reject) =>
    child.once("close", (code) =>
      code === 0
        ? resolve()
        : reject(
            new StrongboxError(
              "LOAD_FAILED",
              `mariadb exited with code ${code} while loading: ${err.lastLines()}`,
            ),
          ),
    ),
  );
  done.catch(() => {});
  let r: Awaited<ReturnType<typeof decodeBackup>>;
  try {
    r = await decodeBackup(o.source, o.manifest, {
      sink: "consumer",
      consumer: child.stdin!,
      signal: o.signal,
    });
  } catch (e) {
    // EPIPE here means the client died first: its own message says why.
    if (child.exitCode === null) child.kill("SIGTERM");
    await done;
    throw e;
  }
  await done;
  return { rawBytes: r.rawBytes, seconds: (performance.now() - t0) / 1000 };
}
