// restore-test: restore into scratch space, start a throw-away server, check it, tear it all down.
import { mkdir, rm } from "node:fs/promises";
import { userInfo } from "node:os";
import { join } from "node:path";
import { restoreToPoint } from "../binlog/replay.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { type ScratchServer, startScratchServer } from "../mariadb/scratch.ts";
import type { Manifest, ManifestDetails } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import {
  type Assertion,
  type CheckProblem,
  checkTables,
  inventoryProblems,
  type RowTolerance,
  runAssertions,
} from "../restore/checks.ts";
import { loadLogical } from "../restore/logical.ts";
import type { PlaintextSource } from "../restore/read.ts";
import { restorePhysical } from "../restore/restore.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { run } from "../util/proc.ts";

export interface RestoreTestOptions {
  /** Each backup's decrypted stream, asked for in chain order. */
  source: PlaintextSource;
  chain: Manifest[];
  /** The inventory recorded at backup time (from the decrypted manifest details). */
  details: Pick<ManifestDetails, "inventory">;
  scratchRoot: string;
  mariabackupPath: string;
  assertions: Assertion[];
  rowCountTolerance: RowTolerance;
  bufferPool: string;
  signal?: AbortSignal;
  log?: (m: string) => void;
  /** restore-test --to-time/--to-gtid: replay archived binlogs onto the restored backup first. */
  pointInTime?: {
    toTime?: Date | undefined;
    toGtid?: string | undefined;
    trustedPublicKey: string | readonly string[];
    repo: Repository;
    identities: AgeIdentity[];
  };
}

export interface RestoreTestResult {
  id: string;
  type: string;
  chain: string[];
  passed: boolean;
  problems: CheckProblem[];
  tablesChecked: number;
  /** Seconds from the start until a server answered on the restored data: the time to restore. */
  rtoSeconds: number | null;
  timings: Record<string, number>;
}

export async function restoreTest(o: RestoreTestOptions): Promise<RestoreTestResult> {
  const log = o.log ?? (() => {});
  const target = o.chain[o.chain.length - 1]!;
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const since = (t: number) => Math.round(performance.now() - t) / 1000;
  await mkdir(o.scratchRoot, { recursive: true, mode: 0o700 });
  const work = await privateTempDir("restore-test-", o.scratchRoot);
  const datadir = join(work.path, "data");
  let server: ScratchServer | undefined;
  const result: RestoreTestResult = {
    id: target.id,
    type: target.type,
    chain: o.chain.map((m) => m.id),
    passed: false,
    problems: [],
    tablesChecked: 0,
    rtoSeconds: null,
    timings,
  };
  try {
    try {
      let t = performance.now();
      if (target.type === "logical") {
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
          {
            label: "mariadb-install-db",
            signal: o.signal,
          },
        );
        // A dump restores into a fresh server, which needs its grant tables (the event scheduler
        // is disabled without them): the OS user logs in by unix_socket.
        server = await startScratchServer(datadir, work.path, {
          bufferPool: o.bufferPool,
          signal: o.signal,
          socketUser: osUser,
        });
        timings.start = since(t);
        t = performance.now();
        log(`loading logical backup ${target.id}`);
        await loadLogical({
          source: o.source,
          manifest: target,
          node: { name: "scratch", host: "127.0.0.1", port: server.port, socket: server.socket },
          creds: { user: osUser },
          signal: o.signal,
        });
        timings.load = since(t);
      } else {
        const r = await restorePhysical({
          source: o.source,
          chain: o.chain,
          targetDir: datadir,
          mariabackupPath: o.mariabackupPath,
          signal: o.signal,
          log,
        });
        Object.assign(timings, r.timings);
        delete timings.total;
        if (o.pointInTime) {
          t = performance.now();
          const p = o.pointInTime;
          const replayed = await restoreToPoint({
            repo: p.repo,
            identities: p.identities,
            trustedPublicKey: p.trustedPublicKey,
            targetDir: datadir,
            fromGtid: o.chain[o.chain.length - 1]!.gtid!,
            toTime: p.toTime,
            toGtid: p.toGtid,
            bufferPool: o.bufferPool,
            workDir: work.path,
            signal: o.signal,
            log,
          });
          timings.replay = since(t);
          log(`replayed ${replayed.transactions} transaction(s) up to ${replayed.lastGtid}`);
        }
        t = performance.now();
        log("starting a scratch server on the restored data");
        server = await startScratchServer(datadir, work.path, { bufferPool: o.bufferPool, signal: o.signal });
        timings.start = since(t);
      }
      result.rtoSeconds = since(t0);
    } catch (e) {
      if (o.signal?.aborted) throw e;
      result.problems.push({ check: "inventory", message: `restore failed: ${(e as Error).message}` });
      return result;
    }
    const t = performance.now();
    const conn = await server.connect({ multipleStatements: false });
    try {
      const ct = await checkTables(conn);
      result.tablesChecked = ct.checked;
      result.problems.push(...ct.problems);
      // After a replay the data is newer than the backup's inventory: only CHECK TABLE and the
      // operator's assertions apply.
      if (!o.pointInTime) {
        result.problems.push(...(await inventoryProblems(conn, o.details.inventory, o.rowCountTolerance)));
      }
      result.problems.push(...(await runAssertions(conn, o.assertions)));
    } finally {
      await conn.end().catch(() => {});
    }
    timings.checks = since(t);
    result.passed = result.problems.length === 0;
    return result;
  } finally {
    await server?.stop().catch(() => {});
    await work.remove().catch(() => {});
    await rm(`${datadir}.strongbox-incremental`, { recursive: true, force: true }).catch(() => {});
    timings.total = since(t0);
  }
}
