// The strongbox.yaml schema: the single source of truth for validation and for docs/configuration.md.
import * as z from "zod";
import { isLoopbackBind } from "../util/loopback.ts";

// zod compiles a fast path for each object schema (new Function) at its first parse: worth it for
// many parses, but a command parses its configuration once. Measured: ~4 ms less per start.
z.config({ jitless: true });

const sizeString = z
  .union([
    z.number().int().positive(),
    z.string().regex(/^\s*\d+(\.\d+)?\s*(B|K|KB|KiB|M|MB|MiB|G|GB|GiB|T|TB|TiB)?\s*$/i),
  ])
  .describe('a size: bytes, or a string such as "64MiB" or "1GB"');

const duration = z
  .string()
  .regex(/^\s*\d+\s*(s|m|h|d|w)\s*$/, 'a duration such as "30s", "15m", "26h", "7d", "2w"')
  .describe('a duration such as "30m", "26h", "7d"');

const filePath = z.string().min(1).describe("a file path; relative paths are relative to this config file");

/** How an SSH client authenticates and checks the server: for SFTP storage and for node agents. */
const sshClientFields = {
  privateKey: filePath
    .optional()
    .describe(
      "OpenSSH private key for key authentication (mode 0600); without it, the keys of the ssh-agent",
    ),
  sshAgent: z
    .union([z.boolean(), filePath])
    .optional()
    .describe(
      "offer an ssh-agent's keys: true for $SSH_AUTH_SOCK, or the agent's socket path; the default without privateKey is $SSH_AUTH_SOCK",
    ),
  passphraseFile: filePath.optional().describe("file holding the private key's passphrase (mode 0600)"),
  hostKey: z
    .union([z.string().min(1), z.array(z.string().min(1)).min(1)])
    .optional()
    .describe(
      'the server\'s host key, "ssh-ed25519 AAAA…", or its fingerprint "SHA256:…" (a list during a key rotation); this or knownHostsFile is required',
    ),
  knownHostsFile: filePath
    .optional()
    .describe("OpenSSH known_hosts file with the server's key (hashed entries and @revoked are honoured)"),
  connectTimeout: duration.default("20s").describe("give up on the SSH handshake after this long"),
};

/** A host key must come from somewhere: it is never accepted blindly. */
function requireHostKey(
  s: { hostKey?: unknown; knownHostsFile?: unknown; privateKey?: unknown; sshAgent?: unknown },
  ctx: z.RefinementCtx,
): void {
  if (s.hostKey === undefined && s.knownHostsFile === undefined) {
    ctx.addIssue({
      code: "custom",
      path: ["hostKey"],
      message: "set hostKey or knownHostsFile: the server's host key is never accepted blindly",
    });
  }
  // A key must come from somewhere too: the file, or an ssh-agent (not turned off).
  if (s.privateKey === undefined && s.sshAgent === false) {
    ctx.addIssue({
      code: "custom",
      path: ["privateKey"],
      message: "sshAgent: false leaves no key: set privateKey, or let the ssh-agent's keys be used",
    });
  }
}

const agentSchema = z
  .object({
    host: z.string().min(1).optional().describe("SSH host of the node (default: the node's host)"),
    port: z.number().int().min(1).max(65535).default(22).describe("SSH port"),
    user: z.string().min(1).describe("the agent's OS account on the node (it runs mariabackup)"),
    ...sshClientFields,
    command: z
      .string()
      .min(1)
      .default("strongbox agent")
      .describe("command sent to sshd; the forced command in authorized_keys takes its place"),
  })
  .strict()
  .superRefine(requireHostKey);

