// Runs one command under /usr/bin/time and watches its process tree: wall time, CPU time of the whole
// tree (user + sys of every reaped descendant), and the peak RSS of each process by name, so that
// strongbox itself is told apart from the mariabackup, zstd and mbstream it starts.
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
/** What probe.mjs writes at the exit of the strongbox process. */
export interface NodeProbe {
  pid: number;
  argv: string[];
  peakRssKb: number;
  userS: number;
  sysS: number;
  eventLoopMaxMs: number;
  eventLoopP99Ms: number;
}

const PROBE = new URL("./probe.mjs", import.meta.url).href;
const CLOCK_TICKS = 100;
const SAMPLE_MS = 100;

export interface ProcessPeak {
  /** Largest VmHWM among the processes of this name. */
  peakRssKb: number;
  /** user + sys of these processes, as last seen (up to SAMPLE_MS before each one exited). */
  cpuS: number;
  count: number;
}

export interface Sample {
  wallS: number;
  /** user + sys of the command and every descendant it waited for (from /usr/bin/time). */
  cpuS: number;
  userS: number;
  sysS: number;
  /** Peak RSS per process name (comm), from /proc/PID/status VmHWM sampled every 100 ms. */
  procs: Record<string, ProcessPeak>;
  /** The strongbox Node process itself, exactly (written by probe.mjs at its exit). */
  node?: NodeProbe;
  /** 1-minute load average when the command started: others' work on the machine shows here. */
  loadAvg: number;
  stdout: string;
  stderr: string;
}

export interface RunSpec {
  argv: string[];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutS: number;
  /** Preload probe.mjs into Node processes of the command (the strongbox CLI). */
  probe?: boolean;
  /** Extra Node flags for the probed process, e.g. --cpu-prof. */
  nodeFlags?: string[];
}

export class CommandFailed extends Error {
  readonly stderr: string;
  constructor(message: string, stderr: string) {
    super(message);
    this.name = "CommandFailed";
    this.stderr = stderr;
  }
}

interface Seen {
  comm: string;
  hwmKb: number;
  cpuTicks: number;
}

function readStat(pid: string): { comm: string; ppid: number; ticks: number } | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, "latin1");
  } catch {
    return undefined;
  }
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  // Fields after the command name start at field 3 (state); utime and stime are fields 14 and 15.
  const f = text.slice(close + 2).split(" ");
  return { comm: text.slice(open + 1, close), ppid: Number(f[1]), ticks: Number(f[11]) + Number(f[12]) };
}

function readHwm(pid: number): number | undefined {
  try {
    const status = readFileSync(`/proc/${pid}/status`, "latin1");
    const m = /^VmHWM:\s+(\d+) kB/m.exec(status);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}

/** Adds every current descendant of `root` to `seen` and refreshes what is known of each. */
function sampleTree(root: number, seen: Map<number, Seen>): void {
  const parents = new Map<number, number>();
  const stats = new Map<number, { comm: string; ticks: number }>();
  for (const name of readdirSync("/proc")) {
    if (name.charCodeAt(0) > 57) continue;
    const s = readStat(name);
    if (!s) continue;
    const pid = Number(name);
    parents.set(pid, s.ppid);
    stats.set(pid, s);
  }
  const inTree = (pid: number): boolean => {
    for (let p: number | undefined = pid, hops = 0; p !== undefined && p > 1 && hops < 64; hops++) {
      if (p === root || seen.has(p)) return true;
      p = parents.get(p);
    }
    return false;
  };
  for (const [pid, s] of stats) {
    if (!inTree(pid)) continue;
    const hwm = readHwm(pid);
    const old = seen.get(pid);
    seen.set(pid, {
      comm: s.comm,
      hwmKb: Math.max(hwm ?? 0, old?.hwmKb ?? 0),
      cpuTicks: Math.max(s.ticks, old?.cpuTicks ?? 0),
    });
  }
}

function loadAverage(): number {
  try {
    return Number(readFileSync("/proc/loadavg", "latin1").split(" ")[0]);
  } catch {
    return Number.NaN;
  }
}

/** Runs `spec` to its end and measures it; throws CommandFailed on a non-zero exit or timeout. */
export async function measure(spec: RunSpec): Promise<Sample> {
  const probeDir = mkdtempSync(join(tmpdir(), "strongbox-bench-probe-"));
  const timeFile = join(probeDir, "time.txt");
  const env: NodeJS.ProcessEnv = { ...process.env, ...spec.env };
  delete env.NODE_OPTIONS;
  if (spec.probe) {
    env.NODE_OPTIONS = [`--import=${PROBE}`, ...(spec.nodeFlags ?? [])].join(" ");
    env.STRONGBOX_BENCH_PROBE = probeDir;
  }
  const loadAvg = loadAverage();
  const started = process.hrtime.bigint();
  // A process group of its own, so a timeout can stop the whole tree and nothing else.
  const child = spawn("/usr/bin/time", ["-f", "%e %U %S %M", "-o", timeFile, ...spec.argv], {
    cwd: spec.cwd,
    env,
    stdio: ["ignore", "pipe", "pipe"],
    detached: true,
  });
  const seen = new Map<number, Seen>();
  const root = child.pid ?? -1;
  const timer = setInterval(() => sampleTree(root, seen), SAMPLE_MS);
  let stdout = "";
  let stderr = "";
  child.stdout.setEncoding("utf8").on("data", (c: string) => {
    if (stdout.length < 16 << 20) stdout += c;
  });
  child.stderr.setEncoding("utf8").on("data", (c: string) => {
    stderr = (stderr + c).slice(-64 * 1024);
  });
  let timedOut = false;
  const killer = setTimeout(() => {
    timedOut = true;
    try {
      process.kill(-root, "SIGTERM");
      setTimeout(() => {
        try {
          process.kill(-root, "SIGKILL");
        } catch {}
      }, 5000).unref();
    } catch {}
  }, spec.timeoutS * 1000);
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once("error", reject);
    child.once("close", (c) => resolve(c));
  });
  const wallS = Number(process.hrtime.bigint() - started) / 1e9;
  clearInterval(timer);
  clearTimeout(killer);
  try {
    const timeLine = readFileSync(timeFile, "utf8").trim().split("\n").pop() ?? "";
    const [, user = Number.NaN, sys = Number.NaN] = timeLine.split(" ").map(Number);
    if (timedOut)
      throw new CommandFailed(`timed out after ${spec.timeoutS} s: ${spec.argv.join(" ")}`, stderr);
    if (code !== 0) throw new CommandFailed(`exit code ${code}: ${spec.argv.join(" ")}`, stderr);
    const procs: Record<string, ProcessPeak> = {};
    for (const [pid, s] of seen) {
      if (pid === root) continue;
      const p = procs[s.comm] ?? { peakRssKb: 0, cpuS: 0, count: 0 };
      procs[s.comm] = p;
      p.peakRssKb = Math.max(p.peakRssKb, s.hwmKb);
      p.cpuS += s.cpuTicks / CLOCK_TICKS;
      p.count++;
    }
    let node: NodeProbe | undefined;
    for (const f of readdirSync(probeDir)) {
      if (!f.startsWith("node-")) continue;
      const n = JSON.parse(readFileSync(join(probeDir, f), "utf8")) as NodeProbe;
      if (!node || n.peakRssKb > node.peakRssKb) node = n;
    }
    return { wallS, cpuS: user + sys, userS: user, sysS: sys, procs, node, loadAvg, stdout, stderr };
  } finally {
    rmSync(probeDir, { recursive: true, force: true });
  }
}
