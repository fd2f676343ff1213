// restore-table DB.T[,DB.T…] | --schema DB  (--to-time T | --to-gtid G | ID)  (--out FILE | --into-node N)
//
// Order matters: everything that can be refused is refused before the restore starts (names, the
// identity, the backup and the archive's reach, the node's state, names that would collide, space);
// then the chain is restored and rolled forward on a throw-away server (drill/table-extract.ts),
// and only then is the live cluster touched: the node is asked again, names are checked again (now
// with the triggers), each table loaded in one session and checked against the scratch server.

import { createWriteStream, existsSync } from "node:fs";
import { link, mkdir, unlink } from "node:fs/promises";
import { join, resolve } from "node:path";
import { pipeline } from "node:stream/promises";
import { chooseBackupFor } from "../binlog/plan.ts";
import { checkRecoverable } from "../binlog/replay.ts";
import {
  clusterNodes,
  clusterTls,
  credentialsFor,
  identitiesOf,
  recipientsOf,
  stateDirOf,
} from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { createEncryptStream } from "../crypto/age.ts";
import {
  type ExtractedTable,
  type ExtractResult,
  extractTables,
  type TableSelection,
} from "../drill/table-extract.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { type ClusterNode, type Connection, type Credentials, connectNode } from "../galera/connection.ts";
import { describeHealth, isEligible, probeNode } from "../galera/health.ts";
import { ident } from "../mariadb/sql.ts";
import { checkTargets, loadTable, sqlStream, tableSql } from "../mariadb/table-load.ts";
import {
  checksumTable,
  parseSchemaName,
  parseTableList,
  type TableRef,
  type TableSum,
  tableName,
} from "../mariadb/tables.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { resolveChain } from "../repository/chain.ts";
import type { Manifest } from "../repository/manifest.ts";
import { repositorySource } from "../restore/read.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { table } from "../terminal/table.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { openConfiguredRepository, trustedPublicKey } from "./repo.ts";

export interface RestoreTableOptions {
  /** "db.t1,db.t2" (or --schema). */
  tables?: string;
  schema?: string;
  id?: string;
  toTime?: string;
  toGtid?: string;
  out?: string;
  intoNode?: string;
  /** Suffix for the restored names; default `_restored_<time>` with --into-node, none with --out. */
  rename?: string;
  replace?: boolean;
  identity?: string;
  repo?: string;
}

export interface RestoredTable {
  source: string;
  target: string;
  engine: string;
  triggers: string[];
  scratch: TableSum;
  /** What the node holds after the load (--into-node). */
  loaded: TableSum | null;
  replaced: boolean;
  match: boolean | null;
}

export interface RestoreTableResult {
  backup: string;
  chain: string[];
  target: string;
  lastGtid: string | null;
  transactions: number;
  into: { node: string } | { file: string };
  tables: RestoredTable[];
  /** Seconds: restore, rollForward, start, extract, load, verify, total. */
  timings: Record<string, number>;
}

interface Plan {
  selection: TableSelection;
  toTime: Date | undefined;
  toGtid: string | undefined;
  out: string | undefined;
}

function stamp(d: Date): string {
  return d
    .toISOString()
    .replace(/\.\d+Z$/, "")
    .replace(/-|:/g, "")
    .replace("T", "_");
}

