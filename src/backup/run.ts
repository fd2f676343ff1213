// One backup, Galera-aware: choose a Synced donor, optionally desync it, stream the backup tool's
// output into encrypted parts, then commit the signed manifest last.
import type { ClusterNode, RecipientSet, SigningKey } from "../config/context.ts";
import type { StrongboxConfig } from "../config/schema.ts";
import { encryptBuffer } from "../crypto/age.ts";
import { StrongboxError } from "../errors.ts";
import {
  type Connection,
  type Credentials,
  connectNode,
  type TlsOptions,
  withConnection,
} from "../galera/connection.ts";
import { clearDesyncMarker, type DesyncGuard, desyncNode, writeDesyncMarker } from "../galera/desync.ts";
import {
  describeHealth,
  isEligible,
  type NodeHealth,
  probeNode,
  probeNodeKeepingConnection,
  rankDonors,
} from "../galera/health.ts";
import { streamToParts } from "../pipeline/stream.ts";
import {
  type BackupType,
  MANIFEST_FORMAT,
  type Manifest,
  type ManifestDetails,
  newBackupId,
  signManifest,
} from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { explainPrivilegeError, preflightBackupGrants } from "../security/grants.ts";
import { parseDuration } from "../util/duration.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { parseSize } from "../util/size.ts";
import { type Inventory, takeInventory } from "./inventory.ts";
import {
  readDumpPosition,
  readPhysicalPosition,
  startDump,
  startMariabackup,
  type ToolRun,
} from "./tools.ts";

export const VERSION = "0.1.0";

export interface BackupDeps {
  config: StrongboxConfig;
  repo: Repository;
  nodes: ClusterNode[];
  backupCreds: Credentials;
  adminCreds?: Credentials | undefined;
  tls?: TlsOptions | undefined;
  recipients: RecipientSet;
  signing: SigningKey;
  /**
   * The committed backup ids, when the caller scans the repository under the lock it holds
   * (undefined: scan here), and removes what dead runs left. Awaited before the first object of
   * this backup is created (so the housekeeping never sees it), and before planning an
   * incremental; a full backup's tool starts meanwhile.
   */
  committed?: Promise<readonly string[] | undefined> | readonly string[] | undefined;
  /** Local state (desync markers) of this backup host. */
  stateDir: string;
  log: (message: string) => void;
}

export interface BackupRequest {
  kind?: BackupType;
  node?: string;
  signal?: AbortSignal;
  onProgress?: (rawBytes: number) => void;
  /** Called with the donor's data size before streaming, so progress can show an ETA. */
  onEstimate?: (bytes: number) => void;
}

export interface Plan {
  kind: BackupType;
  parent: Manifest | null;
  candidates: NodeHealth[];
  reason: string;
}

