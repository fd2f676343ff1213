// npm run bench [-- --size 1GB | --sizes 1GB,4GB] [-- --reps 3]
//
// Side by side, in one run, on a one-node sandbox loaded to each size: strongbox's full backup,
// incremental and restore next to the shell pipeline the spec names, restic and borg, all reading
// the same mariabackup stream. Medians of --reps repetitions, tools in a rotating order so drift in
// the machine's load does not favour one of them. Writes bench/results/<date>.json and .md.
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { cpus, totalmem } from "node:os";
import { dirname, join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { parse as parseYaml, stringify as stringifyYaml } from "yaml";
import { readSecret, SANDBOX_USERS, type SandboxState } from "../src/sandbox/cluster.ts";
import { nodeLayout } from "../src/sandbox/layout.ts";
import { parseSize } from "../src/util/size.ts";
import { agentCommands, emptyDir, startAgentBench } from "./agent.ts";
import { CommandFailed, measure, type Sample } from "./measure.ts";
import { quiesce } from "./quiesce.ts";
import {
  copyToS3,
  initRemoteRestic,
  REMOTE_OWN,
  REMOTE_TOOLS,
  type RemoteEnv,
  remoteBackup,
  startRemote,
} from "./remote.ts";
import {
  checks,
  checksTable,
  flatnessCheck,
  gapTable,
  LABELS,
  markdownTable,
  type Op,
  type Row,
  type Run,
  type SizeResult,
  scalingTable,
  summarize,
  type Tool,
} from "./report.ts";
import { takeSnapshot } from "./snapshot.ts";
import {
  type BenchEnv,
  backups,
  type Command,
  duBytes,
  initBorg,
  initRestic,
  outputsFor,
  restores,
  stagesOf,
  writeToolSecrets,
} from "./tools.ts";

const run = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const WORK = join(ROOT, "bench", "work");
const RESULTS = join(ROOT, "bench", "results");

const { values: args } = parseArgs({
  options: {
    size: { type: "string" },
    sizes: { type: "string", default: "1GB,4GB" },
    reps: { type: "string", default: "5" },
    "write-seconds": { type: "string", default: "30" },
    "write-rate": { type: "string", default: "100" },
    "buffer-pool": { type: "string", default: "2G" },
    profile: { type: "boolean", default: false },
    keep: { type: "boolean", default: false },
    "no-results": { type: "boolean", default: false },
    "no-agent": { type: "boolean", default: false },
    "only-agent": { type: "boolean", default: false },
    "no-remote": { type: "boolean", default: false },
    decompose: { type: "boolean", default: false },
    /** Benchmark another tree (e.g. a copy with a fix being tried) instead of this checkout. */
    code: { type: "string" },
    help: { type: "boolean", short: "h", default: false },
  },
});
if (args.help) {
  process.stdout.write(`npm run bench -- [options]   (docs/benchmarks.md)
  --size S             one size, e.g. 1GB
  --sizes A,B,...      sizes to compare (default 1GB,4GB)
  --reps N             repetitions per measurement; medians are reported, vs-shell targets on the
                       median of pairwise ratios (default 5)
  --write-seconds T    write load before each incremental (default 30)
  --write-rate N       statements per second of that load (default 100)
  --buffer-pool SIZE   innodb_buffer_pool_size of the sandbox node (default 2G)
  --code DIR           benchmark another tree (a copy with a fix being tried) instead of this checkout
  --profile            CPU profiles of every strongbox run into bench/work/profiles
  --keep               keep bench/work/<size> (repositories, backups) after the run
  --no-results         print the tables only; do not write bench/results/
  --no-agent           skip the rows through a node's agent over SSH
  --only-agent         only the rows through a node's agent (agent-full, agent-restore)
  --no-remote          skip the remote rows (SFTP and S3 on the test servers; smallest size only)
  --decompose          also where a full backup's time goes against the shell pipeline: the same
                       backup without the donor's row counts, and into a repository on tmpfs
`);
  process.exit(0);
}
const sizes = (args.size ?? args.sizes).split(",").map((s) => s.trim());
const reps = Number(args.reps);
const writeSeconds = Number(args["write-seconds"]);
const writeRate = Number(args["write-rate"]);
if (!Number.isInteger(reps) || reps < 1) throw new Error("--reps must be a whole number ≥ 1");
for (const s of sizes) parseSize(s);

const say = (m: string) => process.stderr.write(`bench: ${m}\n`);
say(`building a frozen copy of ${args.code ?? "the checkout"} in bench/work/strongbox`);
const snapshot = takeSnapshot(resolve(args.code ?? ROOT), join(WORK, "strongbox"), ROOT);
const strongbox = snapshot.strongbox;
// The launcher and everything it starts use this Node.
process.env.STRONGBOX_NODE = process.execPath;

let stopping = false;
for (const sig of ["SIGINT", "SIGTERM"] as const) {
  process.on(sig, () => {
    if (stopping) process.exit(130);
    stopping = true;
    say(`${sig}: stopping after the current command, then cleaning up`);
  });
}

async function cli(argv: string[]): Promise<string> {
  const { stdout } = await run(strongbox, argv, { maxBuffer: 64 << 20 });
  return stdout;
}

async function version(cmd: string, argv: string[]): Promise<string> {
  try {
    const { stdout, stderr } = await run(cmd, argv);
    return (stdout || stderr).trim().split("\n")[0] ?? "";
  } catch {
    return "missing";
  }
}

async function setupSize(
  size: string,
): Promise<BenchEnv & { load: { seconds: number }; node: ReturnType<typeof nodeLayout> }> {
  const work = join(WORK, size.replace(/[^\w.]/g, "_"));
  const sandboxDir = join(work, "sandbox");
  if (existsSync(join(sandboxDir, "sandbox.json"))) {
    await cli(["sandbox", "down", "--dir", sandboxDir, "--purge"]).catch(() => {});
  }
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true, mode: 0o700 });
  say(`${size}: starting a one-node sandbox (buffer pool ${args["buffer-pool"]})`);
  await cli(["sandbox", "up", "--dir", sandboxDir, "--nodes", "1", "--buffer-pool", args["buffer-pool"]]);
  say(`${size}: loading the dataset`);
  const load = JSON.parse(await cli(["--json", "sandbox", "load", "--dir", sandboxDir, "--size", size])) as {
    seconds: number;
  };
  const config = join(sandboxDir, "strongbox.yaml");
  await cli(["--config", config, "init"]);
  const state = JSON.parse(readFileSync(join(sandboxDir, "sandbox.json"), "utf8")) as SandboxState;
  const node = nodeLayout(sandboxDir, 1, state.basePort);
  const yaml = parseYaml(readFileSync(config, "utf8")) as {
    backup: { parallel: number; compressionLevel: number };
  };
  const recipient = /^age1\w+$/m.exec(readFileSync(join(sandboxDir, "keys", "recipients.txt"), "utf8"))?.[0];
  if (!recipient) throw new Error("no age recipient in the sandbox's keys/recipients.txt");
  const e: BenchEnv = {
    root: ROOT,
    work,
    sandboxDir,
    config,
    strongbox,
    recipient,
    identityFile: join(sandboxDir, "keys", "identity.txt"),
    secrets: join(work, "secrets"),
    mbCnf: join(work, "secrets", "mariabackup.cnf"),
    parallel: yaml.backup.parallel,
    zstdLevel: yaml.backup.compressionLevel,
    ...outputsFor(work, 0),
  };
  const creds = await readSecret(sandboxDir, "backup");
  writeToolSecrets(e, SANDBOX_USERS.backup, creds.password ?? "", node);
  mkdirSync(join(work, "shell"), { recursive: true, mode: 0o700 });
  say(`${size}: waiting for InnoDB to flush the load and go idle`);
  const q = await quiesce(sandboxDir, node);
  say(
    `${size}: idle after ${q.seconds.toFixed(0)} s (${q.dirtyPagesBefore} dirty pages flushed)${q.idle ? "" : "; still busy, measuring anyway"}`,
  );
  return { ...e, load, node };
}

