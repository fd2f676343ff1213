// One backup, Galera-aware: choose a Synced donor, optionally desync it, stream the backup tool's
// output into encrypted parts, then commit the signed manifest last.

import { encryptBuffer } from "../crypto/age.ts";
import type { RecipientSet } from "../crypto/recipient-set.ts";
import type { SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode } from "../galera/connection.ts";
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
} from "../galera/health.ts";
import {
  type PhysicalPosition,
  readDumpPosition,
  readPhysicalPosition,
  startDump,
  startMariabackup,
  type ToolRun,
} from "../mariadb/backup-tools.ts";
import { streamToParts } from "../pipeline/stream.ts";
import type { AgentSession } from "../protocol/client.ts";
import {
  type BackupType,
  MANIFEST_FORMAT,
  type Manifest,
  type ManifestDetails,
  manifestDigest,
  newBackupId,
  signManifest,
} from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { type BackupVerifier, openEvidenceWriter } from "../repository/trusted.ts";
import { preflightBackupGrants } from "../security/grants.ts";
import { explainPrivilegeError } from "../security/privilege-errors.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { VERSION } from "../version.ts";
import { type Inventory, takeInventory } from "./inventory.ts";
import { assertLocalNode } from "./locality.ts";
import { type BackupPlan, type PlanPolicy, planBackup, planningHistory } from "./plan.ts";
import { abandonSession, likelyAgentDonor, openAgentEarly, streamViaAgent } from "./remote.ts";

/** What a backup needs of the configuration. */
export interface BackupSettings extends PlanPolicy {
  clusterName: string;
  desync: "on" | "auto" | "off";
  retryOnNextNode: boolean;
  mariabackupPath: string;
  mariadbDumpPath: string;
  /** mariabackup --parallel. */
  parallel: number;
  exactCountMaxRows: number;
  /** Bytes of raw stream per encrypted part. */
  partSize: number;
  compressionLevel: number;
  compressionThreads: number;
  /** backup.stallTimeout: stop a tool whose output does not move for this long (ms). */
  stallTimeoutMs?: number | undefined;
}