export const nodeSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-'")
      .describe("node name used in commands and reports"),
    host: z.string().min(1).default("127.0.0.1").describe("host name or address of the node's client port"),
    port: z.number().int().min(1).max(65535).default(3306).describe("client port"),
    socket: filePath
      .optional()
      .describe(
        "unix socket; used instead of host:port when the node is local. With an agent: the socket on the node (absolute), used by the agent's mariabackup only",
      ),
    datadir: filePath
      .optional()
      .describe(
        "data directory of the node (needed for physical backups taken on this host; with an agent, its path on the node)",
      ),
    defaultsFile: filePath
      .optional()
      .describe(
        "the node's my.cnf, passed to mariabackup as --defaults-file (with an agent: its path on the node)",
      ),
    agent: agentSchema
      .optional()
      .describe("how the backup host reaches this node's agent over SSH; physical backups run there"),
  })
  .strict()
  .superRefine((n, ctx) => {
    // With an agent these are paths on the node: relative ones would be resolved on the wrong host.
    if (!n.agent) return;
    for (const key of ["socket", "datadir", "defaultsFile"] as const) {
      const v = n[key];
      if (v !== undefined && !v.startsWith("/"))
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `a path on the node with an agent must be absolute, got "${v}"`,
        });
    }
  });

const credentialsSchema = z
  .object({
    user: z.string().min(1).describe("account name"),
    passwordFile: filePath
      .optional()
      .describe("file holding the password (mode 0600); omit for unix_socket authentication"),
  })
  .strict();

const tlsSchema = z
  .object({
    ca: filePath.optional().describe("CA certificate to verify the server"),
    cert: filePath.optional().describe("client certificate"),
    key: filePath.optional().describe("client key (mode 0600)"),
  })
  .strict();

export const clusterSchema = z
  .object({
    name: z.string().min(1).default("galera").describe("cluster name, recorded in every manifest"),
    nodes: z.array(nodeSchema).min(1).describe("every node of the cluster; at least one"),
    backupNode: z.string().optional().describe("preferred donor for backups (must name a node)"),
    writerNode: z.string().optional().describe("the node applications write to; avoided as donor"),
    desync: z
      .enum(["auto", "on", "off"])
      .default("auto")
      .describe(
        "SET GLOBAL wsrep_desync=ON during backups; auto = on when the cluster has more than one node",
      ),
    retryOnNextNode: z
      .boolean()
      .default(true)
      .describe("when the chosen node fails mid-backup, retry once on the next healthy node"),
    credentials: z
      .object({
        backup: credentialsSchema.describe("least-privilege backup account"),
        admin: credentialsSchema
          .optional()
          .describe("separate admin account for wsrep_desync (needs SUPER); optional"),
      })
      .strict(),
    tls: tlsSchema.optional().describe("TLS for connections to the nodes"),
  })
  .strict();

const localStorageSchema = z
  .object({
    type: z.literal("local"),
    path: filePath.describe("directory of the repository"),
  })
  .strict();

const sftpStorageSchema = z
  .object({
    type: z.literal("sftp"),
    host: z.string().min(1).describe("SSH server: host name or address"),
    port: z.number().int().min(1).max(65535).default(22).describe("SSH port"),
    user: z.string().min(1).describe("SSH account"),
    path: z
      .string()
      .min(1)
      .describe(
        "repository directory on the server (absolute, or relative to the account's login directory)",
      ),
    ...sshClientFields,
    readOnlyFiles: z
      .boolean()
      .default(false)
      .describe(
        "create files 0400 instead of 0600, so an append-only SFTP account cannot reopen them for writing",
      ),
  })
  .strict()
  .superRefine(requireHostKey);