async function teardown(e: BenchEnv): Promise<void> {
  say("stopping the sandbox");
  await cli(["sandbox", "down", "--dir", e.sandboxDir, "--purge"]).catch((err: Error) =>
    say(`sandbox down failed: ${err.message}`),
  );
  if (!args.keep) rmSync(e.work, { recursive: true, force: true });
}

/** Per-process numbers of a sample, split into the tool's own process and the others. */
function split(s: Sample, own: string[]): Pick<Run, "rssMb" | "ownCpuS" | "others" | "cpuByProcess"> {
  let rssMb = 0;
  let ownCpuS = 0;
  const others: Run["others"] = {};
  const cpuByProcess: Record<string, number> = {};
  for (const [comm, p] of Object.entries(s.procs)) {
    if (comm === "bash") continue;
    if (own.includes(comm)) {
      rssMb = Math.max(rssMb, p.peakRssKb / 1024);
      ownCpuS += p.cpuS;
    } else {
      others[comm] = { rssMb: p.peakRssKb / 1024, cpuS: p.cpuS };
    }
    if (!(s.node && own.includes(comm))) cpuByProcess[comm] = p.cpuS;
  }
  if (s.node) {
    rssMb = s.node.peakRssKb / 1024;
    ownCpuS = s.node.userS + s.node.sysS;
    cpuByProcess.strongbox = ownCpuS;
  }
  return { rssMb, ownCpuS, others, cpuByProcess };
}

