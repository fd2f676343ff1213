// restore ID --target-dir D [--force] [--no-prepare] | restore ID --into-node NAME (logical)

import { checkTarget, chooseBackupFor } from "../binlog/plan.ts";
import { checkRecoverable, restoreToPoint } from "../binlog/replay.ts";
import {
  clusterNodes,
  clusterTls,
  credentialsFor,
  identitiesOf,
  repositoryConfig,
} from "../config/context.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import type { RunHandle } from "../monitor/record-run.ts";
import { resolveChain } from "../repository/chain.ts";
import type { Repository } from "../repository/repository.ts";
import { loadLogical } from "../restore/logical.ts";
import { restoreOntoNode } from "../restore/onto-node.ts";
import { repositorySource } from "../restore/read.ts";
import { emptyTarget, nextSteps, restorePhysical } from "../restore/restore.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { agentNode } from "./nodes.ts";
import { openConfiguredRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

export interface RestoreOptions {
  id?: string;
  toTime?: string;
  toGtid?: string;
  targetDir?: string;
  intoNode?: string;
  onto?: string;
  force?: boolean;
  prepare?: boolean;
  identity?: string;
  repo?: string;
}

/** Every restore is a run in the catalog: its kind, the raw bytes restored, the backups used. */
export async function restore(g: GlobalOptions, o: RestoreOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const meta = {
    command: "restore",
    repository: repositoryConfig(loaded, o.repo).name,
    kind: o.toTime || o.toGtid ? "point-in-time" : undefined,
    node: o.onto ?? o.intoNode,
  };
  return runMonitored(monitorSettingsOf(loaded), meta, (run) => restoreRecorded(g, o, out, run));
}

async function restoreRecorded(
  g: GlobalOptions,
  o: RestoreOptions,
  out: Output,
  run: RunHandle,
): Promise<CommandResult> {
  const point = pointTarget(o);
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `restore aborted by ${sig}`);
  try {
    if (point.toTime || point.toGtid) {
      if (o.onto)
        throw new UsageError(
          "--onto does not replay binlogs yet: restore --to-time/--to-gtid on the host that will run the server",
        );
      const done = await restoreToPointCommand(o, point, out, { loaded, repo, signal: abort.signal });
      const r = done.result as { restore: { rawBytes: number; backups: string[] } };
      run.bytes = r.restore.rawBytes;
      run.details = { chain: r.restore.backups };
      return done;
    }
    if (!o.id) throw new UsageError("give a backup ID, or --to-time / --to-gtid for point-in-time recovery");
    const chain = await resolveChain(repo, o.id, await verifierFor(loaded, repo));
    const target = chain[chain.length - 1]!;
    const identities = await identitiesOf(loaded, o.identity);
    const log = (m: string) => out.log(m);
    if (target.type === "logical") {
      if (!o.intoNode) {
        throw new UsageError(`backup ${o.id} is a logical dump: load it into a server with --into-node NAME`);
      }
      const node = clusterNodes(loaded).find((n) => n.name === o.intoNode);
      if (!node) throw new UsageError(`no node named "${o.intoNode}" in the configuration`);
      const admin = await credentialsFor(loaded, "admin");
      if (!admin) throw new UsageError("loading a logical backup needs cluster.credentials.admin");
      const r = await loadLogical({
        source: repositorySource(repo, identities),
        manifest: target,
        node,
        creds: admin,
        tls: clusterTls(loaded),
        signal: abort.signal,
      });
      run.kind = "logical";
      run.bytes = r.rawBytes;
      run.details = { backupId: target.id, seconds: r.seconds };
      return reply(
        out,
        { id: target.id, node: node.name, ...r },
        () => `logical backup ${target.id} loaded into ${node.name} in ${r.seconds.toFixed(1)} s`,
      );
    }
    if (!o.targetDir) throw new UsageError("restore of a physical backup needs --target-dir DIR");
    const settings = {
      source: repositorySource(repo, identities),
      chain,
      targetDir: o.targetDir,
      force: o.force,
      prepare: o.prepare,
      mariabackupPath: loaded.config.backup.mariabackupPath,
      signal: abort.signal,
      log,
    };
    const r = o.onto
      ? await restoreOntoNode({ ...settings, node: agentNode(loaded, o.onto, "--onto") })
      : await restorePhysical(settings);
    run.kind = target.type;
    run.bytes = r.rawBytes;
    run.details = { backupId: target.id, chain: r.backups, seconds: r.timings.total };
    return reply(out, r, () =>
      [
        `restored ${r.backups.join(" + ")} into ${o.onto ? `${o.onto}:` : ""}${r.targetDir} in ${r.timings.total?.toFixed(1)} s${o.prepare === false ? " (not prepared)" : " (prepared)"}`,
        ...nextSteps(r),
      ].join("\n"),
    );
  } finally {
    abort.dispose();
    await close();
  }
}