/** Decides full or incremental, the parent, and the donors to try, from the nodes' health. */
export function planBackup(
  config: StrongboxConfig,
  health: NodeHealth[],
  history: Manifest[],
  req: { kind?: BackupType; node?: string },
  now = Date.now(),
): Plan {
  const prefs = { backupNode: config.cluster.backupNode, writerNode: config.cluster.writerNode };
  const pinned = (name: string, why: string): NodeHealth[] => {
    const h = health.find((x) => x.node.name === name);
    if (!h) throw new StrongboxError("NODE_UNKNOWN", `no node named "${name}" in the configuration`);
    if (!isEligible(h)) {
      throw new StrongboxError("NODE_NOT_SYNCED", `${why} node ${name} is not usable: ${describeHealth(h)}`, {
        stage: "choose-node",
      });
    }
    return [h];
  };
  if (req.kind === "logical") {
    return {
      kind: "logical",
      parent: null,
      candidates: req.node ? pinned(req.node, "requested") : rankDonors(health, prefs),
      reason: "requested",
    };
  }
  const physical = history.filter((m) => m.type === "full" || m.type === "incremental");
  const lastFull = [...physical].reverse().find((m) => m.type === "full");
  const parent = physical[physical.length - 1] ?? null;
  let kind: "full" | "incremental";
  let reason: string;
  if (req.kind === "full") [kind, reason] = ["full", "requested"];
  else if (req.kind === "incremental") {
    if (!parent) {
      throw new StrongboxError("NO_PARENT", "there is no full backup to base an incremental on", {
        hint: "take one with: strongbox backup --full",
      });
    }
    [kind, reason] = ["incremental", "requested"];
  } else if (!lastFull || now - Date.parse(lastFull.startedAt) >= parseDuration(config.backup.fullEvery)) {
    [kind, reason] = [
      "full",
      lastFull ? `last full is older than ${config.backup.fullEvery}` : "no full backup yet",
    ];
  } else [kind, reason] = ["incremental", `last full is newer than ${config.backup.fullEvery}`];

  if (kind === "incremental" && parent) {
    // InnoDB LSNs are per node: an incremental is only valid against a parent taken on the same node.
    const h = health.find((x) => x.node.name === parent.donor);
    if (req.node && req.node !== parent.donor) {
      throw new StrongboxError(
        "INCREMENTAL_NODE",
        `an incremental must be taken on ${parent.donor}, where its parent ${parent.id} was taken (LSNs are per node)`,
        { hint: "omit --node, or take --full on the node you want" },
      );
    }
    if (h && isEligible(h)) return { kind, parent, candidates: [h], reason };
    if (req.kind === "incremental") {
      throw new StrongboxError(
        "INCREMENTAL_NODE",
        `the chain's node ${parent.donor} is not usable (${h ? describeHealth(h) : "not configured"}); an incremental must come from it`,
        { hint: "take a --full backup from another node" },
      );
    }
    kind = "full";
    reason = `the chain's node ${parent.donor} is not Synced, so a new full`;
  }
  return {
    kind,
    parent: kind === "incremental" ? parent : null,
    candidates: req.node ? pinned(req.node, "requested") : rankDonors(health, prefs),
    reason,
  };
}

/**
 * The manifests `planBackup` needs: none for a requested full or logical backup, else the newest
 * back to the last full (the chain an incremental continues), read newest first. A repository of a
 * year of daily backups is not read and verified in full before every backup.
 */
export async function planningHistory(
  repo: Pick<Repository, "scan" | "get">,
  committed: BackupDeps["committed"],
  kind: BackupType | undefined,
): Promise<Manifest[]> {
  // Not even the scan is waited for: a full backup's start does not grow with the repository.
  if (kind === "full" || kind === "logical") return [];
  const ids = (await committed) ?? (await repo.scan()).committed;
  const newestFirst: Manifest[] = [];
  for (let i = ids.length - 1; i >= 0; i--) {
    const m = await repo.get(ids[i]!);
    newestFirst.push(m);
    if (m.type === "full") break;
  }
  return newestFirst.reverse();
}

function isNodeFailure(e: unknown): boolean {
  const code = (e as StrongboxError).code ?? "";
  return code === "BACKUP_TOOL_FAILED" || code.startsWith("NODE_") || code === "CHILD_FAILED";
}

export async function runBackup(deps: BackupDeps, req: BackupRequest = {}): Promise<Manifest> {
  const { config, nodes, backupCreds, tls } = deps;
  // The nodes are asked while the manifests are read. The first donor's probe connection then
  // checks the grants too: one connection less before mariabackup starts.
  const probing = Promise.all(nodes.map((n) => probeNodeKeepingConnection(n, backupCreds, { tls })));
  const endAll = async (conns: (Connection | undefined)[]) =>
    Promise.all(conns.map((c) => c?.end().catch(() => {})));
  let probes: Awaited<typeof probing>;
  let plan: Plan;
  try {
    let history: Manifest[];
    [probes, history] = await Promise.all([probing, planningHistory(deps.repo, deps.committed, req.kind)]);
    plan = planBackup(
      config,
      probes.map((p) => p.health),
      history,
      req,
    );
  } catch (e) {
    await endAll((await probing).map((p) => p.conn));
    throw e;
  }
  const attempts =
    config.cluster.retryOnNextNode && plan.kind !== "incremental"
      ? plan.candidates
      : plan.candidates.slice(0, 1);
  const firstConn = probes.find((p) => p.health.node.name === attempts[0]?.node.name)?.conn;
  await endAll(probes.filter((p) => p.conn !== firstConn).map((p) => p.conn));
  deps.log(
    `${plan.kind} backup (${plan.reason}); candidates: ${plan.candidates.map((c) => c.node.name).join(", ")}`,
  );
  let lastError: unknown;
  for (const [i, candidate] of attempts.entries()) {
    try {
      return await attempt(deps, req, plan, candidate, i === 0 ? firstConn : undefined);
    } catch (e) {
      lastError = e;
      if (req.signal?.aborted || !isNodeFailure(e) || i === attempts.length - 1) throw e;
      const after = await probeNode(candidate.node, backupCreds, { tls });
      if (isEligible(after)) throw e;
      deps.log(
        `backup from ${candidate.node.name} failed (${(e as Error).message}); ${describeHealth(after)}; retrying on ${attempts[i + 1]!.node.name}`,
      );
    }
  }
  throw lastError;
}