const OWN: Record<Tool, string[]> = {
  ...REMOTE_OWN,
  floor: ["mariabackup"],
  shell: ["zstd", "age", "mbstream"],
  // Node names its main thread, and so the process, "MainThread".
  strongbox: ["node", "MainThread"],
  "strongbox-nocount": ["node", "MainThread"],
  "strongbox-tmpfs": ["node", "MainThread"],
  restic: ["restic"],
  borg: ["borg"],
};

function timeoutFor(bytes: number): number {
  return 120 + Math.ceil((bytes / 1e9) * 240);
}

async function timed(
  op: Op,
  tool: Tool,
  rep: number,
  cmd: Command,
  timeoutS: number,
): Promise<[Run, Sample]> {
  if (stopping) throw new Error("stopped");
  const nodeFlags =
    args.profile && cmd.probe ? ["--cpu-prof", `--cpu-prof-dir=${join(WORK, "profiles")}`] : [];
  // Write back what earlier commands left dirty (a restored data directory is gigabytes): else the
  // kernel throttles this command's writes for the previous one's, and the order decides the result.
  await run("sync", []);
  let s: Sample;
  try {
    s = await measure({ argv: cmd.argv, env: cmd.env, probe: cmd.probe, nodeFlags, timeoutS, cwd: ROOT });
  } catch (e) {
    if (e instanceof CommandFailed) say(`${op} ${tool} failed; stderr tail:\n${e.stderr.slice(-3000)}`);
    throw e;
  }
  const r: Run = {
    op,
    tool,
    rep,
    wallS: s.wallS,
    cpuS: s.cpuS,
    ...split(s, OWN[tool]),
    loadAvg: s.loadAvg,
    ...(s.node ? { eventLoopMaxMs: s.node.eventLoopMaxMs, eventLoopP99Ms: s.node.eventLoopP99Ms } : {}),
  };
  return [r, s];
}

interface ManifestOut {
  id: string;
  bytes: { raw: number; compressed: number; stored: number };
  durations: Record<string, number>;
}

/** Stored and raw bytes and stage times of a strongbox backup, from its `--json` manifest. */
function fromManifest(r: Run, s: Sample): ManifestOut {
  const m = JSON.parse(s.stdout) as ManifestOut;
  r.storedBytes = m.bytes.stored;
  r.rawBytes = m.bytes.raw;
  r.stages = m.durations;
  return m;
}

function rotate<T>(xs: readonly T[], by: number): T[] {
  const k = by % xs.length;
  return [...xs.slice(k), ...xs.slice(0, k)];
}

function checkPrepared(dir: string, who: string): void {
  const cp = readFileSync(join(dir, "xtrabackup_checkpoints"), "utf8");
  if (!/backup_type = (log-applied|full-prepared)/.test(cp)) {
    throw new Error(`${who}: restored directory is not prepared:\n${cp}`);
  }
}

