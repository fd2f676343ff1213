// restore-test: restore into scratch space, start a throw-away server, check it, tear it all down.
import type { Manifest, ManifestDetails } from "../repository/manifest.ts";
import {
  type Assertion,
  type CheckProblem,
  checkTables,
  inventoryProblems,
  type RowTolerance,
  runAssertions,
} from "../restore/checks.ts";
import type { PlaintextSource } from "../restore/read.ts";
import { type PointInTime, restoreToScratch, type ScratchRestore } from "./scratch-restore.ts";

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
  pointInTime?: PointInTime;
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
  const target = o.chain[o.chain.length - 1]!;
  const t0 = performance.now();
  const since = (t: number) => Math.round(performance.now() - t) / 1000;
  const result: RestoreTestResult = {
    id: target.id,
    type: target.type,
    chain: o.chain.map((m) => m.id),
    passed: false,
    problems: [],
    tablesChecked: 0,
    rtoSeconds: null,
    timings: {},
  };
  let scratch: ScratchRestore;
  try {
    scratch = await restoreToScratch({ ...o, prefix: "restore-test-" });
  } catch (e) {
    if (o.signal?.aborted) throw e;
    result.problems.push({ check: "inventory", message: `restore failed: ${(e as Error).message}` });
    result.timings.total = since(t0);
    return result;
  }
  result.timings = scratch.timings;
  result.rtoSeconds = scratch.rtoSeconds;
  try {
    const t = performance.now();
    const conn = await scratch.server.connect({ multipleStatements: false });
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
    result.timings.checks = since(t);
    result.passed = result.problems.length === 0;
    return result;
  } finally {
    await scratch.close();
    result.timings.total = since(t0);
  }
}
