// restore-table DB.T[,DB.T…] | --schema DB  (--to-time T | --to-gtid G | ID)  (--out FILE | --into-node N)
//
// Order matters: everything that can be refused is refused before the restore starts (names, the
// identity, the backup and the archive's reach, the node's state, names that would collide, space);
// then the chain is restored and rolled forward on a throw-away server (drill/table-extract.ts),
// and only then is the live cluster touched: the node is asked again, names are checked again (now
// with the triggers), each table loaded in one session and checked against the scratch server.
import { existsSync } from "node:fs";
import { mkdir } from "node:fs/promises";
import { join, resolve } from "node:path";
import { chooseBackupFor } from "../binlog/plan.ts";
import { checkRecoverable } from "../binlog/replay.ts";
import { clusterTls, credentialsFor, identitiesOf, recipientsOf, stateDirOf } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import {
  type ExtractResult,
  extractTables,
  plannedTargets,
  selectTables,
  type TableSelection,
} from "../drill/table-extract.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { resolveChain } from "../repository/chain.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { BackupVerifier } from "../repository/trusted.ts";
import { repositorySource } from "../restore/read.ts";
import {
  checkNodeBeforeRestore,
  type LiveNode,
  loadIntoNode,
  type RestoredTable,
  writeDumpFile,
} from "../restore/tables.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { table } from "../terminal/table.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { configuredNode } from "./nodes.ts";
import { openConfiguredRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

export type { RestoredTable };

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
  const selection = selectTables({ tables: o.tables, schema: o.schema, suffix });
  return { selection, toTime, toGtid: o.toGtid, out: o.out ? resolve(o.out) : undefined };
}

async function liveNode(loaded: LoadedConfig, name: string): Promise<LiveNode> {
  const node = configuredNode(loaded, name, "--into-node");
  const creds = await credentialsFor(loaded, "admin");
  if (!creds) {
    throw new StrongboxError("NO_ADMIN", "restore-table --into-node needs cluster.credentials.admin");
  }
  return { node, creds, tls: clusterTls(loaded) };
}

async function chooseChain(
  repo: Awaited<ReturnType<typeof openConfiguredRepository>>["repo"],
  o: RestoreTableOptions,
  p: Plan,
  verifier: BackupVerifier,
): Promise<Manifest[]> {
  const key = verifier.keys;
  if (o.id) return resolveChain(repo, o.id, verifier);
  // Only verified backups are candidates: an unverified one's GTID or time is never read.
  const verified = (await verifier.inventory()).backups;
  const base = chooseBackupFor(verified, { toTime: p.toTime, toGtid: p.toGtid });
  const chain = await resolveChain(repo, base.id, verifier);
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
        const verifier = await verifierFor(loaded, repo);
        const key = verifier.keys;
        const chain = await chooseChain(repo, o, plan, verifier);
        const live = o.intoNode ? await liveNode(loaded, o.intoNode) : undefined;
        if (live) await checkNodeBeforeRestore(live, plannedTargets(plan.selection), o.replace === true);
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
          const tables = await deliver(
            x,
            { live, plan, replace: o.replace === true, recipients },
            abort.signal,
            out,
          );
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

/** --into-node: load and check; --out: the encrypted file. Adds their steps to the timings. */
async function deliver(
  x: ExtractResult,
  o: {
    live: LiveNode | undefined;
    plan: Plan;
    replace: boolean;
    recipients: Parameters<typeof writeDumpFile>[0]["recipients"];
  },
  signal: AbortSignal,
  out: Output,
): Promise<RestoredTable[]> {
  if (!o.live) {
    const w = await writeDumpFile({ tables: x.tables, file: o.plan.out!, recipients: o.recipients, signal });
    x.timings.load = w.seconds;
    return w.tables;
  }
  const db = x.tables[0]?.target.db;
  const r = await loadIntoNode({
    live: o.live,
    tables: x.tables,
    schema: o.plan.selection.kind === "schema" && x.charset && db ? { name: db, ...x.charset } : undefined,
    replace: o.replace,
    signal,
    log: (m) => out.log(m),
  });
  Object.assign(x.timings, r.timings);
  return r.tables;
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