async function attempt(
  deps: BackupDeps,
  req: BackupRequest,
  plan: Plan,
  donor: NodeHealth,
  /** The donor's probe connection, if still open: used for the grants check, then ended. */
  probed?: Connection,
): Promise<Manifest> {
  const { config, repo } = deps;
  const node = deps.nodes.find((n) => n.name === donor.node.name)!;
  // Missing grants are found before anything is desynced or streamed, and named with the GRANT
  // that fixes them: some (TRIGGER, EVENT) would otherwise make backups silently incomplete.
  // A probe connection lost since gets a new one, whose failure to connect is then a node
  // failure like any other.
  const account = await withConnection(
    probed,
    () => connectNode(node, deps.backupCreds, { tls: deps.tls }),
    (conn) => preflightBackupGrants(conn, [plan.kind === "logical" ? "logical" : "physical"]),
  );
  const id = newBackupId();
  const startedAt = new Date();
  const durations: Record<string, number> = {};
  const t0 = performance.now();
  const mark = (stage: string, since: number) => {
    durations[stage] = Math.round(performance.now() - since) / 1000;
  };
  const work = await privateTempDir("strongbox-backup-");
  let desync: DesyncGuard | undefined;
  let committed = false;
  try {
    const wantDesync =
      config.cluster.desync === "on" || (config.cluster.desync === "auto" && donor.clusterSize > 1);
    if (wantDesync && plan.kind !== "logical") {
      if (!deps.adminCreds) {
        if (config.cluster.desync === "on") {
          throw new StrongboxError(
            "DESYNC_NO_ADMIN",
            "cluster.desync is on but no admin account is configured",
            {
              hint: "set cluster.credentials.admin (it needs SUPER), or cluster.desync: auto/off",
            },
          );
        }
        deps.log("no admin account configured: backing up without wsrep_desync");
      } else {
        const t = performance.now();
        await writeDesyncMarker(deps.stateDir, node.name);
        desync = await desyncNode(node, deps.adminCreds, { tls: deps.tls, log: deps.log });
        mark("desync", t);
      }
    }
    deps.log(
      `backup ${id}: ${plan.kind} from ${node.name}${plan.parent ? ` on top of ${plan.parent.id}` : ""}`,
    );
    const tStream = performance.now();
    const tool: ToolRun & { lsnDir?: string } =
      plan.kind === "logical"
        ? await startDump({
            path: config.backup.mariadbDumpPath,
            node,
            creds: deps.backupCreds,
            tls: deps.tls,
            workDir: work.path,
            account,
          })
        : await startMariabackup({
            path: config.backup.mariabackupPath,
            node,
            creds: deps.backupCreds,
            tls: deps.tls,
            workDir: work.path,
            parallel: config.backup.parallel,
            incrementalLsn: plan.parent?.lsn?.to,
            account,
          });
    if (req.onEstimate) {
      estimateSize(node, deps)
        .then((n) => n > 0 && req.onEstimate?.(n))
        .catch(() => {});
    }
    // The inventory runs beside the stream on its own connection.
    const inventory: Promise<Inventory> = (async () => {
      const conn = await connectNode(node, deps.backupCreds, { tls: deps.tls });
      try {
        return await takeInventory(conn, { exactCountMaxRows: config.backup.exactCountMaxRows });
      } catch (e) {
        const privilege = explainPrivilegeError((e as Error).message, account);
        if (privilege)
          throw new StrongboxError("BACKUP_PRIVILEGES", privilege, { stage: "inventory", cause: e });
        throw e;
      } finally {
        await conn.end().catch(() => {});
      }
    })();
    inventory.catch(() => {});
    const streamed = await streamToParts(tool, {
      storage: repo.storage,
      keyFor: (i) => repo.partKey(id, i),
      partSize: parseSize(config.backup.partSize),
      recipients: deps.recipients.age,
      compressionLevel: config.backup.compressionLevel,
      compressionThreads: config.backup.compressionThreads,
      signal: req.signal,
      onProgress: req.onProgress,
      keepEnds: plan.kind === "logical",
      ready: Promise.resolve(deps.committed),
    });
    mark("stream", tStream);
    const tInv = performance.now();
    const inv = await inventory;
    mark("inventory-wait", tInv);
    if (desync) {
      const t = performance.now();
      await desync.release();
      desync = undefined;
      await clearDesyncMarker(deps.stateDir, node.name);
      mark("resync", t);
    }
    const pos =
      plan.kind === "logical" ? undefined : await readPhysicalPosition(tool.lsnDir ?? "", tool.stderr.text());
    const dumpPos =
      plan.kind === "logical"
        ? readDumpPosition(`${streamed.head.toString("utf8")}\n${streamed.tail.toString("utf8")}`)
        : undefined;
    const details: ManifestDetails = {
      donorHost: node.host,
      donorPort: node.port,
      nodes: deps.nodes.map((n) => ({ name: n.name, host: n.host, port: n.port })),
      inventory: inv,
    };
    const sealed = await encryptBuffer(Buffer.from(JSON.stringify(details)), deps.recipients.age);
    const manifest: Manifest = {
      format: MANIFEST_FORMAT,
      id,
      type: plan.kind,
      parent: plan.parent?.id ?? null,
      chainRoot: plan.parent ? plan.parent.chainRoot : id,
      cluster: {
        name: config.cluster.name,
        uuid: pos?.galera?.uuid ?? (donor.clusterUuid || null),
        seqno: pos?.galera?.seqno ?? null,
        size: donor.clusterSize,
      },
      donor: node.name,
      serverVersion: pos?.serverVersion ?? null,
      gtid: pos?.gtid ?? dumpPos?.gtid ?? null,
      binlog: pos?.binlog ?? dumpPos?.binlog ?? null,
      lsn: pos?.lsn ?? null,
      startedAt: startedAt.toISOString(),
      finishedAt: new Date().toISOString(),
      durations,
      bytes: { raw: streamed.rawBytes, compressed: streamed.compressedBytes, stored: streamed.storedBytes },
      compression: { algorithm: "zstd", level: config.backup.compressionLevel },
      encryption: {
        format: "age-v1",
        recipients: deps.recipients.names,
        passphrase: deps.recipients.passphrase,
      },
      parts: streamed.parts,
      details: sealed.toString("base64"),
      tool: {
        name: "strongbox",
        version: VERSION,
        backupTool: plan.kind === "logical" ? "mariadb-dump" : "mariabackup",
      },
    };
    mark("total", t0);
    const signed = signManifest(manifest, deps.signing.privateKeyPem, deps.signing.publicKey);
    await repo.commit(signed);
    committed = true;
    return signed;
  } finally {
    if (desync) {
      await desync
        .release()
        .then(() => clearDesyncMarker(deps.stateDir, node.name))
        .catch((e) =>
          deps.log(`warning: could not turn wsrep_desync off on ${node.name}: ${(e as Error).message}`),
        );
    } else await clearDesyncMarker(deps.stateDir, node.name);
    await work.remove().catch(() => {});
    if (!committed && !repo.storage.capabilities.appendOnly) {
      await repo.removeUncommitted(id).catch(() => {});
    }
  }
}

/** Data plus index size of every table: about what mariabackup will stream. */
async function estimateSize(node: ClusterNode, deps: BackupDeps): Promise<number> {
  const conn = await connectNode(node, deps.backupCreds, { tls: deps.tls });
  try {
    const [rows] = (await conn.query(
      "SELECT COALESCE(SUM(data_length + index_length), 0) AS n FROM information_schema.tables",
    )) as unknown as [{ n: string }[]];
    return Number(rows[0]?.n ?? 0);
  } finally {
    await conn.end().catch(() => {});
  }
}
