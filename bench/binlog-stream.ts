// node bench/binlog-stream.ts [--rate 200] [--seconds 120] [--nodes 3] [--keep]
//
// Continuous binlog archiving (binlog archive --follow) under a steady write load: --rate single-row
// transactions a second on the writer node, for --seconds. Measured:
//   - commit → durable: for every transaction, from its commit (the client's answer) to the moment
//     the index entry covering its GTID is in the repository (the index directory is watched every
//     50 ms, so the numbers are up to 50 ms late); p50, p99, max;
//   - objects written per hour (segment objects, rollups, index entries; and what is left after
//     compaction);
//   - the archiver's CPU (the strongbox process, its exited children and its live mariadb-binlog);
//   - the archiving node's mariadbd killed -9 half way: the rows committed but not yet durable at
//     that instant (what a loss of the whole cluster then would have cost), and the rows missing
//     after the archiver moved to another node (restore --to-gtid of the newest archived GTID,
//     counted on the restored data).
// Writes bench/results/binlog-stream-<date>.json and .md. A measurement, not a test: the machine's
// other load shows (2 cores shared with other engineers' clusters).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { type Connection, connectNode } from "../src/galera/connection.ts";
import { parseGtid } from "../src/mariadb/gtid.ts";
import { startScratchServer } from "../src/mariadb/scratch.ts";
import { readSecret, readState, sandboxNodes } from "../src/sandbox/cluster.ts";
import { descendants } from "../src/util/liveness.ts";
import { sleep } from "../src/util/proc.ts";

const execP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const BIN = join(ROOT, "bin", "strongbox");
const WORK = join(ROOT, "bench", "work", "binlog-stream");
const RESULTS = join(ROOT, "bench", "results");
const TICKS = 100; // clock ticks a second (/proc stat times)

const { values: args } = parseArgs({
  options: {
    rate: { type: "string", default: "200" },
    seconds: { type: "string", default: "120" },
    nodes: { type: "string", default: "3" },
    "buffer-pool": { type: "string", default: "128M" },
    keep: { type: "boolean", default: false },
  },
});

async function cli(argv: string[]): Promise<string> {
  const config = join(WORK, "strongbox.yaml");
  const full = argv[0] === "sandbox" ? argv : ["--config", config, ...argv];
  const { stdout } = await execP(BIN, full, { maxBuffer: 64 << 20, env: { ...process.env } });
  return stdout;
}

const quantile = (xs: number[], q: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))] ?? Number.NaN;
};

/** utime + stime (+ children's that were waited for) of a process, in seconds; 0 once it is gone. */
function cpuSeconds(pid: number, withChildren: boolean): number {
  try {
    const f = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
    const n = (i: number) => Number(f[i - 2]);
    return (n(14) + n(15) + (withChildren ? n(16) + n(17) : 0)) / TICKS;
  } catch {
    return 0;
  }
}

interface Commit {
  seq: number;
  at: number;
}

