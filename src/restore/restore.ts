// Restore of a physical backup chain into a data directory: extract the full and each incremental,
// prepare them in order, and write grastate.dat so the directory can bootstrap a new cluster.
import { mkdir, readdir, rm, statfs } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { StrongboxError } from "../errors.ts";
import { removeGrastate, writeGrastate, writeUnfinishedGrastate } from "../mariadb/grastate.ts";
import type { Manifest } from "../repository/manifest.ts";
import { run } from "../util/proc.ts";
import { formatBytes } from "../util/size.ts";
import { decodeBackup } from "./extract.ts";
import type { PlaintextSource } from "./read.ts";

export interface RestoreOptions {
  /** Each backup's decrypted stream, asked for in chain order. */
  source: PlaintextSource;
  chain: Manifest[];
  targetDir: string;
  force?: boolean;
  prepare?: boolean;
  mariabackupPath?: string;
  /**
   * false: the directory is not finished (binlogs are applied next): grastate.dat keeps
   * `safe_to_bootstrap: 0` until the caller writes the final one.
   */
  bootable?: boolean;
  signal?: AbortSignal;
  log?: (message: string) => void;
}

export interface RestoreResult {
  targetDir: string;
  backups: string[];
  rawBytes: number;
  timings: Record<string, number>;
  grastate: { uuid: string; seqno: number } | null;
  /** false with --no-prepare: the data is as mariabackup streamed it, not startable yet. */
  prepared: boolean;
  /** Not prepared: where each incremental of the chain was extracted, in the order to apply them. */
  incrementalDirs: string[];
}

function notADirectory(dir: string, e: unknown): StrongboxError {
  return new StrongboxError("TARGET_NOT_DIRECTORY", `target directory ${dir} is not a directory`, {
    hint: "choose a path to an empty directory, or to one that does not exist yet",
    cause: e,
  });
}

async function isEmptyDir(dir: string): Promise<boolean | undefined> {
  try {
    return (await readdir(dir)).length === 0;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") return undefined;
    // The path is a regular file, or a file stands where one of its parent directories should be.
    if (code === "ENOTDIR") throw notADirectory(dir, e);
    throw e;
  }
}

async function nearestExisting(dir: string): Promise<string> {
  let d = resolve(dir);
  for (;;) {
    try {
      await statfs(d);
      return d;
    } catch {
      const up = dirname(d);
      if (up === d) return d;
      d = up;
    }
  }
}

/** Refuses a non-empty target (unless forced) and one without room for the whole chain. */
export async function prepareTarget(targetDir: string, needBytes: number, force: boolean): Promise<void> {
  const empty = await isEmptyDir(targetDir);
  if (empty === false) {
    if (!force) {
      throw new StrongboxError("TARGET_NOT_EMPTY", `target directory ${targetDir} is not empty`, {
        hint: "choose an empty directory, or pass --force to replace its contents",
      });
    }
    await emptyTarget(targetDir);
  }
  await checkFreeSpace(targetDir, needBytes);
  await mkdir(targetDir, { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    throw e.code === "ENOTDIR" || e.code === "EEXIST" ? notADirectory(targetDir, e) : e;
  });
}

/**
 * Refuses to start a restore into `dir` (or the nearest existing parent) when its filesystem has
 * less free space than `needBytes` and a 5% margin (incremental deltas are extracted beside the full).
 */
export async function checkFreeSpace(dir: string, needBytes: number, what = "the restore"): Promise<void> {
  const fs = await statfs(await nearestExisting(dir));
  const free = fs.bavail * fs.bsize;
  const need = Math.ceil(needBytes * 1.05);
  if (free < need) {
    throw new StrongboxError(
      "TARGET_NO_SPACE",
      `target ${dir} has ${formatBytes(free)} free; ${what} needs about ${formatBytes(need)}`,
      { hint: "free space or choose a target on a larger filesystem" },
    );
  }
}