async function benchSize(
  e: BenchEnv & { node: ReturnType<typeof nodeLayout> },
  size: string,
  load: { seconds: number },
  remote: boolean,
): Promise<SizeResult> {
  const runs: Run[] = [];
  const log = (r: Run) => {
    runs.push(r);
    const stored = r.storedBytes !== undefined ? `, ${(r.storedBytes / 1e6).toFixed(1)} MB stored` : "";
    say(
      `${size} ${r.op} #${r.rep + 1} ${r.tool}: ${r.wallS.toFixed(2)} s wall, ${r.cpuS.toFixed(2)} s CPU, ${r.rssMb.toFixed(0)} MB RSS${stored} (load ${r.loadAvg})`,
    );
  };
  const datadir = join(e.sandboxDir, "node1", "data");
  const datadirBytes = duBytes(datadir);
  const result = (rawStreamBytes: number): SizeResult => ({
    size,
    requestedBytes: parseSize(size),
    rawStreamBytes,
    datadirBytes,
    loadSeconds: load.seconds,
    writeLoad: { seconds: writeSeconds, rate: writeRate },
    runs,
  });
  let timeout = timeoutFor(datadirBytes);

  // Warm-up: the first read of the data directory pays for the page cache; nobody is timed on it.
  say(`${size}: warm-up stream (untimed)`);
  await timed("full", "floor", -1, backups.floor(e), timeout);

  if (args["only-agent"]) {
    // Only the rows through the node's agent: quicker to repeat while working on that path.
    await benchAgent(e, size, timeout, log, "");
    const agentFull = runs.find((r) => r.op === "agent-full" && r.rawBytes !== undefined);
    return result(agentFull?.rawBytes ?? 0);
  }

  let rawStreamBytes = 0;
  let lastFull = "";
  let lastBorgArchive = "";
  say(`${size}: full backups, ${reps} repetition(s)`);
  for (let rep = 0; rep < reps; rep++) {
    Object.assign(e, outputsFor(e.work, rep));
    for (const tool of rotate(["strongbox", "shell", "restic", "borg", "floor"] as const, rep)) {
      if (tool === "restic") initRestic(e);
      if (tool === "borg") initBorg(e);
      const archive = `full-${rep}`;
      const cmd =
        tool === "strongbox"
          ? backups.strongboxFull(e)
          : tool === "shell"
            ? backups.shell(e)
            : tool === "restic"
              ? backups.restic(e)
              : tool === "borg"
                ? backups.borg(e, archive)
                : backups.floor(e);
      const [r, s] = await timed("full", tool, rep, cmd, timeout);
      if (tool === "strongbox") {
        const m = fromManifest(r, s);
        lastFull = m.id;
        rawStreamBytes ||= m.bytes.raw;
        timeout = timeoutFor(Math.max(datadirBytes, m.bytes.raw));
      }
      if (tool === "shell") r.storedBytes = statSync(e.shellFile).size;
      if (tool === "restic") r.storedBytes = duBytes(e.resticRepo);
      if (tool === "borg") {
        r.storedBytes = duBytes(e.borgRepo);
        lastBorgArchive = archive;
      }
      log(r);
    }
  }

  if (args.decompose) await benchGap(e, size, timeout, log);
  if (remote) await benchRemote(e, size, lastFull, timeout, log);

  say(`${size}: incrementals after a ${writeSeconds} s write load at ${writeRate}/s, ${reps} repetition(s)`);
  for (let rep = 0; rep < reps; rep++) {
    await cli([
      "sandbox",
      "write",
      "--dir",
      e.sandboxDir,
      "--seconds",
      String(writeSeconds),
      "--rate",
      String(writeRate),
    ]);
    await quiesce(e.sandboxDir, e.node, 120);
    for (const tool of rotate(["strongbox", "restic", "borg"] as const, rep)) {
      const archive = `incr-${rep}`;
      const repo = tool === "restic" ? e.resticRepo : e.borgRepo;
      const before = tool === "strongbox" ? 0 : duBytes(repo);
      const cmd =
        tool === "strongbox"
          ? backups.strongboxIncremental(e)
          : tool === "restic"
            ? backups.restic(e)
            : backups.borg(e, archive);
      const [r, s] = await timed("incremental", tool, rep, cmd, timeout);
      if (tool === "strongbox") {
        fromManifest(r, s);
      } else {
        r.storedBytes = duBytes(repo) - before;
        if (tool === "borg") lastBorgArchive = archive;
      }
      log(r);
    }
  }

  say(`${size}: restores, ${reps} repetition(s)`);
  const target = (tool: string) => join(e.work, "restore", tool);
  for (let rep = 0; rep < reps; rep++) {
    for (const tool of rotate(["strongbox", "shell", "restic", "borg"] as const, rep)) {
      const dir = target(tool);
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const cmd =
        tool === "strongbox"
          ? restores.strongbox(e, lastFull, dir)
          : tool === "shell"
            ? restores.shell(e, dir)
            : tool === "restic"
              ? restores.restic(e, dir)
              : restores.borg(e, lastBorgArchive, dir);
      const [r, s] = await timed("restore", tool, rep, cmd, timeout);
      checkPrepared(dir, tool);
      if (tool === "strongbox") {
        const out = JSON.parse(s.stdout) as { timings: Record<string, number> };
        r.stages = Object.fromEntries(
          Object.entries(out.timings).map(([k, v]) => [k.startsWith("extract") ? "extract" : k, v]),
        );
      } else {
        const st = stagesOf(s.stderr);
        if (st) r.stages = st;
      }
      log(r);
      rmSync(dir, { recursive: true, force: true });
    }
  }
  if (!args["no-agent"]) await benchAgent(e, size, timeout, log, lastFull);
  return result(rawStreamBytes);
}

