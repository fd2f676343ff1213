// A backup chain restored into scratch space and running on a throw-away server: what restore-test
// checks and what restore-table extracts tables from. Physical chains are extracted and prepared,
// then (optionally) rolled forward from the binlog archive; a logical backup is loaded into a fresh
// server. Free space is checked before anything is written; on failure everything is removed.
import { mkdir, rm } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import { type RestoreToPointResult, restoreToPoint } from "../binlog/replay.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { type ScratchServer, startScratchServer } from "../mariadb/scratch.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { loadLogical } from "../restore/logical.ts";
import type { PlaintextSource } from "../restore/read.ts";
import { checkFreeSpace, restorePhysical } from "../restore/restore.ts";
import { type PrivateDir, privateTempDir } from "../util/optionfile.ts";
import { run } from "../util/proc.ts";

/** Roll-forward reads the binlog archive of the repository, on this host. */
export interface PointInTime {
  toTime?: Date | undefined;
  toGtid?: string | undefined;
  trustedPublicKey: string | readonly string[];
  repo: Repository;
  identities: AgeIdentity[];
}

export interface ScratchRestoreOptions {
  /** Each backup's decrypted stream, asked for in chain order. */
  source: PlaintextSource;
  chain: Manifest[];
  /** Where the scratch data directory goes (a private directory is made inside). */
  scratchRoot: string;
  /** Prefix of that private directory ("restore-test-", "restore-table-"). */
  prefix: string;
  mariabackupPath: string;
  bufferPool: string;
  /** Replay archived binlogs onto the restored physical backup up to this point first. */
  pointInTime?: PointInTime | undefined;
  signal?: AbortSignal | undefined;
  log?: (m: string) => void;
}

export interface ScratchRestore {
  server: ScratchServer;
  /** Seconds per step: "extract <id>", "prepare", "apply <id>", "replay", "load" (logical), "start". */
  timings: Record<string, number>;
  /** Seconds from the start until the server answered on the restored data. */
  rtoSeconds: number;
  replay: RestoreToPointResult | undefined;
  /** Stops the server and removes the scratch directory. */
  close(): Promise<void>;
}

const since = (t: number) => Math.round(performance.now() - t) / 1000;

/** Restores `chain` (and rolls it forward) into scratch space and starts a server on it. */
export async function restoreToScratch(o: ScratchRestoreOptions): Promise<ScratchRestore> {
  const t0 = performance.now();
  const target = o.chain[o.chain.length - 1]!;
  await mkdir(o.scratchRoot, { recursive: true, mode: 0o700 });
  // Checked before anything is written: a logical dump takes about its own size again as tables.
  await checkFreeSpace(
    o.scratchRoot,
    o.chain.reduce((s, m) => s + m.bytes.raw, 0),
    `restoring ${target.id} into scratch space`,
  );
  const work = await privateTempDir(o.prefix, o.scratchRoot);
  const datadir = join(work.path, "data");
  const timings: Record<string, number> = {};
  let server: ScratchServer | undefined;
  const close = async () => {
    await server?.stop().catch(() => {});
    await work.remove().catch(() => {});
    await rm(`${datadir}.strongbox-incremental`, { recursive: true, force: true }).catch(() => {});
  };
  try {
    let replay: RestoreToPointResult | undefined;
    if (target.type === "logical") {
      server = await loadIntoFreshServer(o, target, work, datadir, timings);
    } else {
      const r = await restorePhysical({
        source: o.source,
        chain: o.chain,
        targetDir: datadir,
        mariabackupPath: o.mariabackupPath,
        signal: o.signal,
        log: o.log,
      });
      Object.assign(timings, r.timings);
      delete timings.total;
      if (o.pointInTime) replay = await rollForward(o, datadir, work.path, timings);
      const t = performance.now();
      o.log?.("starting a scratch server on the restored data");
      server = await startScratchServer(datadir, work.path, { bufferPool: o.bufferPool, signal: o.signal });
      timings.start = since(t);
    }
    return { server, timings, rtoSeconds: since(t0), replay, close };
  } catch (e) {
    await close();
    throw e;
  }
}

async function rollForward(
  o: ScratchRestoreOptions,
  datadir: string,
  workDir: string,
  timings: Record<string, number>,
): Promise<RestoreToPointResult> {
  const t = performance.now();
  const p = o.pointInTime!;
  const replayed = await restoreToPoint({
    repo: p.repo,
    identities: p.identities,
    trustedPublicKey: p.trustedPublicKey,
    targetDir: datadir,
    fromGtid: o.chain[o.chain.length - 1]!.gtid!,
    toTime: p.toTime,
    toGtid: p.toGtid,
    bufferPool: o.bufferPool,
    workDir,
    signal: o.signal,
    log: o.log,
  });
  timings.replay = since(t);
  o.log?.(`replayed ${replayed.transactions} transaction(s) up to ${replayed.lastGtid}`);
  return replayed;
}

/**
 * A dump restores into a fresh server, which needs its grant tables (the event scheduler is
 * disabled without them): the OS user logs in by unix_socket.
 */
async function loadIntoFreshServer(
  o: ScratchRestoreOptions,
  target: Manifest,
  work: PrivateDir,
  datadir: string,
  timings: Record<string, number>,
): Promise<ScratchServer> {
  let t = performance.now();
  const osUser = userInfo().username;
  await run(
    "mariadb-install-db",
    [
      "--no-defaults",
      `--datadir=${datadir}`,
      "--skip-test-db",
      "--auth-root-authentication-method=socket",
      `--auth-root-socket-user=${osUser}`,
      ...(process.getuid?.() === 0 ? ["--user=root"] : []),
    ],
    { label: "mariadb-install-db", signal: o.signal },
  );
  const server = await startScratchServer(datadir, work.path, {
    bufferPool: o.bufferPool,
    signal: o.signal,
    socketUser: osUser,
  });
  try {
    timings.start = since(t);
    t = performance.now();
    o.log?.(`loading logical backup ${target.id}`);
    await loadLogical({
      source: o.source,
      manifest: target,
      node: { name: "scratch", host: "127.0.0.1", port: server.port, socket: server.socket },
      creds: server.account,
      signal: o.signal,
    });
    timings.load = since(t);
    return server;
  } catch (e) {
    await server.stop().catch(() => {});
    throw e;
  }
}
