// The receiving end of continuous archiving: `mariadb-binlog --read-from-remote-server --raw
// --stop-never` connected to one node (a binlog dump, as a replica does), writing the events it
// receives into a private spool directory, and a reader that takes the complete transactions out of
// it as they arrive.
//
// Plaintext on the backup host: the spool directory is on a tmpfs (systemd's RuntimeDirectory of
// strongbox-binlog.service, else /dev/shm; only without either the temp dir), mode 0700, named with our pid (a run killed with -9 leaves it; the next
// run removes it). Bytes taken out are punched out of the file at once (fallocate --punch-hole), so
// the spool holds only what has not been sealed yet: a few seconds of binlog. mariadb-binlog runs
// under `setpriv --pdeathsig KILL`: it dies with strongbox, even on kill -9.
import { type ChildProcess, spawn } from "node:child_process";
import { constants } from "node:fs";
import { access, mkdir, open, readdir, rm, stat } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode, Credentials, TlsOptions } from "../galera/connection.ts";
import { pidAlive } from "../util/liveness.ts";
import { OPTION_FD, OPTION_FILE, optionFileFd, privateTempDir } from "../util/optionfile.ts";
import { run, TailBuffer, terminate } from "../util/proc.ts";
import { completeTransactions, type Transaction } from "./cut.ts";

const SPOOL_PREFIX = "strongbox-binlog-";

/** A private spool directory on tmpfs when possible; leftovers of dead archivers are removed first. */
export async function spoolDirectory(parent?: string): Promise<{ path: string; remove(): Promise<void> }> {
  // systemd's RuntimeDirectory= (strongbox-binlog.service): a private tmpfs under /run.
  let base = parent ?? process.env.RUNTIME_DIRECTORY?.split(":")[0];
  if (!base) {
    base = await access("/dev/shm", constants.W_OK)
      .then(() => "/dev/shm")
      .catch(() => undefined);
  }
  base ??= (await import("node:os")).tmpdir();
  for (const name of await readdir(base).catch(() => [] as string[])) {
    const pid = new RegExp(`^${SPOOL_PREFIX}(\\d+)-`).exec(name)?.[1];
    if (pid && Number(pid) !== process.pid && !pidAlive(Number(pid))) {
      await rm(join(base, name), { recursive: true, force: true });
    }
  }
  return privateTempDir(`${SPOOL_PREFIX}${process.pid}-`, base);
}

export interface StreamSource {
  node: ClusterNode;
  creds: Credentials;
  tls?: TlsOptions | undefined;
  /** Start after this GTID (exclusive); without it, from the start of `file`. */
  afterGtid?: string | undefined;
  /** A binlog file of the node (with afterGtid the server finds the file itself). */
  file: string;
  dir: string;
  mariadbBinlog?: string | undefined;
}

export interface BinlogStream {
  child: ChildProcess;
  /** Resolves when the child has exited, with its stderr's last lines. */
  exited: Promise<{ code: number | null; stderr: string }>;
  stop(): Promise<void>;
}

let setprivPath: string | null | undefined;
async function setpriv(): Promise<string | null> {
  if (setprivPath !== undefined) return setprivPath;
  setprivPath = await run("setpriv", ["--pdeathsig", "KILL", "true"]).then(
    () => "setpriv",
    () => null,
  );
  return setprivPath;
}

/** Starts mariadb-binlog; credentials reach it only as an unnamed option file on fd 3. */
export async function startStream(s: StreamSource): Promise<BinlogStream> {
  await mkdir(s.dir, { recursive: true, mode: 0o700 });
  const client: Record<string, string | number | boolean | undefined> = {
    user: s.creds.user,
    password: s.creds.password,
    ...(s.node.socket
      ? { socket: s.node.socket }
      : { host: s.node.host, port: s.node.port, protocol: "TCP" }),
    ...(s.tls
      ? { "ssl-ca": s.tls.ca, "ssl-cert": s.tls.cert, "ssl-key": s.tls.key, "ssl-verify-server-cert": true }
      : {}),
  };
  const args = [
    `--defaults-file=${OPTION_FILE}`,
    "--read-from-remote-server",
    "--raw",
    "--stop-never",
    ...(s.afterGtid ? [`--start-position=${s.afterGtid}`] : []),
    `--result-file=${s.dir}/`,
    s.file,
  ];
  const cmd = s.mariadbBinlog ?? "mariadb-binlog";
  const wrapper = await setpriv();
  const fd = optionFileFd({ client });
  let child: ChildProcess;
  try {
    const stdio: ("ignore" | "pipe" | number)[] = ["ignore", "ignore", "pipe"];
    stdio[OPTION_FD] = fd;
    child = wrapper
      ? spawn(wrapper, ["--pdeathsig", "KILL", "--", cmd, ...args], { stdio })
      : spawn(cmd, args, { stdio });
  } finally {
    try {
      (await import("node:fs")).closeSync(fd);
    } catch {
      // already closed
    }
  }
  const err = new TailBuffer();
  child.stderr?.on("data", (c: Buffer) => err.push(c));
  const exited = new Promise<{ code: number | null; stderr: string }>((resolve) => {
    child.once("error", (e) => {
      err.push(Buffer.from(`${e.message}\n`));
      resolve({ code: -1, stderr: err.lastLines() });
    });
    child.once("close", (code) => resolve({ code, stderr: err.lastLines() }));
  });
  return { child, exited, stop: () => terminate(child, 2000) };
}