/** The command line alone: refused before anything is read or started. */
export function planRestoreTable(o: RestoreTableOptions, now = new Date()): Plan {
  if ((o.tables === undefined) === (o.schema === undefined)) {
    throw new UsageError("name the tables (DB.TABLE[,DB.TABLE…]) or one --schema DB, not both");
  }
  const points = [o.id, o.toTime, o.toGtid].filter((x) => x !== undefined).length;
  if (points !== 1) throw new UsageError("give exactly one of a backup ID, --to-time T and --to-gtid G");
  if ((o.out === undefined) === (o.intoNode === undefined)) {
    throw new UsageError("give exactly one of --out FILE and --into-node NODE");
  }
  if (o.replace && !o.intoNode) throw new UsageError("--replace applies to --into-node only");
  let toTime: Date | undefined;
  if (o.toTime !== undefined) {
    toTime = new Date(o.toTime);
    if (Number.isNaN(toTime.getTime())) {
      throw new UsageError(`--to-time "${o.toTime}" is not a time (use e.g. 2026-11-26T15:01:00Z)`);
    }
  }
  const suffix = o.rename ?? (o.intoNode ? `_restored_${stamp(toTime ?? now)}` : "");
  if (!/^[A-Za-z0-9_$]*$/.test(suffix)) {
    throw new UsageError(`--rename "${suffix}" may hold only letters, digits, _ and $`);
  }
  if (o.out !== undefined && existsSync(o.out)) {
    throw new StrongboxError("RESTORE_OUT_EXISTS", `${o.out} already exists`);
  }
  const selection: TableSelection =
    o.schema !== undefined
      ? { kind: "schema", schema: parseSchemaName(o.schema), suffix }
      : { kind: "tables", tables: parseTableList(o.tables!), suffix };
  return { selection, toTime, toGtid: o.toGtid, out: o.out ? resolve(o.out) : undefined };
}

/** The names the load creates, as far as they are known before the restore. */
function plannedTargets(s: TableSelection): { tables: { target: TableRef }[]; schema?: string } {
  if (s.kind === "schema") return { tables: [], schema: `${s.schema}${s.suffix}` };
  return { tables: s.tables.map((t) => ({ target: { db: t.db, table: `${t.table}${s.suffix}` } })) };
}

interface Live {
  node: ClusterNode;
  creds: Credentials;
  tls: ReturnType<typeof clusterTls>;
}

async function liveNode(loaded: LoadedConfig, name: string): Promise<Live> {
  const node = clusterNodes(loaded).find((n) => n.name === name);
  if (!node) {
    throw new StrongboxError("NODE_UNKNOWN", `no node named "${name}" in the configuration`, {
      hint: `configured: ${clusterNodes(loaded)
        .map((n) => n.name)
        .join(", ")}`,
    });
  }
  const creds = await credentialsFor(loaded, "admin");
  if (!creds)
    throw new StrongboxError("NO_ADMIN", "restore-table --into-node needs cluster.credentials.admin");
  return { node, creds, tls: clusterTls(loaded) };
}

/** The node must be Synced in a Primary component: what is loaded there is replicated to all. */
async function syncedConnection(live: Live): Promise<{ conn: Connection; clusterSize: number }> {
  const h = await probeNode(live.node, live.creds, { tls: live.tls });
  if (!isEligible(h)) {
    throw new StrongboxError(
      "NODE_NOT_SYNCED",
      `node ${live.node.name} is not usable: ${describeHealth(h)}`,
      {
        hint: "load through a node that is Synced in the Primary component",
      },
    );
  }
  const conn = await connectNode(live.node, live.creds, { tls: live.tls });
  return { conn, clusterSize: h.clusterSize };
}

async function chooseChain(
  repo: Awaited<ReturnType<typeof openConfiguredRepository>>["repo"],
  o: RestoreTableOptions,
  p: Plan,
  key: string,
): Promise<Manifest[]> {
  if (o.id) return resolveChain(repo, o.id, key);
  const base = chooseBackupFor(await repo.list(), { toTime: p.toTime, toGtid: p.toGtid });
  const chain = await resolveChain(repo, base.id, key);
  // The archive must reach the target: known from the signed index, before anything is restored.
  await checkRecoverable({
    repo,
    trustedPublicKey: key,
    fromGtid: chain[chain.length - 1]!.gtid!,
    toTime: p.toTime,
    toGtid: p.toGtid,
  });
  return chain;
}