const s3StorageSchema = z
  .object({
    type: z.literal("s3"),
    bucket: z.string().min(3).describe("bucket name"),
    prefix: z.string().default("").describe('key prefix inside the bucket, e.g. "strongbox/prod/"'),
    endpoint: z
      .string()
      .regex(/^https?:\/\/[^/]/, "a URL such as https://s3.example.net:9000")
      .optional()
      .describe("URL of an S3-compatible server; omit for AWS"),
    region: z.string().min(1).default("us-east-1").describe("region used for signing requests"),
    forcePathStyle: z
      .boolean()
      .default(false)
      .describe("path-style URLs (https://host/bucket/key), as most non-AWS servers want"),
    credentialsFile: filePath
      .optional()
      .describe(
        "file (mode 0600) with `access_key_id = …` and `secret_access_key = …` lines; keys never go in this config. Without it: the AWS SDK's default chain (AWS_* environment variables, ~/.aws shared files, web identity, container or instance role)",
      ),
    profile: z
      .string()
      .min(1)
      .optional()
      .describe(
        "without credentialsFile: the profile of the shared AWS files (default: $AWS_PROFILE, else default)",
      ),
    caFile: filePath
      .optional()
      .describe(
        "PEM certificate of the CA that signed the server's certificate (trusted instead of the system CAs)",
      ),
    allowInsecureHttp: z
      .boolean()
      .default(false)
      .describe("accept a plain http:// endpoint (no TLS); only for loopback or a trusted network"),
    serverSideEncryption: z
      .discriminatedUnion("mode", [
        z.object({ mode: z.literal("AES256") }).strict(),
        z
          .object({
            mode: z.literal("aws:kms"),
            kmsKeyId: z.string().min(1).optional().describe("KMS key id or ARN (default: the bucket's key)"),
          })
          .strict(),
      ])
      .optional()
      .describe("ask the server to encrypt objects at rest (on top of strongbox's own encryption)"),
    objectLock: z
      .object({
        mode: z
          .enum(["GOVERNANCE", "COMPLIANCE"])
          .describe("COMPLIANCE: nobody can shorten it; GOVERNANCE: accounts with a bypass permission can"),
        retainDays: z
          .number()
          .int()
          .min(1)
          .max(36500)
          .describe("days each object is retained after it is written"),
      })
      .strict()
      .optional()
      .describe("Object Lock retention for every object written (the bucket must have Object Lock enabled)"),
    partSize: sizeString
      .default("16MiB")
      .describe("multipart part size, 5MiB to 5GiB; memory per upload is (concurrency + 1) × partSize"),
    concurrency: z.number().int().min(1).max(64).default(4).describe("parts uploaded in parallel per object"),
    conditionalWrites: z
      .boolean()
      .default(true)
      .describe(
        "create-if-absent with If-None-Match: *; turn off only for a server that rejects it (then a check before the write, which two writers can race)",
      ),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.endpoint?.startsWith("http://") && !s.allowInsecureHttp) {
      ctx.addIssue({
        code: "custom",
        path: ["endpoint"],
        message:
          "plain http:// is refused: use https://, or set allowInsecureHttp: true for a trusted network",
      });
    }
  });

export const storageSchema = z
  .discriminatedUnion("type", [localStorageSchema, sftpStorageSchema, s3StorageSchema])
  .describe("where the repository lives");

export const repositorySchema = z
  .object({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-'")
      .describe("repository name"),
    storage: storageSchema,
    appendOnly: z.boolean().default(false).describe("never delete or overwrite here (offsite copies)"),
    retention: z
      .object({
        keepLast: z.number().int().min(0).optional().describe("keep the newest N backups"),
        keepDaily: z
          .number()
          .int()
          .min(0)
          .optional()
          .describe("keep the newest backup of each of the last N days"),
        keepWeekly: z.number().int().min(0).optional().describe("… of each of the last N ISO weeks"),
        keepMonthly: z.number().int().min(0).optional().describe("… of each of the last N months"),
        keepYearly: z.number().int().min(0).optional().describe("… of each of the last N years"),
        keepWithin: duration.optional().describe("keep every backup newer than this"),
        timeZone: z.string().default("UTC").describe("time zone of the calendar periods (IANA name)"),
      })
      .strict()
      .optional()
      .describe(
        "what prune keeps; prune refuses to run without it. Ancestors of kept incrementals are always kept",
      ),
  })
  .strict();

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

const durationOrOff = z
  .union([duration, z.literal("off")])
  .describe('a duration such as "26h" or "8d", or "off" to disable the check');

const webhookSchema = z
  .object({
    url: z
      .string()
      .regex(/^https?:\/\/\S+$/, "an http:// or https:// URL")
      .describe("receives a JSON POST per alert (Slack-compatible `text` plus structured fields)"),
    tokenFile: filePath
      .optional()
      .describe("file holding a bearer token sent as Authorization: Bearer (mode 0600)"),
    timeout: duration.default("10s").describe("time limit of one delivery attempt"),
  })
  .strict();