/** What the server's answer means when the stream ends: the GTID purged, or not there yet. */
export function streamFailure(stderr: string): "purged" | "missing" | "denied" | "other" {
  if (/Access denied|REPLICATION SLAVE privilege/i.test(stderr)) return "denied";
  if (/required binlog files have been purged|Could not find GTID state/i.test(stderr)) return "purged";
  if (/which is not in the master's binlog/i.test(stderr)) return "missing";
  return "other";
}

/** Complete transactions taken from the spool: a binlog file of their own (header + events). */
export interface Chunk {
  /** The node's binlog file they came from. */
  file: string;
  /** header events + the transactions: readable by mariadb-binlog like any binlog file. */
  bytes: Buffer;
  /** Length of the header events at the start of `bytes` (magic, format description, …). */
  headerLength: number;
  transactions: Transaction[];
}

interface SpoolFile {
  name: string;
  header: Buffer | null;
  /** Offset in the file of the first byte not taken yet. */
  consumed: number;
}

function binlogNumber(name: string): number {
  return Number(/\.(\d+)$/.exec(name)?.[1] ?? Number.NaN);
}

/**
 * Reads what mariadb-binlog wrote into `dir`, file after file (the server's rotation makes a new
 * one): take() returns the complete transactions not taken yet, and forgets (punches out) their
 * bytes. A file is finished when a newer one exists: its incomplete tail (the Rotate event) goes.
 */
export class SpoolReader {
  private files = new Map<string, SpoolFile>();
  private readonly dir: string;
  private readonly o: { mariadbBinlog?: string | undefined; maxChunk?: number };
  constructor(dir: string, o: { mariadbBinlog?: string | undefined; maxChunk?: number } = {}) {
    this.dir = dir;
    this.o = o;
  }

  /** Bytes received and not taken yet (a lower bound while a file is being written). */
  async pendingBytes(): Promise<number> {
    let n = 0;
    for (const name of await this.names()) {
      const size = (await stat(join(this.dir, name)).catch(() => ({ size: 0 }))).size;
      n += Math.max(0, size - (this.files.get(name)?.consumed ?? 0));
    }
    return n;
  }

  private async names(): Promise<string[]> {
    const all = await readdir(this.dir).catch(() => [] as string[]);
    return all
      .filter((n) => !Number.isNaN(binlogNumber(n)))
      .sort((a, b) => binlogNumber(a) - binlogNumber(b));
  }

  /** The next complete transactions (at most maxChunk bytes unless one transaction is larger), or null. */
  async take(after?: string): Promise<Chunk | null> {
    const names = await this.names();
    for (const [i, name] of names.entries()) {
      const finished = i < names.length - 1;
      // One chunk per file per round (the caller names the file it just took from).
      if (after !== undefined && binlogNumber(name) <= binlogNumber(after)) {
        if (finished) continue;
        return null;
      }
      const f = this.files.get(name) ?? { name, header: null, consumed: 0 };
      this.files.set(name, f);
      const chunk = await this.takeFrom(f);
      if (chunk) return chunk;
      if (!finished) return null;
      await rm(join(this.dir, name), { force: true });
      this.files.delete(name);
    }
    return null;
  }

  private async takeFrom(f: SpoolFile): Promise<Chunk | null> {
    const path = join(this.dir, f.name);
    const size = (await stat(path).catch(() => ({ size: 0 }))).size;
    if (size <= f.consumed) return null;
    let limit = this.o.maxChunk ?? 16 * 1024 * 1024;
    for (;;) {
      const end = Math.min(size, f.consumed + limit);
      const fh = await open(path, "r");
      let data: Buffer;
      try {
        data = Buffer.alloc(end - f.consumed);
        let off = 0;
        while (off < data.length) {
          const { bytesRead } = await fh.read(data, off, data.length - off, f.consumed + off);
          if (bytesRead === 0) break;
          off += bytesRead;
        }
        data = data.subarray(0, off);
      } finally {
        await fh.close();
      }
      const input = f.header ? Buffer.concat([f.header, data]) : data;
      const cut = await completeTransactions(input, { mariadbBinlog: this.o.mariadbBinlog });
      if (!f.header) {
        if (cut.firstGtidAt === null) return null;
        f.header = Buffer.from(data.subarray(0, cut.firstGtidAt));
        f.consumed = cut.firstGtidAt;
        return this.takeFrom(f);
      }
      const last = cut.transactions.at(-1);
      if (!last) {
        if (end < size) {
          limit *= 2; // one transaction larger than the limit: read further
          continue;
        }
        return null;
      }
      const h = f.header.length;
      const bytes = input.subarray(0, last.end);
      f.consumed += last.end - h;
      await punch(path, f.consumed);
      return { file: f.name, bytes, headerLength: h, transactions: cut.transactions };
    }
  }
}

/** Frees the file's first `length` bytes (rounded down to pages): taken bytes leave the spool. */
async function punch(path: string, length: number): Promise<void> {
  const len = Math.floor(length / 4096) * 4096;
  if (len === 0) return;
  await run("fallocate", ["--punch-hole", "--offset", "0", "--length", String(len), path]).catch((e) => {
    throw new StrongboxError(
      "BINLOG_SPOOL",
      `cannot free the spooled binlog ${path}: ${(e as Error).message}`,
      {
        stage: "binlog-spool",
        hint: "the spool directory needs a file system with hole punching (tmpfs, ext4, xfs)",
        cause: e,
      },
    );
  });
}