export async function restoreTableCommand(
  g: GlobalOptions,
  o: RestoreTableOptions,
  out: Output,
): Promise<CommandResult> {
  const plan = planRestoreTable(o);
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `restore-table aborted by ${sig}; scratch server stopped`);
  try {
    return await runMonitored(
      monitorSettingsOf(loaded),
      { command: "restore-table", repository: repo.name, node: o.intoNode, kind: plan.selection.kind },
      async (run) => {
        const t0 = performance.now();
        const identities = await identitiesOf(loaded, o.identity);
        const recipients = plan.out ? (await recipientsOf(loaded)).age : [];
        const key = await trustedPublicKey(loaded);
        const chain = await chooseChain(repo, o, plan, key);
        const live = o.intoNode ? await liveNode(loaded, o.intoNode) : undefined;
        if (live) {
          const { conn } = await syncedConnection(live);
          try {
            await checkTargets(conn, { ...plannedTargets(plan.selection), replace: o.replace === true });
          } finally {
            await conn.end().catch(() => {});
          }
        }
        const cfg = loaded.config.restoreTest;
        const scratchRoot = cfg.scratchDir
          ? loaded.resolvePath(cfg.scratchDir)
          : join(stateDirOf(loaded), "scratch");
        const at = plan.toTime
          ? `at ${plan.toTime.toISOString()}`
          : plan.toGtid
            ? `at GTID ${plan.toGtid}`
            : `in backup ${o.id}`;
        await mkdir(scratchRoot, { recursive: true, mode: 0o700 });
        const dumps = await privateTempDir("restore-table-dump-", scratchRoot);
        try {
          const x = await extractTables({
            source: repositorySource(repo, identities),
            chain,
            scratchRoot,
            prefix: "restore-table-",
            mariabackupPath: loaded.config.backup.mariabackupPath,
            bufferPool: cfg.bufferPool,
            pointInTime: o.id
              ? undefined
              : { toTime: plan.toTime, toGtid: plan.toGtid, trustedPublicKey: key, repo, identities },
            selection: plan.selection,
            outDir: dumps.path,
            at,
            signal: abort.signal,
            log: (m) => out.log(m),
          });
          const tables = live
            ? await loadIntoCluster(x, live, plan, o.replace === true, abort.signal, (m) => out.log(m))
            : await writeOut(x, plan.out!, recipients, abort.signal);
          x.timings.total = Math.round(performance.now() - t0) / 1000;
          const r: RestoreTableResult = {
            backup: chain[chain.length - 1]!.id,
            chain: chain.map((m) => m.id),
            target: at,
            lastGtid: x.replay?.lastGtid ?? chain[chain.length - 1]!.gtid ?? null,
            transactions: x.replay?.transactions ?? 0,
            into: live ? { node: live.node.name } : { file: plan.out! },
            tables,
            timings: x.timings,
          };
          run.details = { backupId: r.backup, tables: tables.map((t) => t.target), timings: r.timings };
          run.bytes = x.tables.reduce((s, t) => s + t.dumpBytes, 0);
          out.result(r, () => render(r));
          const bad = tables.find((t) => t.match === false);
          if (bad) {
            throw new StrongboxError(
              "RESTORE_TABLE_MISMATCH",
              `${bad.target} on ${o.intoNode} has ${bad.loaded?.rows} row(s), checksum ${bad.loaded?.checksum}; the restored table had ${bad.scratch.rows}, ${bad.scratch.checksum}`,
            );
          }
          return { exitCode: 0, result: r };
        } finally {
          await dumps.remove();
        }
      },
    );
  } finally {
    abort.dispose();
    await close();
  }
}