/** Watches the local repository: when each index entry and object first appeared. */
class RepoWatch {
  readonly entrySeen = new Map<string, number>();
  readonly objects = new Set<string>();
  covered: { first: number; last: number; at: number }[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly repo: string;
  constructor(repo: string) {
    this.repo = repo;
  }
  start(): void {
    this.timer = setInterval(() => this.poll(), 50);
  }
  stop(): void {
    clearInterval(this.timer);
    this.poll();
  }
  poll(): void {
    const now = Date.now();
    const dir = join(this.repo, "binlogs", "index");
    if (!existsSync(dir)) return;
    for (const name of readdirSync(dir)) {
      if (this.entrySeen.has(name)) continue;
      try {
        const e = JSON.parse(readFileSync(join(dir, name), "utf8")) as {
          gtidFirst: string | null;
          gtidLast: string | null;
          kind: string;
          key: string | null;
        };
        this.entrySeen.set(name, now);
        if (e.key) this.objects.add(e.key);
        if (e.kind === "file" && e.gtidFirst && e.gtidLast) {
          this.covered.push({ first: parseGtid(e.gtidFirst).seq, last: parseGtid(e.gtidLast).seq, at: now });
        }
      } catch {
        // being written (a temp name is renamed into place, so rarely): next poll
      }
    }
  }
  durableAt(seq: number): number | undefined {
    let best: number | undefined;
    for (const c of this.covered)
      if (c.first <= seq && seq <= c.last && (best === undefined || c.at < best)) best = c.at;
    return best;
  }
  remaining(): number {
    const dir = join(this.repo, "binlogs");
    let n = 0;
    const walk = (d: string) => {
      for (const x of readdirSync(d, { withFileTypes: true })) {
        if (x.isDirectory()) walk(join(d, x.name));
        else n++;
      }
    };
    walk(dir);
    return n;
  }
}

/** rate transactions a second over 4 connections, each INSERT answered with its GTID. */
async function writeLoad(
  conns: Connection[],
  rate: number,
  untilMs: number,
  commits: Commit[],
  stop: { now: boolean },
) {
  const per = rate / conns.length;
  await Promise.all(
    conns.map(async (c, k) => {
      const t0 = Date.now();
      for (let i = 0; Date.now() < untilMs && !stop.now; i++) {
        const due = t0 + (i * 1000) / per + (k * 1000) / rate;
        if (due > Date.now()) await sleep(due - Date.now());
        const [res] = (await c.query(
          "INSERT INTO bench.t (k, v) VALUES (?, REPEAT('x', 100)); SELECT @@last_gtid AS g",
          [k],
        )) as unknown as [[unknown, { g: string }[]]];
        commits.push({ seq: parseGtid(res[1][0]!.g).seq, at: Date.now() });
      }
    }),
  );
}

async function main(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  const started = Date.now();
  await cli(["sandbox", "up", "--dir", WORK, "--nodes", args.nodes, "--buffer-pool", args["buffer-pool"]]);
  let archiver: ChildProcess | undefined;
  const conns: Connection[] = [];
  try {
    const nodes = sandboxNodes(await readState(WORK));
    const admin = await readSecret(WORK, "admin");
    const writerNode = nodes[0]!;
    const connect = () =>
      connectNode(
        { name: writerNode.name, host: "127.0.0.1", port: writerNode.port, socket: writerNode.socket },
        admin,
        {
          multipleStatements: true,
        },
      );
    for (let i = 0; i < 4; i++) conns.push(await connect());
    await conns[0]!.query(
      "CREATE DATABASE bench; CREATE TABLE bench.t (id BIGINT AUTO_INCREMENT PRIMARY KEY, k INT, v VARCHAR(200))",
    );
    await cli(["init"]);
    console.error("full backup…");
    await cli(["backup", "--full", "--json"]);
    const watch = new RepoWatch(join(WORK, "repository"));
    watch.start();
    archiver = spawn(BIN, ["--config", join(WORK, "strongbox.yaml"), "binlog", "archive", "--follow"], {
      stdio: ["ignore", "ignore", "pipe"],
    });
    let archiverLog = "";
    archiver.stderr!.on("data", (c: Buffer) => (archiverLog += c.toString()));
    while (!archiverLog.includes("receiving binlog events")) await sleep(100);
    const seconds = Number(args.seconds);
    const rate = Number(args.rate);
    const commits: Commit[] = [];
    const t0 = Date.now();
    const cpu0 = cpuSeconds(archiver.pid!, true);
    console.error(`writing ${rate} tx/s for ${seconds} s; killing the archiving node's mariadbd half way…`);
    const stop = { now: false };
    const load = writeLoad(conns, rate, t0 + seconds * 1000, commits, stop);
    await sleep((seconds * 1000) / 2);
    const archivingNode = /(\S+): receiving binlog events/.exec(archiverLog)?.[1] ?? "";
    const victim = nodes.find((n) => n.name === archivingNode);
    let killedAt = 0;
    let atRisk = 0;
    if (victim && victim !== writerNode) {
      const pid = Number(readFileSync(victim.pidFile, "utf8").trim());
      killedAt = Date.now();
      process.kill(pid, "SIGKILL");
      watch.poll();
      atRisk = commits.filter((c) => c.at <= killedAt && !(watch.durableAt(c.seq)! <= killedAt)).length;
    }
    await load;
    const wall = (Date.now() - t0) / 1000;
    const lastSeq = Math.max(...commits.map((c) => c.seq));
    while (watch.durableAt(lastSeq) === undefined) await sleep(50);
    const live = descendants(archiver.pid!).reduce((n, p) => n + cpuSeconds(p, false), 0);
    const cpu = cpuSeconds(archiver.pid!, true) + live - cpu0;
    archiver.kill("SIGTERM");
    await new Promise((r) => archiver!.once("close", r));
    watch.stop();
    const delays = commits.map((c) => watch.durableAt(c.seq)! - c.at);
    const hours = wall / 3600;
    // RPO after the failover: restore to the newest archived GTID, count the rows.
    console.error("restoring to the newest archived transaction…");
    const target = join(WORK, "restored");
    await cli(["restore", "--to-gtid", `1-1-${lastSeq}`, "--target-dir", target, "--json"]);
    const server = await startScratchServer(target, join(WORK, "restored-check"));
    let restoredRows = 0;
    try {
      const c = await server.connect();
      const [[r]] = (await c.query("SELECT COUNT(*) AS n FROM bench.t")) as unknown as [[{ n: string }]];
      restoredRows = Number(r.n);
      await c.end();
    } finally {
      await server.stop();
    }
    const result = {
      at: new Date(started).toISOString(),
      machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30), shared: true },
      nodes: Number(args.nodes),
      rateAsked: rate,
      rateAchieved: commits.length / wall,
      seconds: wall,
      transactions: commits.length,
      delayMs: { p50: quantile(delays, 0.5), p99: quantile(delays, 0.99), max: Math.max(...delays) },
      objectsWrittenPerHour: Math.round((watch.entrySeen.size + watch.objects.size) / hours),
      objectsLeft: watch.remaining(),
      archiverCpu: { seconds: cpu, percentOfOneCore: (100 * cpu) / wall },
      kill: {
        node: archivingNode,
        rowsCommittedNotDurableAtKill: atRisk,
        rowsMissingAfterRestore: commits.length - restoredRows,
      },
    };
    const stamp = result.at.replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
    mkdirSync(RESULTS, { recursive: true });
    writeFileSync(join(RESULTS, `binlog-stream-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
    const md = [
      `# binlog archive --follow under ${result.rateAchieved.toFixed(0)} transactions/s (asked ${rate})`,
      "",
      `${result.at}, ${result.machine.cpus} CPUs shared with other engineers' clusters, ${result.nodes}-node sandbox, ${result.seconds.toFixed(0)} s, ${result.transactions} transactions.`,
      "",
      "| commit→durable p50 | p99 | max | objects written/h | objects left | archiver CPU | not durable at the kill | missing after restore |",
      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
      `| ${(result.delayMs.p50 / 1000).toFixed(2)} s | ${(result.delayMs.p99 / 1000).toFixed(2)} s | ${(result.delayMs.max / 1000).toFixed(2)} s | ${result.objectsWrittenPerHour} | ${result.objectsLeft} | ${result.archiverCpu.percentOfOneCore.toFixed(1)} % of a core | ${atRisk} rows | ${result.kill.rowsMissingAfterRestore} rows |`,
      "",
    ].join("\n");
    writeFileSync(join(RESULTS, `binlog-stream-${stamp}.md`), md);
    console.log(md);
  } finally {
    archiver?.kill("SIGKILL");
    for (const c of conns) await c.end().catch(() => {});
    await cli(["sandbox", "down", "--dir", WORK]).catch(() => {});
    if (!args.keep) rmSync(WORK, { recursive: true, force: true });
  }
}

await main();