/**
 * --decompose: the full backup next to the shell pipeline again, and two variants that each leave
 * one thing out: the donor's exact row counts (backup.exactCountMaxRows: 0), and the disk (a
 * repository on tmpfs, where nothing is written to a device or synced). Their differences, taken
 * within each repetition, say what each costs; the manifests' stage times say the rest.
 */
async function benchGap(e: BenchEnv, size: string, timeout: number, log: (r: Run) => void): Promise<void> {
  const base = parseYaml(readFileSync(e.config, "utf8")) as {
    backup: Record<string, unknown>;
    repositories: { name: string; storage: Record<string, unknown> }[];
  };
  // The restore rows restore the last full backup's shell file: it stays the one to restore.
  const shellFile = e.shellFile;
  const tmpfs = mkdtempSync(join("/dev/shm", "strongbox-bench-"));
  // Beside the sandbox's config: its relative paths (keys, secrets) resolve the same.
  const variant = (name: string, change: (c: typeof base) => void) => {
    const c = structuredClone(base);
    change(c);
    const file = join(dirname(e.config), `bench-${name}.yaml`);
    writeFileSync(file, stringifyYaml(c), { mode: 0o600 });
    return file;
  };
  const configs = {
    strongbox: e.config,
    "strongbox-nocount": variant("nocount", (c) => {
      c.backup.exactCountMaxRows = 0;
    }),
    "strongbox-tmpfs": variant("tmpfs", (c) => {
      c.repositories.push({ name: "tmpfs", storage: { type: "local", path: join(tmpfs, "repository") } });
    }),
  };
  try {
    await cli(["--config", configs["strongbox-tmpfs"], "init", "--repo", "tmpfs"]);
    say(`${size}: where the time goes (--decompose), ${reps} repetition(s)`);
    for (let rep = 0; rep < reps; rep++) {
      e.shellFile = outputsFor(e.work, reps + rep).shellFile;
      for (const tool of rotate(
        ["shell", "strongbox", "strongbox-nocount", "strongbox-tmpfs"] as const,
        rep,
      )) {
        const cmd: Command =
          tool === "shell"
            ? backups.shell(e)
            : {
                argv: [
                  e.strongbox,
                  "--config",
                  configs[tool],
                  "backup",
                  "--full",
                  "--json",
                  ...(tool === "strongbox-tmpfs" ? ["--repo", "tmpfs"] : []),
                ],
                probe: true,
              };
        const [r, s] = await timed("gap", tool, rep, cmd, timeout);
        if (tool === "shell") r.storedBytes = statSync(e.shellFile).size;
        else fromManifest(r, s);
        log(r);
      }
    }
  } finally {
    e.shellFile = shellFile;
    rmSync(tmpfs, { recursive: true, force: true });
  }
}

