// The strongbox.yaml schema: the single source of truth for validation and for docs/configuration.md.
// Its sections are in schema-cluster.ts, schema-storage.ts and schema-monitoring.ts.
import * as z from "zod";
import { isLoopbackBind } from "../util/loopback.ts";
import { clusterSchema, nodeSchema } from "./schema-cluster.ts";
import { duration, filePath, sizeString } from "./schema-common.ts";
import { monitoringSchema } from "./schema-monitoring.ts";
import { repositorySchema, storageSchema } from "./schema-storage.ts";

export { clusterSchema, monitoringSchema, nodeSchema, repositorySchema, storageSchema };

const signingPublicKeyString = z
  .string()
  .regex(/^ed25519:[A-Za-z0-9+/]{43}=$/, 'expected "ed25519:" and the base64 of 32 bytes');

export const keysSchema = z
  .object({
    recipients: z
      .array(z.string().min(1))
      .default([])
      .describe("age X25519 recipients (age1…) that every backup is encrypted to"),
    recipientsFile: filePath.optional().describe("file with one recipient per line (comments with #)"),
    passphraseFile: filePath
      .optional()
      .describe("passphrase for an age scrypt recipient instead of keys (mode 0600)"),
    signingKey: filePath
      .optional()
      .describe(
        "Ed25519 private key that signs manifests (mode 0600; created by init); only writers need it (backup, copy, prune, key rotation, binlog archive)",
      ),
    signingPublicKey: z
      .union([signingPublicKeyString, z.array(signingPublicKeyString).min(1)])
      .optional()
      .describe(
        'the signing public key(s) readers trust ("ed25519:…", printed and written to <signingKey>.pub by init); a list while `key rotate --signing` runs. Enough for list, show, verify, restore and restore-test without keys.signingKey',
      ),
    identity: filePath
      .optional()
      .describe("age identity for restore, show and verify --read-data; keep it OFF the backup host"),
  })
  .strict()
  .superRefine((k, ctx) => {
    if (k.signingKey === undefined && k.signingPublicKey === undefined) {
      ctx.addIssue({
        code: "custom",
        path: ["signingKey"],
        message: "set keys.signingKey (a writer) or keys.signingPublicKey (a reader), or both",
      });
    }
  });

export const backupSchema = z
  .object({
    partSize: sizeString.default("64MiB").describe("size of each encrypted part"),
    compressionLevel: z.number().int().min(1).max(19).default(1).describe("zstd level"),
    compressionThreads: z.number().int().min(0).max(64).default(0).describe("zstd threads; 0 = one per core"),
    fullEvery: duration
      .default("7d")
      .describe("default policy: a full backup when the last full is older than this, else incremental"),
    mariabackupPath: z.string().default("mariabackup").describe("mariabackup binary"),
    mariadbDumpPath: z.string().default("mariadb-dump").describe("mariadb-dump binary"),
    parallel: z.number().int().min(1).max(64).default(2).describe("mariabackup --parallel"),
    exactCountMaxRows: z
      .number()
      .int()
      .min(0)
      .default(1_000_000)
      .describe(
        "the inventory counts rows exactly (COUNT(*) on the donor, during the backup) only in tables InnoDB estimates at no more than this; larger tables get the estimate, which restore tests compare within restoreTest.estimateTolerance",
      ),
    lockTtl: duration
      .default("2h")
      .describe("a writer lock whose holder stopped refreshing it this long ago is stale"),
    timeout: duration.default("24h").describe("abort a backup that runs longer than this"),
    stallTimeout: duration
      .default("5m")
      .describe(
        "stop a backup whose tool (mariabackup, mariadb-dump, or the node's agent) sent no output for this long",
      ),
    copyTo: z
      .array(z.string())
      .default([])
      .describe("repositories to copy every new backup to, right after it is taken"),
  })
  .strict();

export const serveSchema = z
  .object({
    bind: z.string().min(1).default("127.0.0.1").describe("address the dashboard listens on"),
    port: z.number().int().min(0).max(65535).default(8484).describe("TCP port of the dashboard"),
    tokenFile: filePath
      .optional()
      .describe(
        "file holding the access token (mode 0600): Authorization: Bearer, or basic auth with it as password; required when bind is not a loopback address",
      ),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (!isLoopbackBind(s.bind) && !s.tokenFile) {
      ctx.addIssue({
        code: "custom",
        path: ["tokenFile"],
        message: `binding to ${s.bind} (not loopback) needs a token file`,
      });
    }
  });

