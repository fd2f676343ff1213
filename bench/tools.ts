// The command lines under test, all reading the same mariabackup stream from the same node:
// strongbox itself, the shell pipeline the spec compares it with, restic and borg.
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

/** A bash word: single-quoted. */
export function q(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface BenchEnv {
  root: string;
  /** bench/work/<size>: everything of this size's run lives here. */
  work: string;
  sandboxDir: string;
  config: string;
  strongbox: string;
  recipient: string;
  identityFile: string;
  /** 0600 option file with the backup account, for the pipelines that are not strongbox. */
  mbCnf: string;
  /** mariabackup --parallel, the same as the sandbox config's backup.parallel. */
  parallel: number;
  /** The sandbox config's zstd level, used by the shell pipeline too. */
  zstdLevel: number;
  /** The current repetition's outputs: each full backup goes to a new place (see `outputsFor`). */
  shellFile: string;
  resticRepo: string;
  borgRepo: string;
  secrets: string;
}

/**
 * Where repetition `rep` of the full backups writes, for every tool: a new file or repository each
 * time, the earlier ones kept — as strongbox keeps its earlier backups, and as any real backup job
 * keeps yesterday's copy while writing today's. Overwriting (or deleting) the previous output
 * just before would let that tool write into page-cache pages freed a moment ago, which on this
 * kind of VM (virtio-balloon free page reporting) costs a fraction of fresh ones: measured with
 * dd, 790 MB into a new file took 2.9 s of system time, into a just-deleted one's pages 0.6–1.1 s.
 */
export function outputsFor(
  work: string,
  rep: number,
): Pick<BenchEnv, "shellFile" | "resticRepo" | "borgRepo"> {
  return {
    shellFile: join(work, "shell", `full-${rep}.xbstream.zst.age`),
    resticRepo: join(work, `restic-${rep}`),
    borgRepo: join(work, `borg-${rep}`),
  };
}

export interface Command {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  probe?: boolean;
}

const BASH_STRICT = "set -euo pipefail";

function bash(script: string, env?: NodeJS.ProcessEnv): Command {
  return { argv: ["bash", "-c", `${BASH_STRICT}; ${script}`], env };
}

/** mariabackup streaming xbstream to stdout: the options strongbox passes (tools.ts), credentials from a file. */
export function mariabackupStream(e: BenchEnv, tag: string): string {
  const tmp = join(e.work, "tmp", tag);
  rmSync(tmp, { recursive: true, force: true });
  mkdirSync(tmp, { recursive: true, mode: 0o700 });
  return [
    "mariabackup",
    `--defaults-file=${q(e.mbCnf)}`,
    "--backup",
    "--stream=xbstream",
    "--galera-info",
    `--target-dir=${q(join(tmp, "target"))}`,
    `--extra-lsndir=${q(join(tmp, "lsn"))}`,
    `--parallel=${e.parallel}`,
    `2>${q(join(tmp, "mariabackup.log"))}`,
  ].join(" ");
}

export function resticEnv(e: BenchEnv): NodeJS.ProcessEnv {
  return {
    RESTIC_PASSWORD_FILE: join(e.secrets, "restic.password"),
    RESTIC_CACHE_DIR: join(e.work, "restic-cache"),
  };
}

export function borgEnv(e: BenchEnv): NodeJS.ProcessEnv {
  return {
    BORG_PASSPHRASE: readFileSync(join(e.secrets, "borg.passphrase"), "utf8").trim(),
    BORG_BASE_DIR: join(e.work, "borg-home"),
    BORG_DISPLAY_PASSPHRASE: "no",
  };
}

export const backups = {
  floor: (e: BenchEnv): Command => bash(`${mariabackupStream(e, "floor")} >/dev/null`),
  strongboxFull: (e: BenchEnv): Command => ({
    argv: [e.strongbox, "--config", e.config, "backup", "--full", "--json"],
    probe: true,
  }),
  strongboxIncremental: (e: BenchEnv): Command => ({
    argv: [e.strongbox, "--config", e.config, "backup", "--incremental", "--json"],
    probe: true,
  }),
  shell: (e: BenchEnv): Command =>
    bash(
      `${mariabackupStream(e, "shell")} | zstd -${e.zstdLevel} -T0 -q | age -r ${q(e.recipient)} > ${q(e.shellFile)}`,
    ),
  restic: (e: BenchEnv): Command =>
    bash(
      `${mariabackupStream(e, "restic")} | restic -r ${q(e.resticRepo)} backup --quiet --stdin --stdin-filename xbstream --host bench`,
      resticEnv(e),
    ),
  borg: (e: BenchEnv, archive: string): Command =>
    bash(
      `${mariabackupStream(e, "borg")} | borg create --compression zstd,3 ${q(`${e.borgRepo}::${archive}`)} -`,
      borgEnv(e),
    ),
};

/** Extract into `dir`, then prepare; stage times go to stderr as "@stages t0 t1 t2". */
function extractThenPrepare(e: BenchEnv, source: string, dir: string, tag: string): string {
  const log = q(join(e.work, "tmp", `${tag}-prepare.log`));
  return [
    "t0=$EPOCHREALTIME",
    `${source} | mbstream -x -C ${q(dir)}`,
    "t1=$EPOCHREALTIME",
    `mariabackup --prepare --target-dir=${q(dir)} 2>${log}`,
    "t2=$EPOCHREALTIME",
    'echo "@stages $t0 $t1 $t2" >&2',
  ].join("; ");
}

export const restores = {
  strongbox: (e: BenchEnv, id: string, dir: string): Command => ({
    argv: [e.strongbox, "--config", e.config, "restore", id, "--target-dir", dir, "--json"],
    probe: true,
  }),
  shell: (e: BenchEnv, dir: string): Command =>
    bash(
      extractThenPrepare(e, `age -d -i ${q(e.identityFile)} < ${q(e.shellFile)} | zstd -d -q`, dir, "shell"),
    ),
  restic: (e: BenchEnv, dir: string): Command =>
    bash(
      extractThenPrepare(e, `restic -r ${q(e.resticRepo)} dump --quiet latest /xbstream`, dir, "restic"),
      resticEnv(e),
    ),
  borg: (e: BenchEnv, archive: string, dir: string): Command =>
    bash(
      extractThenPrepare(e, `borg extract --stdout ${q(`${e.borgRepo}::${archive}`)}`, dir, "borg"),
      borgEnv(e),
    ),
};

/** Seconds of the extract and prepare stages from "@stages" in a restore's stderr. */
export function stagesOf(stderr: string): { extract: number; prepare: number } | undefined {
  const m = /@stages ([\d.]+) ([\d.]+) ([\d.]+)/.exec(stderr);
  if (!m) return undefined;
  const [t0, t1, t2] = [m[1], m[2], m[3]].map(Number) as [number, number, number];
  return { extract: t1 - t0, prepare: t2 - t1 };
}

function runQuiet(argv: string[], env?: NodeJS.ProcessEnv): void {
  execFileSync(argv[0]!, argv.slice(1), {
    env: { ...process.env, ...env },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

/** A fresh, empty restic repository (repository format 2: compressed). */
export function initRestic(e: BenchEnv): void {
  rmSync(e.resticRepo, { recursive: true, force: true });
  rmSync(join(e.work, "restic-cache"), { recursive: true, force: true });
  runQuiet(["restic", "-r", e.resticRepo, "init", "--quiet", "--repository-version", "2"], resticEnv(e));
}

/** A fresh, empty borg repository: repokey-blake2 (authenticated encryption, fast on any CPU). */
export function initBorg(e: BenchEnv): void {
  rmSync(e.borgRepo, { recursive: true, force: true });
  rmSync(join(e.work, "borg-home"), { recursive: true, force: true });
  runQuiet(["borg", "init", "--encryption=repokey-blake2", "--make-parent-dirs", e.borgRepo], borgEnv(e));
}

/** Apparent size of a file or directory tree, in bytes. */
export function duBytes(path: string): number {
  const out = execFileSync("du", ["-sb", path], { encoding: "utf8" });
  return Number(out.split("\t")[0]);
}

/** Writes the secrets the other tools use: 0600 files in a 0700 directory, never on a command line. */
export function writeToolSecrets(e: BenchEnv, user: string, password: string, node: NodeFiles): void {
  mkdirSync(e.secrets, { recursive: true, mode: 0o700 });
  const cnf = [
    `!include ${node.cnf}`,
    "[mariabackup]",
    `user=${user}`,
    `password="${password.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`,
    `socket=${node.socket}`,
    `datadir=${node.datadir}`,
    "",
  ].join("\n");
  writeFileSync(e.mbCnf, cnf, { mode: 0o600 });
  const random = () => randomBytes(24).toString("base64url");
  writeFileSync(join(e.secrets, "restic.password"), `${random()}\n`, { mode: 0o600 });
  writeFileSync(join(e.secrets, "borg.passphrase"), `${random()}\n`, { mode: 0o600 });
}

export interface NodeFiles {
  cnf: string;
  socket: string;
  datadir: string;
}