/** Through the node's agent over SSH, next to the shell pipeline run by ssh (bench/agent.ts). */
async function benchAgent(
  e: BenchEnv,
  size: string,
  timeout: number,
  log: (r: Run) => void,
  localFull: string,
): Promise<void> {
  say(`${size}: through the node's agent over SSH, ${reps} repetition(s)`);
  const a = await startAgentBench(e);
  try {
    let agentFull = localFull;
    const file = (rep: number) => join(e.work, "shell", `ssh-full-${rep}.xbstream.zst.age`);
    for (let rep = 0; rep < reps; rep++) {
      for (const tool of rotate(["strongbox", "shell"] as const, rep)) {
        const cmd =
          tool === "strongbox" ? agentCommands.strongboxFull(e, a) : agentCommands.shellFull(e, a, file(rep));
        a.agentPeakKb();
        const [r, s] = await timed("agent-full", tool, rep, cmd, timeout);
        if (tool === "strongbox") {
          agentFull = fromManifest(r, s).id;
          r.nodeRssMb = a.agentPeakKb() / 1024;
        } else r.storedBytes = statSync(file(rep)).size;
        log(r);
      }
    }
    for (let rep = 0; rep < reps; rep++) {
      for (const tool of rotate(["strongbox", "shell"] as const, rep)) {
        const dir = join(a.restoreRoot, tool);
        emptyDir(dir);
        const cmd =
          tool === "strongbox"
            ? agentCommands.strongboxRestore(e, a, agentFull, dir)
            : agentCommands.shellRestore(e, a, file(reps - 1), dir);
        a.agentPeakKb();
        const [r, s] = await timed("agent-restore", tool, rep, cmd, timeout);
        checkPrepared(dir, `${tool} through ssh`);
        if (tool === "strongbox") {
          r.nodeRssMb = a.agentPeakKb() / 1024;
          const out = JSON.parse(s.stdout) as { timings: Record<string, number> };
          r.stages = Object.fromEntries(
            Object.entries(out.timings).map(([k, v]) => [k.startsWith("extract") ? "extract" : k, v]),
          );
        } else {
          const st = stagesOf(s.stderr);
          if (st) r.stages = st;
        }
        log(r);
        rmSync(dir, { recursive: true, force: true });
      }
    }
  } finally {
    await a.stop();
  }
}

/**
 * The remote rows: the same full backup straight to SFTP and S3, restic's own backends and the
 * shell over ssh on the same servers, then `copy` of the local full backup to S3. Right after the
 * local full backups, so the data directory is the same for every row.
 */
async function benchRemote(
  e: BenchEnv,
  size: string,
  lastFull: string,
  timeout: number,
  log: (r: Run) => void,
): Promise<void> {
  say(`${size}: starting the remote servers (OpenSSH sshd, Ceph RGW) and their repositories`);
  const r: RemoteEnv = await startRemote(e, reps);
  try {
    say(`${size}: full backups to remote storage, ${reps} repetition(s)`);
    for (let rep = 0; rep < reps; rep++) {
      for (const tool of rotate(REMOTE_TOOLS, rep)) {
        if (tool === "restic-sftp" || tool === "restic-s3") initRemoteRestic(e, r, tool, rep);
        const [run, s] = await timed("remote", tool, rep, remoteBackup(e, r, tool, rep), timeout);
        if (tool.startsWith("strongbox-")) fromManifest(run, s);
        log(run);
      }
    }
    say(`${size}: copy of the local full backup to S3, ${reps} repetition(s)`);
    for (let rep = 0; rep < reps; rep++) {
      const [run, s] = await timed("copy", "strongbox", rep, copyToS3(e, r, lastFull, rep), timeout);
      run.storedBytes = (JSON.parse(s.stdout) as { bytes: number }).bytes;
      log(run);
    }
  } finally {
    await r.stop();
  }
}

function stageNotes(sizes: { size: string; rows: Row[] }[]): string {
  const lines: string[] = [];
  for (const s of sizes) {
    for (const r of s.rows) {
      if (r.tool === "floor") continue;
      const parts: string[] = [];
      if (r.stages && (r.tool.startsWith("strongbox") || r.op === "restore"))
        parts.push(
          Object.entries(r.stages)
            .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
            .join(", "),
        );
      parts.push(
        `CPU ${Object.entries(r.cpuByProcess)
          .sort((a, b) => b[1] - a[1])
          .map(([k, v]) => `${k} ${v.toFixed(2)} s`)
          .join(", ")}`,
      );
      if (r.eventLoopMaxMs !== undefined) parts.push(`longest event-loop stall ${r.eventLoopMaxMs} ms`);
      lines.push(`- ${s.size} ${r.op}, ${LABELS[r.op][r.tool] ?? r.tool}: ${parts.join("; ")}`);
    }
  }
  return lines.join("\n");
}