const cronExpression = z
  .string()
  .min(1)
  .describe('cron expression ("0 2 * * *"; six fields for seconds), or omit the job');

export const scheduleSchema = z
  .object({
    full: cronExpression.optional().describe("full backup"),
    incremental: cronExpression.optional().describe("incremental backup"),
    verify: cronExpression.optional().describe("verify every backup (hashes and signatures)"),
    restoreTest: cronExpression.optional().describe("restore-test of the newest backup"),
    copy: cronExpression.optional().describe("copy missing backups to every repository in backup.copyTo"),
    prune: cronExpression.optional().describe("prune every repository that has a retention policy"),
    binlog: cronExpression.optional().describe("binary log archiving"),
    timeZone: z.string().optional().describe("IANA time zone of the expressions (default: the system's)"),
  })
  .strict();

export const securitySchema = z
  .object({
    backupMethods: z
      .array(z.enum(["physical", "logical", "binlog"]))
      .min(1)
      .default(["physical", "logical"])
      .describe(
        "backup methods this deployment uses (binlog: the account archives binlogs): what `user grants` and `user create` grant and what `audit` compares the backup account with",
      ),
    acceptFindings: z
      .array(z.string().min(1))
      .default([])
      .describe(
        "audit finding ids accepted as known risks: still listed, as info, and left out of the exit code",
      ),
  })
  .strict();

export const restoreTestSchema = z
  .object({
    scratchDir: filePath
      .optional()
      .describe("where restore tests unpack and run (default: state/scratch beside this file)"),
    bufferPool: z.string().default("256M").describe("innodb_buffer_pool_size of the throw-away server"),
    on: z
      .string()
      .min(1)
      .optional()
      .describe(
        "a node (cluster.nodes[].name, with an agent) whose host runs restore tests, below its agent's --restore-root; default: this host (restore-test --on overrides)",
      ),
    rowCountTolerance: z
      .number()
      .min(0)
      .max(1)
      .default(0)
      .describe(
        "allowed relative difference of a table's row count from the inventory (writes during the backup); 0 = exact",
      ),
    estimateTolerance: z
      .number()
      .min(0)
      .max(1)
      .default(0.5)
      .describe(
        "allowed relative difference from an estimated row count (tables above backup.exactCountMaxRows); InnoDB's estimates are often 10–20% off",
      ),
    assertions: z
      .array(
        z
          .object({
            name: z.string().min(1).describe("shown when it fails"),
            sql: z.string().min(1).describe("a query; the first column of the first row is compared"),
            expect: z.string().describe("the expected value, as text (NULL for SQL NULL)"),
          })
          .strict(),
      )
      .default([])
      .describe("your own checks run on the restored data"),
  })
  .strict();

export const binlogSchema = z
  .object({
    node: z
      .string()
      .optional()
      .describe("node to archive binary logs from while it is Synced (default: cluster.backupNode)"),
    flushInterval: duration
      .default("5m")
      .describe(
        "the daemon's scheduled `binlog archive` passes (not --follow) close (FLUSH BINARY LOGS) and archive the open binlog; kept for them",
      ),
    maxDelay: duration
      .default("5s")
      .describe(
        "binlog archive --follow: a committed transaction is stored and indexed in the repository within this time (segments are sealed every half of it)",
      ),
    spoolMax: sizeString
      .default("64MiB")
      .describe(
        "binlog archive --follow: sealed (encrypted) segments held in memory while the storage is unreachable; at the bound receiving pauses and an alert is raised",
      ),
    checkpointInterval: duration
      .default("1m")
      .describe(
        "binlog archive --follow: how often an idle, caught-up archive records that it is complete (what lets a restore reach a second after the last transaction), and each run is recorded in the history",
      ),
    repository: z
      .string()
      .optional()
      .describe("repository for the binlog archive (default: the default repository)"),
  })
  .strict();