/** restore [ID] --to-time T | --to-gtid G: the newest backup before the target, then archived binlogs. */
async function restoreToPointCommand(
  o: {
    id?: string;
    toTime?: string;
    toGtid?: string;
    targetDir?: string;
    force?: boolean;
    identity?: string;
  },
  target: { toTime: Date | undefined; toGtid: string | undefined },
  out: Output,
  ctx: { loaded: LoadedConfig; repo: Repository; signal: AbortSignal },
): Promise<CommandResult> {
  const { loaded, repo, signal } = ctx;
  if (!o.targetDir) throw new UsageError("point-in-time recovery needs --target-dir DIR");
  const verifier = await verifierFor(loaded, repo);
  const key = verifier.keys;
  // Only verified backups are candidates: an unverified one's GTID or time is never read.
  const base = o.id
    ? await verifier.get(o.id)
    : chooseBackupFor((await verifier.inventory()).backups, target);
  const chain = await resolveChain(repo, base.id, verifier);
  const identities = await identitiesOf(loaded, o.identity);
  const log = (m: string) => out.log(m);
  const fromGtid = chain[chain.length - 1]!.gtid!;
  await checkRecoverable({ repo, trustedPublicKey: key, fromGtid, ...target });
  // Not bootable until the binlogs are applied: grastate.dat keeps safe_to_bootstrap: 0 meanwhile,
  // so a restore killed here leaves nothing galera_new_cluster would start.
  const restored = await restorePhysical({
    source: repositorySource(repo, identities),
    chain,
    targetDir: o.targetDir,
    force: o.force,
    mariabackupPath: loaded.config.backup.mariabackupPath,
    bootable: false,
    signal,
    log,
  });
  let pitr: Awaited<ReturnType<typeof restoreToPoint>>;
  try {
    pitr = await restoreToPoint({
      repo,
      identities,
      trustedPublicKey: key,
      targetDir: restored.targetDir,
      fromGtid,
      ...target,
      bufferPool: loaded.config.restoreTest.bufferPool,
      signal,
      log,
    });
  } catch (e) {
    // The backup's data without the binlogs asked for is not the data asked for: a failed
    // point-in-time restore empties its target like any failed restore (also on SIGTERM).
    await emptyTarget(restored.targetDir);
    throw e;
  }
  return reply(out, { restore: restored, pointInTime: pitr }, () =>
    [
      `restored ${restored.backups.join(" + ")} into ${restored.targetDir}, then replayed archived binlogs up to ${o.toGtid ?? o.toTime}`,
      `  last transaction applied: ${pitr.lastGtid ?? "-"} at ${pitr.lastEventAt ?? "-"} (${pitr.transactions} transaction(s) from ${pitr.files.length} file(s))`,
      "next steps: this directory starts a NEW Galera history (grastate.dat has seqno -1):",
      `  chown -R mysql:mysql ${restored.targetDir}; point datadir at it; galera_new_cluster; then join the other nodes by SST`,
    ].join("\n"),
  );
}

/** --to-time / --to-gtid, checked before anything is restored (a typo must not cost a restore). */
export function pointTarget(o: { toTime?: string | undefined; toGtid?: string | undefined }): {
  toTime: Date | undefined;
  toGtid: string | undefined;
} {
  const target = { toTime: o.toTime ? new Date(o.toTime) : undefined, toGtid: o.toGtid };
  if (!target.toTime && !target.toGtid) return target;
  if (target.toTime && Number.isNaN(target.toTime.getTime()))
    throw new UsageError(
      `--to-time "${o.toTime}" is not a valid time (use ISO 8601 with a zone, e.g. "2026-11-26T15:01:00Z")`,
    );
  try {
    checkTarget(target);
  } catch (e) {
    throw new UsageError(e instanceof StrongboxError ? e.oneLine() : String(e));
  }
  return target;
}