async function main(): Promise<void> {
  const startedAt = new Date();
  const versions = {
    node: process.version,
    mariabackup: await version("mariabackup", ["--version"]),
    zstd: await version("zstd", ["--version"]),
    age: await version("age", ["--version"]),
    restic: await version("restic", ["version"]),
    borg: await version("borg", ["--version"]),
  };
  const host = {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "",
    memoryGb: Math.round(totalmem() / 1e9),
    loadAvgAtStart: readFileSync("/proc/loadavg", "utf8").trim(),
  };
  const results: SizeResult[] = [];
  for (const size of sizes) {
    if (stopping) break;
    const e = await setupSize(size);
    try {
      // Remote rows at the first size only: the S3 server keeps its objects in memory.
      results.push(await benchSize(e, size, e.load, !args["no-remote"] && size === sizes[0]));
    } finally {
      await teardown(e);
    }
  }
  if (stopping) process.exit(130);
  const summarized = results.map((r) => ({ ...r, rows: summarize(r.runs) }));
  const allChecks = summarized.flatMap((s) => checks(s.size, s.rows, s.runs));
  const flat = flatnessCheck(summarized);
  if (flat) allChecks.push(flat);
  const finishedAt = new Date();
  const nativeSealing = snapshot.nativeSealer && process.env.STRONGBOX_SEALER !== "node";
  const nativeOpening = snapshot.nativeOpener && process.env.STRONGBOX_SEALER !== "node";
  const minutes = (finishedAt.getTime() - startedAt.getTime()) / 60000;
  const md = [
    `# Benchmark ${startedAt.toISOString()}`,
    "",
    `${host.cpus} × ${host.cpuModel}, ${host.memoryGb} GB RAM; load average at start ${host.loadAvgAtStart}.`,
    `Medians of ${reps} repetition(s) (peak RSS: the largest); one-node sandbox; ${minutes.toFixed(0)} minutes in all.`,
    `Incrementals after \`sandbox write --seconds ${writeSeconds} --rate ${writeRate}\`.`,
    `Code: commit ${snapshot.commit}${snapshot.modified.length ? ` with uncommitted changes to ${snapshot.modified.join(", ")}` : ""}${args.code ? ` (from ${args.code})` : ""}, built to dist/; parts sealed by ${nativeSealing ? "the native sealer (native/seal.c)" : `Node (${snapshot.nativeSealer ? "STRONGBOX_SEALER=node" : "the native sealer was not built"})`}, restores decrypted by ${nativeOpening ? "the native opener (native/open.c)" : "Node"}.`,
    `Versions: ${Object.entries(versions)
      .map(([k, v]) => `${k} ${v.replace(/^.*?(\d+\.\d+\.\d+).*$/, "$1")}`)
      .join(", ")}.`,
    "",
    ...summarized.flatMap((s) => [
      `## ${s.size} (mariabackup stream ${(s.rawStreamBytes / 1e9).toFixed(2)} GB, data directory ${(s.datadirBytes / 1e9).toFixed(2)} GB)`,
      "",
      markdownTable(s.rows),
      "",
    ]),
    "## Targets",
    "",
    checksTable(allChecks),
    "",
    "## Scaling",
    "",
    scalingTable(summarized),
    "",
    ...(args.decompose
      ? ["## Where the full backup's time goes (--decompose)", "", gapTable(summarized), ""]
      : []),
    "## Where the time goes (medians; CPU seconds by process)",
    "",
    stageNotes(summarized),
    "",
  ].join("\n");
  process.stdout.write(`\n${md}`);
  if (args["no-results"]) return;
  mkdirSync(RESULTS, { recursive: true });
  const stamp = startedAt
    .toISOString()
    .replace(/:/g, "-")
    .replace(/\.\d+Z$/, "Z");
  const json = {
    startedAt: startedAt.toISOString(),
    finishedAt: finishedAt.toISOString(),
    host,
    versions,
    options: {
      sizes,
      reps,
      writeSeconds,
      writeRate,
      bufferPool: args["buffer-pool"],
      code: args.code ?? ".",
    },
    code: {
      commit: snapshot.commit,
      modified: snapshot.modified,
      nativeSealer: nativeSealing,
      nativeOpener: nativeOpening,
    },
    targets: allChecks,
    sizes: summarized,
  };
  writeFileSync(join(RESULTS, `${stamp}.json`), `${JSON.stringify(json, null, 2)}\n`);
  writeFileSync(join(RESULTS, `${stamp}.md`), md);
  say(`wrote bench/results/${stamp}.json and .md`);
  const failed = allChecks.filter((c) => !c.pass).length;
  if (failed) say(`${failed} target(s) missed`);
}

await main();
// Profiles, when asked for, are what remains in bench/work.
if (args.profile) {
  const dir = join(WORK, "profiles");
  if (existsSync(dir)) say(`CPU profiles of the strongbox runs: ${dir} (${readdirSync(dir).length} files)`);
}