export const configSchema = z
  .object({
    version: z.literal(1).describe("config format version"),
    cluster: clusterSchema,
    repositories: z
      .array(repositorySchema)
      .min(1)
      .describe("one or more repositories; the first is the default"),
    defaultRepository: z.string().optional().describe("name of the repository used when --repo is not given"),
    keys: keysSchema,
    backup: backupSchema.default(backupSchema.parse({})),
    restoreTest: restoreTestSchema.default(restoreTestSchema.parse({})).describe("restore-test settings"),
    stateDir: filePath
      .optional()
      .describe("directory for the run catalog and scratch space (default: beside this file)"),
    monitoring: monitoringSchema.optional().describe("run catalog, alert rules and channels"),
    security: securitySchema.optional().describe("least privilege and audit settings"),
    serve: serveSchema.optional().describe("the dashboard, JSON API and /metrics (strongbox serve)"),
    schedule: scheduleSchema.optional().describe("when strongbox daemon runs each job"),
    binlog: binlogSchema.optional().describe("binary log archiving for point-in-time recovery"),
  })
  .strict()
  .superRefine((cfg, ctx) => {
    const names = new Set(cfg.cluster.nodes.map((n) => n.name));
    for (const key of ["backupNode", "writerNode"] as const) {
      const v = cfg.cluster[key];
      if (v !== undefined && !names.has(v)) {
        ctx.addIssue({
          code: "custom",
          path: ["cluster", key],
          message: `no node named "${v}" in cluster.nodes`,
        });
      }
    }
    if (cfg.binlog?.node !== undefined && !names.has(cfg.binlog.node)) {
      ctx.addIssue({
        code: "custom",
        path: ["binlog", "node"],
        message: `no node named "${cfg.binlog.node}" in cluster.nodes`,
      });
    }
    const tester = cfg.restoreTest.on;
    if (tester !== undefined && !cfg.cluster.nodes.some((n) => n.name === tester && n.agent)) {
      ctx.addIssue({
        code: "custom",
        path: ["restoreTest", "on"],
        message: names.has(tester)
          ? `node "${tester}" has no agent (cluster.nodes[].agent)`
          : `no node named "${tester}" in cluster.nodes`,
      });
    }
    if (names.size !== cfg.cluster.nodes.length) {
      ctx.addIssue({ code: "custom", path: ["cluster", "nodes"], message: "node names must be unique" });
    }
    const repos = cfg.repositories.map((r) => r.name);
    if (new Set(repos).size !== repos.length) {
      ctx.addIssue({ code: "custom", path: ["repositories"], message: "repository names must be unique" });
    }
    cfg.backup.copyTo.forEach((name, i) => {
      if (!repos.includes(name)) {
        ctx.addIssue({
          code: "custom",
          path: ["backup", "copyTo", i],
          message: `no repository named "${name}"`,
        });
      }
    });
    if (cfg.binlog?.repository !== undefined && !repos.includes(cfg.binlog.repository)) {
      ctx.addIssue({
        code: "custom",
        path: ["binlog", "repository"],
        message: `no repository named "${cfg.binlog.repository}"`,
      });
    }
    if (cfg.defaultRepository !== undefined && !repos.includes(cfg.defaultRepository)) {
      ctx.addIssue({
        code: "custom",
        path: ["defaultRepository"],
        message: `no repository named "${cfg.defaultRepository}"`,
      });
    }
    for (const [i, r] of (cfg.monitoring?.rules.repositories ?? []).entries()) {
      if (!repos.includes(r)) {
        ctx.addIssue({
          code: "custom",
          path: ["monitoring", "rules", "repositories", i],
          message: `no repository named "${r}"`,
        });
      }
    }
    // A writer (it has the signing key) encrypts; a reader with only the public key does not.
    const writer = cfg.keys.signingKey !== undefined;
    if (writer && cfg.keys.recipients.length === 0 && !cfg.keys.recipientsFile && !cfg.keys.passphraseFile) {
      ctx.addIssue({
        code: "custom",
        path: ["keys"],
        message: "no recipients: set keys.recipients, keys.recipientsFile or keys.passphraseFile",
      });
    }
  });

export type StrongboxConfig = z.infer<typeof configSchema>;
export type NodeConfig = z.infer<typeof nodeSchema>;
export type RepositoryConfig = z.infer<typeof repositorySchema>;
export type StorageConfig = z.infer<typeof storageSchema>;
export type MonitoringConfig = z.infer<typeof monitoringSchema>;
export type ServeConfig = z.infer<typeof serveSchema>;
export type ScheduleConfig = z.infer<typeof scheduleSchema>;
export type SecurityConfig = z.infer<typeof securitySchema>;