export interface BackupDeps {
  settings: BackupSettings;
  repo: Repository;
  nodes: ClusterNode[];
  backupCreds: Credentials;
  adminCreds?: Credentials | undefined;
  tls?: TlsOptions | undefined;
  recipients: RecipientSet;
  signing: SigningKey;
  /** Reads manifests only after checking them (signature and evidence log); records the commit. */
  trust: BackupVerifier;
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

function isNodeFailure(e: unknown): boolean {
  const code = (e as StrongboxError).code ?? "";
  return (
    code === "BACKUP_TOOL_FAILED" ||
    code.startsWith("NODE_") ||
    code === "CHILD_FAILED" ||
    code === "AGENT_LOST" ||
    code === "AGENT_UNREACHABLE"
  );
}

export async function runBackup(deps: BackupDeps, req: BackupRequest = {}): Promise<Manifest> {
  const likely =
    req.kind === "logical" || deps.recipients.passphrase
      ? undefined
      : likelyAgentDonor(deps.nodes, req.node ?? deps.settings.backupNode);
  let preOpened = likely ? openAgentEarly(likely, VERSION) : undefined;
  try {
    return await runPlanned(deps, req, likely?.name, () => {
      const s = preOpened;
      preOpened = undefined;
      return s;
    });
  } finally {
    abandonSession(preOpened);
  }
}

async function runPlanned(
  deps: BackupDeps,
  req: BackupRequest,
  likely: string | undefined,
  takeSession: () => Promise<AgentSession> | undefined,
): Promise<Manifest> {
  const { settings, nodes, backupCreds, tls } = deps;
  // The nodes are asked while the manifests are read. The first donor's probe connection then
  // checks the grants too: one connection less before mariabackup starts.
  const probing = Promise.all(nodes.map((n) => probeNodeKeepingConnection(n, backupCreds, { tls })));
  const endAll = async (conns: (Connection | undefined)[]) =>
    Promise.all(conns.map((c) => c?.end().catch(() => {})));
  let probes: Awaited<typeof probing>;
  let plan: BackupPlan;
  try {
    let history: Manifest[];
    [probes, history] = await Promise.all([
      probing,
      planningHistory(deps.trust, deps.committed, req.kind, (d) =>
        deps.log(`UNVERIFIED ${d.id} is not a parent: ${d.message}`),
      ),
    ]);
    plan = planBackup(
      settings,
      probes.map((p) => p.health),
      history,
      req,
    );
  } catch (e) {
    await endAll((await probing).map((p) => p.conn));
    throw e;
  }
  const attempts =
    settings.retryOnNextNode && plan.kind !== "incremental" ? plan.candidates : plan.candidates.slice(0, 1);
  const firstConn = probes.find((p) => p.health.node.name === attempts[0]?.node.name)?.conn;
  await endAll(probes.filter((p) => p.conn !== firstConn).map((p) => p.conn));
  deps.log(
    `${plan.kind} backup (${plan.reason}); candidates: ${plan.candidates.map((c) => c.node.name).join(", ")}`,
  );
  let lastError: unknown;
  for (const [i, candidate] of attempts.entries()) {
    try {
      const session = plan.kind !== "logical" && candidate.node.name === likely ? takeSession() : undefined;
      return await attempt(deps, req, plan, candidate, i === 0 ? firstConn : undefined, session);
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

/** Stage timings of one backup, in seconds, as the manifest records them. */
class Stopwatch {
  readonly durations: Record<string, number> = {};
  private readonly t0 = performance.now();
  async time<T>(stage: string, work: () => Promise<T>): Promise<T> {
    const t = performance.now();
    const result = await work();
    this.durations[stage] = Math.round(performance.now() - t) / 1000;
    return result;
  }
  /** Seconds from `at` (a performance.now() value; 0: the process's start) until now. */
  since(stage: string, at: number): void {
    this.durations[stage] = Math.round(performance.now() - at) / 1000;
  }
  total(): void {
    this.durations.total = Math.round(performance.now() - this.t0) / 1000;
  }
}

/** One try on one donor: grants, desync, stream, inventory, resync, then the signed commit. */
async function attempt(
  deps: BackupDeps,
  req: BackupRequest,
  plan: BackupPlan,
  donor: NodeHealth,
  /** The donor's probe connection, if still open: used for the grants check, then ended. */
  probed?: Connection,
  /** The donor agent's session, opened while the nodes were probed. */
  opened?: Promise<AgentSession>,
): Promise<Manifest> {
  const { repo } = deps;
  const node = deps.nodes.find((n) => n.name === donor.node.name)!;
  // Missing grants are found before anything is desynced or streamed, and named with the GRANT
  // that fixes them: some (TRIGGER, EVENT) would otherwise make backups silently incomplete.
  // A probe connection lost since gets a new one, whose failure to connect is then a node
  // failure like any other.
  // Through an agent, its SSH session opens while the grants are checked (and the donor desynced).
  const early =
    opened ??
    (plan.kind !== "logical" && node.agent && !deps.recipients.passphrase
      ? openAgentEarly({ ...node, agent: node.agent }, VERSION)
      : undefined);
  let handedOver = false;
  const account = await withConnection(
    probed,
    () => connectNode(node, deps.backupCreds, { tls: deps.tls }),
    async (conn) => {
      const account = await preflightBackupGrants(conn, [plan.kind === "logical" ? "logical" : "physical"]);
      // Without an agent, mariabackup runs here: only if this is the node's own host.
      if (plan.kind !== "logical" && !node.agent) await assertLocalNode(conn, node.name);
      return account;
    },
  ).catch((e: unknown) => {
    abandonSession(early);
    throw e;
  });
  const id = newBackupId();
  const startedAt = new Date();
  const clock = new Stopwatch();
  const work = await privateTempDir("strongbox-backup-").catch((e: unknown) => {
    abandonSession(early);
    throw e;
  });
  let desync: DesyncGuard | undefined;
  let committed = false;
  try {
    desync = await desyncIfWanted(deps, plan, donor, node, clock);
    deps.log(
      `backup ${id}: ${plan.kind} from ${node.name}${plan.parent ? ` on top of ${plan.parent.id}` : ""}`,
    );
    // The fixed cost before any byte streams: from the process's start (every command is its own
    // process, the daemon's jobs too) to the backup tool's.
    clock.since("startup", 0);
    const streaming = await clock.time("stream", async () => {
      if (plan.kind !== "logical" && node.agent) {
        const inventory = startInventory(deps, node, account);
        handedOver = true;
        const remote = await streamViaAgent({
          session: early,
          node: { ...node, agent: node.agent },
          creds: deps.backupCreds,
          tls: deps.tls,
          recipients: deps.recipients,
          mariabackupPath: deps.settings.mariabackupPath,
          parallel: deps.settings.parallel,
          incrementalLsn: plan.parent?.lsn?.to,
          partSize: deps.settings.partSize,
          compressionLevel: deps.settings.compressionLevel,
          compressionThreads: deps.settings.compressionThreads,
          account,
          storage: repo.storage,
          keyFor: (i) => repo.partKey(id, i),
          ready: Promise.resolve(deps.committed),
          signal: req.signal,
          onProgress: req.onProgress,
          stallTimeoutMs: deps.settings.stallTimeoutMs,
          version: VERSION,
        });
        return { ...remote, inventory, tool: undefined };
      }
      const tool = await startTool(deps, plan, node, work.path, account);
      if (req.onEstimate) {
        estimateSize(node, deps)
          .then((n) => n > 0 && req.onEstimate?.(n))
          .catch(() => {});
      }
      const inventory = startInventory(deps, node, account);
      const streamed = await streamToParts(tool, {
        storage: repo.storage,
        keyFor: (i) => repo.partKey(id, i),
        partSize: deps.settings.partSize,
        recipients: deps.recipients.age,
        compressionLevel: deps.settings.compressionLevel,
        compressionThreads: deps.settings.compressionThreads,
        signal: req.signal,
        onProgress: req.onProgress,
        keepEnds: plan.kind === "logical",
        ready: Promise.resolve(deps.committed),
        stallTimeoutMs: deps.settings.stallTimeoutMs,
        label: plan.kind === "logical" ? "mariadb-dump" : "mariabackup",
      });
      return { tool, inventory, streamed, position: undefined };
    });
    const { tool, streamed } = streaming;
    const inventory = await clock.time("inventory-wait", () => streaming.inventory);
    if (desync) {
      const guard = desync;
      await clock.time("resync", async () => {
        await guard.release();
        await clearDesyncMarker(deps.stateDir, node.name);
      });
      desync = undefined;
    }
    const position =
      streaming.position ??
      (plan.kind === "logical" || !tool
        ? readDumpPosition(`${streamed.head.toString("utf8")}\n${streamed.tail.toString("utf8")}`)
        : await readPhysicalPosition(tool.lsnDir ?? "", tool.stderr.text()));
    const details: ManifestDetails = {
      donorHost: node.host,
      donorPort: node.port,
      nodes: deps.nodes.map((n) => ({ name: n.name, host: n.host, port: n.port })),
      inventory,
    };
    clock.total();
    const manifest = buildManifest(deps, plan, donor, {
      id,
      startedAt,
      durations: clock.durations,
      position,
      streamed,
      details: await encryptBuffer(Buffer.from(JSON.stringify(details)), deps.recipients.age),
    });
    const signed = signManifest(manifest, deps.signing.privateKeyPem, deps.signing.publicKey);
    // The evidence log records the commit: "begin" before the manifest, "done" after it.
    const evidence = await openEvidenceWriter(deps.trust, deps.signing, {
      committed: (await deps.committed) ?? undefined,
    });
    await evidence.record("commit", [{ id, digest: manifestDigest(signed) }], () => repo.commit(signed));
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
    if (!handedOver) abandonSession(early);
    await work.remove().catch(() => {});
    if (!committed && !repo.storage.capabilities.appendOnly) {
      await repo.removeUncommitted(id).catch(() => {});
    }
  }
}

/**
 * Takes the donor out of flow control for a physical backup when cluster.desync asks for it. The
 * marker is written first, so a crash leaves a note for the next run to resync the node.
 */
async function desyncIfWanted(
  deps: BackupDeps,
  plan: BackupPlan,
  donor: NodeHealth,
  node: ClusterNode,
  clock: Stopwatch,
): Promise<DesyncGuard | undefined> {
  const mode = deps.settings.desync;
  const want = mode === "on" || (mode === "auto" && donor.clusterSize > 1);
  if (!want || plan.kind === "logical") return undefined;
  if (!deps.adminCreds) {
    if (mode === "on") {
      throw new StrongboxError("DESYNC_NO_ADMIN", "cluster.desync is on but no admin account is configured", {
        hint: "set cluster.credentials.admin (it needs SUPER), or cluster.desync: auto/off",
      });
    }
    deps.log("no admin account configured: backing up without wsrep_desync");
    return undefined;
  }
  const admin = deps.adminCreds;
  return clock.time("desync", async () => {
    await writeDesyncMarker(deps.stateDir, node.name);
    return desyncNode(node, admin, { tls: deps.tls, log: deps.log });
  });
}

function startTool(
  deps: BackupDeps,
  plan: BackupPlan,
  node: ClusterNode,
  workDir: string,
  account: string,
): Promise<ToolRun & { lsnDir?: string }> {
  const common = { node, creds: deps.backupCreds, tls: deps.tls, workDir, account };
  if (plan.kind === "logical") return startDump({ ...common, path: deps.settings.mariadbDumpPath });
  return startMariabackup({
    ...common,
    path: deps.settings.mariabackupPath,
    parallel: deps.settings.parallel,
    incrementalLsn: plan.parent?.lsn?.to,
  });
}

/** The inventory runs beside the stream on its own connection. */
function startInventory(deps: BackupDeps, node: ClusterNode, account: string): Promise<Inventory> {
  const inventory = (async () => {
    const conn = await connectNode(node, deps.backupCreds, { tls: deps.tls });
    try {
      return await takeInventory(conn, { exactCountMaxRows: deps.settings.exactCountMaxRows });
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
  return inventory;
}

function buildManifest(
  deps: BackupDeps,
  plan: BackupPlan,
  donor: NodeHealth,
  taken: {
    id: string;
    startedAt: Date;
    durations: Record<string, number>;
    position: PhysicalPosition | ReturnType<typeof readDumpPosition>;
    streamed: Awaited<ReturnType<typeof streamToParts>>;
    details: Buffer;
  },
): Manifest {
  const { position: pos, streamed } = taken;
  const physical = "lsn" in pos ? pos : undefined;
  return {
    format: MANIFEST_FORMAT,
    id: taken.id,
    type: plan.kind,
    parent: plan.parent?.id ?? null,
    chainRoot: plan.parent ? plan.parent.chainRoot : taken.id,
    cluster: {
      name: deps.settings.clusterName,
      uuid: physical?.galera?.uuid ?? (donor.clusterUuid || null),
      seqno: physical?.galera?.seqno ?? null,
      size: donor.clusterSize,
    },
    donor: donor.node.name,
    serverVersion: physical?.serverVersion ?? null,
    gtid: pos.gtid ?? null,
    binlog: pos.binlog ?? null,
    lsn: physical?.lsn ?? null,
    startedAt: taken.startedAt.toISOString(),
    finishedAt: new Date().toISOString(),
    durations: taken.durations,
    bytes: { raw: streamed.rawBytes, compressed: streamed.compressedBytes, stored: streamed.storedBytes },
    compression: { algorithm: "zstd", level: deps.settings.compressionLevel },
    encryption: {
      format: "age-v1",
      recipients: deps.recipients.names,
      passphrase: deps.recipients.passphrase,
    },
    parts: streamed.parts,
    details: taken.details.toString("base64"),
    tool: {
      name: "strongbox",
      version: VERSION,
      backupTool: plan.kind === "logical" ? "mariadb-dump" : "mariabackup",
    },
  };
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