const emailSchema = z
  .object({
    host: z.string().min(1).describe("SMTP server"),
    port: z.number().int().min(1).max(65535).default(587).describe("SMTP port"),
    secure: z
      .boolean()
      .default(false)
      .describe("TLS from the first byte (port 465); otherwise STARTTLS when offered"),
    user: z.string().min(1).optional().describe("SMTP account; omit when the server needs no login"),
    passwordFile: filePath.optional().describe("file holding the SMTP password (mode 0600)"),
    from: z.string().min(1).describe("sender address"),
    to: z.array(z.string().min(1)).min(1).describe("recipient addresses"),
  })
  .strict();

const longRunSchema = z
  .object({
    k: z.number().positive().default(3).describe("a run is long when it exceeds median + k × spread"),
    minHistory: z
      .number()
      .int()
      .min(2)
      .max(1000)
      .default(5)
      .describe("successful runs of the same kind needed before durations are judged"),
    window: z
      .number()
      .int()
      .min(2)
      .max(1000)
      .default(20)
      .describe("how many recent successful runs form the history"),
    minRelativeSpread: z
      .number()
      .min(0)
      .default(0.2)
      .describe(
        "lower bound of the spread as a fraction of the median (a stable history does not flag jitter)",
      ),
    minSpread: duration.default("30s").describe("lower bound of the spread as a duration"),
  })
  .strict();

const sizeRuleSchema = z
  .object({
    lowFactor: z
      .number()
      .gt(0)
      .lt(1)
      .default(0.5)
      .describe("a backup smaller than this × the median size is unusual"),
    highFactor: z
      .number()
      .gt(1)
      .default(2)
      .describe("a backup larger than this × the median size is unusual"),
    minHistory: z
      .number()
      .int()
      .min(2)
      .max(1000)
      .default(5)
      .describe("successful backups of the same kind needed first"),
    window: z
      .number()
      .int()
      .min(2)
      .max(1000)
      .default(20)
      .describe("how many recent successful backups form the history"),
  })
  .strict();

const monitoringRulesSchema = z
  .object({
    maxBackupAge: duration
      .default("26h")
      .describe("CRITICAL when no backup (or copy into the repository) succeeded for this long"),
    maxVerifyAge: durationOrOff.default("8d").describe("WARNING when no verify passed for this long"),
    maxRestoreTestAge: durationOrOff
      .default("8d")
      .describe("WARNING when no restore-test passed for this long"),
    maxCopyAge: durationOrOff
      .default("off")
      .describe("WARNING when a repository that receives copies got none for this long"),
    binlogLagMax: durationOrOff
      .default("15m")
      .describe(
        "CRITICAL when the binlog archive is this far behind the cluster's newest transaction, or no archive pass succeeded for this long (only for repositories that archive binlogs)",
      ),
    requireOffsite: z
      .boolean()
      .default(true)
      .describe(
        "WARNING when the default repository has no offsite copy (backup.copyTo) or its newest copy is older than maxCopyAge (else maxBackupAge)",
      ),
    longRun: longRunSchema.default(longRunSchema.parse({})).describe("the unusually-long-run rule"),
    size: sizeRuleSchema.default(sizeRuleSchema.parse({})).describe("the unusual-backup-size rule"),
    repositories: z
      .array(z.string().min(1))
      .optional()
      .describe("repositories the age rules apply to (default: all)"),
  })
  .strict();

const alertsSchema = z
  .object({
    webhook: webhookSchema.optional().describe("alert by HTTP POST"),
    email: emailSchema.optional().describe("alert by e-mail over SMTP"),
    attempts: z.number().int().min(1).max(10).default(4).describe("delivery attempts per alert and channel"),
    backoff: duration.default("2s").describe("wait before the second attempt; doubles after each failure"),
  })
  .strict();

export const monitoringSchema = z
  .object({
    catalog: filePath.optional().describe("SQLite run catalog (default: catalog.db in stateDir)"),
    rules: monitoringRulesSchema.default(monitoringRulesSchema.parse({})).describe("what is a problem"),
    alerts: alertsSchema.default(alertsSchema.parse({})).describe("where problems are sent"),
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
