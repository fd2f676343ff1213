// strongbox.yaml, repositories: where backups are stored (local, SFTP, S3) and how.
import * as z from "zod";
import { duration, filePath, requireHostKey, sizeString, sshClientFields } from "./schema-common.ts";

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
