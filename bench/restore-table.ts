// node bench/restore-table.ts [--size 1GB] [--table-rows 40000] [--reps 3] [--nodes 1] [--keep]
//
// How long restore-table takes to bring back one ~10 MB table out of a backup of --size, split
// into its steps: restore (extract + prepare the chain), roll-forward (binlog replay), start (the
// scratch server), extract (find, rename, checksum, mariadb-dump), load (through the node), verify.
// A sandbox loaded to --size, a ~10 MB table beside it, a full backup, writes archived, the table
// dropped; then --reps restores of it under new names. Medians; writes bench/results/
// restore-table-<date>.json and .md. A measurement, not a test: the machine's other load shows.
import { execFile } from "node:child_process";
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import { connectNode } from "../src/galera/connection.ts";
import { readSecret, readState, sandboxNodes } from "../src/sandbox/cluster.ts";
import { sleep } from "../src/util/proc.ts";

const execP = promisify(execFile);
const ROOT = resolve(import.meta.dirname, "..");
const BIN = join(ROOT, "bin", "strongbox");
const WORK = join(ROOT, "bench", "work", "restore-table");
const RESULTS = join(ROOT, "bench", "results");

const { values: args } = parseArgs({
  options: {
    size: { type: "string", default: "1GB" },
    "table-rows": { type: "string", default: "40000" },
    reps: { type: "string", default: "3" },
    nodes: { type: "string", default: "1" },
    "buffer-pool": { type: "string", default: "512M" },
    keep: { type: "boolean", default: false },
  },
});

const STEPS = ["restore", "rollForward", "start", "extract", "load", "verify", "total"] as const;

async function cli(argv: string[]): Promise<string> {
  const config = join(WORK, "strongbox.yaml");
  const full = argv[0] === "sandbox" ? argv : ["--config", config, ...argv];
  const { stdout } = await execP(BIN, full, { maxBuffer: 64 << 20, env: { ...process.env } });
  return stdout;
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  rmSync(WORK, { recursive: true, force: true });
  mkdirSync(WORK, { recursive: true, mode: 0o700 });
  const started = Date.now();
  await cli(["sandbox", "up", "--dir", WORK, "--nodes", args.nodes, "--buffer-pool", args["buffer-pool"]]);
  try {
    console.error(`loading ${args.size}…`);
    const t = performance.now();
    await cli(["sandbox", "load", "--dir", WORK, "--size", args.size]);
    const loadSeconds = (performance.now() - t) / 1000;
    const node = sandboxNodes(await readState(WORK))[0]!;
    const admin = await readSecret(WORK, "admin");
    const conn = await connectNode(
      { name: node.name, host: "127.0.0.1", port: node.port, socket: node.socket },
      admin,
      {
        multipleStatements: true,
      },
    );
    try {
      // ~250 bytes a row: 40 000 rows are ~10 MB of InnoDB data.
      await conn.query(
        `CREATE DATABASE bench; CREATE TABLE bench.victim (id INT PRIMARY KEY, n INT NOT NULL, payload VARCHAR(255) NOT NULL, KEY (n));
         INSERT INTO bench.victim SELECT seq, seq % 977, REPEAT(SHA2(seq, 256), 3) FROM bench.seq_1_to_${Number(args["table-rows"])}`,
      );
      await conn.query("ANALYZE TABLE bench.victim");
      const [[size]] = (await conn.query(
        "SELECT DATA_LENGTH + INDEX_LENGTH AS b FROM information_schema.TABLES WHERE TABLE_SCHEMA = 'bench' AND TABLE_NAME = 'victim'",
      )) as unknown as [[{ b: string }]];
      await cli(["init"]);
      console.error("full backup…");
      const backup = JSON.parse(await cli(["backup", "--full", "--json"])) as { bytes: { raw: number } };
      // Writes after the backup, so roll-forward has work: 2 000 single-row updates.
      for (let i = 0; i < 2000; i++) {
        await conn.query("UPDATE bench.victim SET n = n + 1 WHERE id = ?", [
          1 + ((i * 7919) % Number(args["table-rows"])),
        ]);
      }
      await sleep(1600);
      const [[now]] = (await conn.query("SELECT UNIX_TIMESTAMP(NOW(6)) AS x")) as unknown as [
        [{ x: string }],
      ];
      await conn.query("DROP TABLE bench.victim");
      await sleep(1100);
      await cli(["binlog", "archive"]);
      const to = new Date(Number(now.x) * 1000).toISOString();
      const reps: Record<string, number>[] = [];
      for (let i = 0; i < Number(args.reps); i++) {
        console.error(`restore-table, repetition ${i + 1}…`);
        const r = JSON.parse(
          await cli([
            "restore-table",
            "bench.victim",
            "--to-time",
            to,
            "--into-node",
            node.name,
            "--rename",
            `_r${i}`,
            "--json",
          ]),
        ) as { timings: Record<string, number>; tables: { scratch: { rows: number }; match: boolean }[] };
        if (!r.tables[0]?.match) throw new Error(`repetition ${i + 1}: the loaded table does not match`);
        reps.push(r.timings);
        await conn.query(`DROP TABLE bench.victim_r${i}`);
      }
      const med = Object.fromEntries(STEPS.map((k) => [k, median(reps.map((r) => r[k] ?? 0))]));
      const result = {
        at: new Date(started).toISOString(),
        machine: { cpus: cpus().length, memoryGiB: Math.round(totalmem() / 2 ** 30) },
        nodes: Number(args.nodes),
        datasetSize: args.size,
        loadSeconds,
        backupRawBytes: backup.bytes.raw,
        tableBytes: Number(size.b),
        tableRows: Number(args["table-rows"]),
        reps,
        median: med,
      };
      const stamp = result.at.replace(/:/g, "-").replace(/\.\d+Z$/, "Z");
      mkdirSync(RESULTS, { recursive: true });
      writeFileSync(join(RESULTS, `restore-table-${stamp}.json`), `${JSON.stringify(result, null, 2)}\n`);
      const md = [
        `# restore-table: one ${(result.tableBytes / 2 ** 20).toFixed(1)} MiB table out of a ${(result.backupRawBytes / 2 ** 30).toFixed(2)} GiB backup`,
        "",
        `${result.at}, ${result.machine.cpus} CPUs (shared), ${result.nodes}-node sandbox, ${reps.length} repetitions, medians in seconds.`,
        "",
        `| ${STEPS.join(" | ")} |`,
        `| ${STEPS.map(() => "---:").join(" | ")} |`,
        `| ${STEPS.map((k) => med[k]!.toFixed(1)).join(" | ")} |`,
        "",
      ].join("\n");
      writeFileSync(join(RESULTS, `restore-table-${stamp}.md`), md);
      console.log(md);
    } finally {
      await conn.end().catch(() => {});
    }
  } finally {
    await cli(["sandbox", "down", "--dir", WORK]).catch(() => {});
    if (!args.keep) rmSync(WORK, { recursive: true, force: true });
  }
}

await main();