export async function restorePhysical(o: RestoreOptions): Promise<RestoreResult> {
  const log = o.log ?? (() => {});
  const timings: Record<string, number> = {};
  const t0 = performance.now();
  const since = (t: number) => Math.round(performance.now() - t) / 1000;
  const target = resolve(o.targetDir);
  const need = o.chain.reduce((s, m) => s + m.bytes.raw, 0);
  await prepareTarget(target, need, o.force ?? false);
  const incRoot = `${target}.strongbox-incremental`;
  let rawBytes = 0;
  let state: RestoreResult["grastate"] = null;
  const prepared = o.prepare !== false;
  let ok = false;
  try {
    await rm(incRoot, { recursive: true, force: true });
    await writeUnfinishedGrastate(target);
    for (const [i, m] of o.chain.entries()) {
      const dir = i === 0 ? target : join(incRoot, m.id);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      log(`extracting ${m.type} ${m.id} (${formatBytes(m.bytes.stored)} stored, ${m.parts.length} part(s))`);
      const t = performance.now();
      const r = await decodeBackup(o.source, m, { sink: "extract", dir, signal: o.signal });
      rawBytes += r.rawBytes;
      timings[`extract ${m.id}`] = since(t);
    }
    if (prepared) {
      const mb = o.mariabackupPath ?? "mariabackup";
      let t = performance.now();
      log("preparing the full backup");
      await run(mb, ["--prepare", `--target-dir=${target}`], {
        signal: o.signal,
        label: "mariabackup --prepare",
      });
      timings.prepare = since(t);
      for (const m of o.chain.slice(1)) {
        t = performance.now();
        log(`applying incremental ${m.id}`);
        await run(mb, ["--prepare", `--target-dir=${target}`, `--incremental-dir=${join(incRoot, m.id)}`], {
          signal: o.signal,
          label: "mariabackup --prepare --incremental-dir",
        });
        timings[`apply ${m.id}`] = since(t);
      }
    }
    const last = o.chain[o.chain.length - 1]!;
    if (last.cluster.uuid && last.cluster.seqno !== null) {
      state = { uuid: last.cluster.uuid, seqno: last.cluster.seqno };
    }
    // Unprepared data is not startable: grastate.dat keeps safe_to_bootstrap: 0 (nextSteps says
    // what to write once it is prepared).
    if (o.bootable !== false && prepared) {
      if (state) await writeGrastate(target, state);
      else await removeGrastate(target);
    }
    ok = true;
  } finally {
    // Not prepared, the incrementals stay for the operator to apply (nextSteps lists them).
    if (prepared || !ok || o.chain.length === 1) await rm(incRoot, { recursive: true, force: true });
    // A half-restored directory looks usable and is not: the target was empty, so empty it again.
    if (!ok) await emptyTarget(target);
  }
  timings.total = since(t0);
  const incrementalDirs = prepared ? [] : o.chain.slice(1).map((m) => join(incRoot, m.id));
  return {
    targetDir: target,
    backups: o.chain.map((m) => m.id),
    rawBytes,
    timings,
    grastate: state,
    prepared,
    incrementalDirs,
  };
}

/** Empties a restore's target after a failure (it was empty before: prepareTarget). */
export async function emptyTarget(target: string): Promise<void> {
  for (const f of await readdir(target).catch(() => [])) {
    await rm(join(target, f), { recursive: true, force: true });
  }
}

export function nextSteps(r: RestoreResult): string[] {
  if (!r.prepared) {
    return [
      "not prepared (--no-prepare): grastate.dat says safe_to_bootstrap: 0 until you finish it by hand:",
      `  mariabackup --prepare --target-dir=${r.targetDir}`,
      ...r.incrementalDirs.map(
        (d) => `  mariabackup --prepare --target-dir=${r.targetDir} --incremental-dir=${d}`,
      ),
      ...(r.incrementalDirs.length > 0 ? [`  rm -r ${dirname(r.incrementalDirs[0]!)}`] : []),
      r.grastate
        ? `  then in grastate.dat: uuid ${r.grastate.uuid}, seqno ${r.grastate.seqno}, safe_to_bootstrap: 1`
        : "  then remove grastate.dat (the backup has no Galera position)",
    ];
  }
  return [
    "next steps to start a new cluster from it:",
    `  chown -R mysql:mysql ${r.targetDir}       # the server's user must own the data`,
    `  set datadir=${r.targetDir} in the node's my.cnf (and wsrep_cluster_address=gcomm://other-nodes)`,
    r.grastate
      ? `  galera_new_cluster                       # grastate.dat has ${r.grastate.uuid}:${r.grastate.seqno}, safe_to_bootstrap: 1`
      : "  galera_new_cluster",
    "  start the other nodes normally: they join by SST (wipe their old grastate.dat first)",
  ];
}