async function loadIntoCluster(
  x: ExtractResult,
  live: Live,
  plan: Plan,
  replace: boolean,
  signal: AbortSignal,
  log: (m: string) => void,
): Promise<RestoredTable[]> {
  // Asked again: the restore took a while, and the node may have left the cluster since.
  const { conn, clusterSize } = await syncedConnection(live);
  try {
    if (clusterSize > 1) {
      const other = x.tables.find((t) => t.engine.toLowerCase() !== "innodb");
      if (other) {
        throw new StrongboxError(
          "RESTORE_TABLE_ENGINE",
          `${tableName(other.source)} uses ${other.engine}, whose rows Galera does not replicate`,
          { hint: "restore it with --out FILE, convert it to InnoDB and load it yourself" },
        );
      }
    }
    const schema = plan.selection.kind === "schema" ? x.tables[0]!.target.db : undefined;
    const replaced = await checkTargets(conn, { tables: x.tables, schema, replace });
    let t = performance.now();
    if (schema !== undefined && x.charset) {
      await conn.query(
        `CREATE DATABASE ${replace ? "IF NOT EXISTS " : ""}${ident(schema)} CHARACTER SET ${x.charset.charset} COLLATE ${x.charset.collation}`,
      );
    }
    for (const tb of x.tables) {
      const isReplaced = replaced.has(tableName(tb.target));
      log(
        `${isReplaced ? "replacing rows of" : "loading"} ${tableName(tb.target)} through ${live.node.name}`,
      );
      await loadTable({ ...live, target: tb.target, files: tb.files, replace: isReplaced, signal });
    }
    x.timings.load = Math.round(performance.now() - t) / 1000;
    t = performance.now();
    const results: RestoredTable[] = [];
    for (const tb of x.tables) {
      const loaded = await checksumTable(conn, tb.target);
      results.push({
        ...summary(tb),
        loaded,
        replaced: replaced.has(tableName(tb.target)),
        match: loaded.rows === tb.scratch.rows && loaded.checksum === tb.scratch.checksum,
      });
    }
    x.timings.verify = Math.round(performance.now() - t) / 1000;
    return results;
  } finally {
    await conn.end().catch(() => {});
  }
}

function summary(
  tb: ExtractedTable,
): Pick<RestoredTable, "source" | "target" | "engine" | "triggers" | "scratch"> {
  return {
    source: tableName(tb.source),
    target: tableName(tb.target),
    engine: tb.engine,
    triggers: tb.triggers,
    scratch: tb.scratch,
  };
}

/** --out: one SQL file (USE per table) encrypted to the recipients; written aside, then linked. */
async function writeOut(
  x: ExtractResult,
  file: string,
  recipients: Parameters<typeof createEncryptStream>[0],
  signal: AbortSignal,
): Promise<RestoredTable[]> {
  const t = performance.now();
  const tmp = `${file}.tmp-${process.pid}`;
  const parts = [
    `-- strongbox restore-table: ${x.tables.map((tb) => tableName(tb.target)).join(", ")}\n`,
    ...x.tables.flatMap((tb) => tableSql(tb.target, tb.files, { replace: false, use: true })),
  ];
  try {
    await pipeline(
      sqlStream(parts),
      createEncryptStream(recipients),
      createWriteStream(tmp, { mode: 0o600, flags: "wx" }),
      { signal },
    );
    // link refuses an existing name: a file that appeared meanwhile is not overwritten.
    await link(tmp, file).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "EEXIST") throw new StrongboxError("RESTORE_OUT_EXISTS", `${file} already exists`);
      throw e;
    });
  } finally {
    await unlink(tmp).catch(() => {});
  }
  x.timings.load = Math.round(performance.now() - t) / 1000;
  return x.tables.map((tb) => ({ ...summary(tb), loaded: null, replaced: false, match: null }));
}

function render(r: RestoreTableResult): string {
  const where = "node" in r.into ? `into node ${r.into.node}` : `to ${r.into.file} (age-encrypted)`;
  const rows = [
    ["table", "restored as", "rows", "checksum", "loaded rows", "loaded checksum", ""],
    ...r.tables.map((t) => [
      t.source,
      t.target,
      String(t.scratch.rows),
      t.scratch.checksum,
      t.loaded ? String(t.loaded.rows) : "-",
      t.loaded ? t.loaded.checksum : "-",
      t.match === null ? "" : t.match ? "OK" : "MISMATCH",
    ]),
  ];
  const s = (k: string) => `${(r.timings[k] ?? 0).toFixed(1)} s`;
  return [
    `restore-table ${r.target} from ${r.backup}${r.chain.length > 1 ? ` (chain of ${r.chain.length})` : ""}, ${r.transactions} transaction(s) rolled forward, ${where}`,
    table(rows)
      .split("\n")
      .map((l) => `  ${l}`)
      .join("\n"),
    `  steps: restore ${s("restore")}, roll-forward ${s("rollForward")}, start ${s("start")}, extract ${s("extract")}, ${"node" in r.into ? "load" : "write"} ${s("load")}${r.timings.verify !== undefined ? `, verify ${s("verify")}` : ""}; total ${s("total")}`,
  ].join("\n");
}
