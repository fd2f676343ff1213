// strongbox.yaml, monitoring: the rules that raise problems and the channels alerts go to.
import * as z from "zod";
import { duration, filePath } from "./schema-common.ts";

export const durationOrOff = z
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
