// Restore of a physical backup chain into a data directory: extract the full and each incremental,
// prepare them in order, and write grastate.dat so the directory can bootstrap a new cluster.
import { mkdir, readdir, rm, statfs } from "node:fs/promises";
import { dirname, join, resolve } from "node:path";
import { StrongboxError } from "../errors.ts";
import { writeGrastate } from "../mariadb/grastate.ts";
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
  signal?: AbortSignal;
  log?: (message: string) => void;
}

export interface RestoreResult {
  targetDir: string;
  backups: string[];
  rawBytes: number;
  timings: Record<string, number>;
  grastate: { uuid: string; seqno: number } | null;
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
    for (const f of await readdir(targetDir)) await rm(join(targetDir, f), { recursive: true, force: true });
  }
  const fs = await statfs(await nearestExisting(targetDir));
  const free = fs.bavail * fs.bsize;
  // Incremental deltas are extracted beside the full before they are applied; keep a 5% margin.
  const need = Math.ceil(needBytes * 1.05);
  if (free < need) {
    throw new StrongboxError(
      "TARGET_NO_SPACE",
      `target ${targetDir} has ${formatBytes(free)} free; the restore needs about ${formatBytes(need)}`,
      { hint: "free space or choose a target on a larger filesystem" },
    );
  }
  await mkdir(targetDir, { recursive: true, mode: 0o700 }).catch((e: NodeJS.ErrnoException) => {
    throw e.code === "ENOTDIR" || e.code === "EEXIST" ? notADirectory(targetDir, e) : e;
  });
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
  let ok = false;
  try {
    for (const [i, m] of o.chain.entries()) {
      const dir = i === 0 ? target : join(incRoot, m.id);
      await mkdir(dir, { recursive: true, mode: 0o700 });
      log(`extracting ${m.type} ${m.id} (${formatBytes(m.bytes.stored)} stored, ${m.parts.length} part(s))`);
      const t = performance.now();
      const r = await decodeBackup(o.source, m, { sink: "extract", dir, signal: o.signal });
      rawBytes += r.rawBytes;
      timings[`extract ${m.id}`] = since(t);
    }
    if (o.prepare !== false) {
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
    ok = true;
  } finally {
    await rm(incRoot, { recursive: true, force: true });
    // A half-restored directory looks usable and is not: the target was empty, so empty it again.
    if (!ok) {
      for (const f of await readdir(target).catch(() => []))
        await rm(join(target, f), { recursive: true, force: true });
    }
  }
  const last = o.chain[o.chain.length - 1]!;
  let state: RestoreResult["grastate"] = null;
  if (last.cluster.uuid && last.cluster.seqno !== null) {
    state = { uuid: last.cluster.uuid, seqno: last.cluster.seqno };
    await writeGrastate(target, state);
  }
  timings.total = since(t0);
  return { targetDir: target, backups: o.chain.map((m) => m.id), rawBytes, timings, grastate: state };
}

export function nextSteps(r: RestoreResult): string[] {
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
