// The S3 SDK client of a storage: its options checked first, HTTPS trusting only `caFile` when
// one is given, keep-alive sockets enough for `concurrency` parts in flight.
import { readFileSync } from "node:fs";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { S3Client } from "@aws-sdk/client-s3";
import type { fromNodeProviderChain } from "@aws-sdk/credential-providers";
import { messageOf } from "../util/error-kinds.ts";
import { RemoteStorageErrorCode, storageError } from "./errors.ts";
import { readS3Credentials, type S3Credentials } from "./s3-credentials.ts";
import { endpointProblem } from "./s3-errors.ts";

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10 000 of them. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
export const DEFAULT_PART_SIZE = 16 * MiB;
export const DEFAULT_CONCURRENCY = 4;

export type S3ServerSideEncryption = { mode: "AES256" } | { mode: "aws:kms"; kmsKeyId?: string };

export interface S3ObjectLock {
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** Every object is retained this many days after it was written. */
  retainDays: number;
}

export interface S3StorageOptions {
  bucket: string;
  /** Default "us-east-1". */
  region?: string;
  /** e.g. "https://s3.example.net:9000"; default: AWS for the region. */
  endpoint?: string;
  /** Key prefix inside the bucket, e.g. "strongbox/prod/" (a "/" is added when missing). */
  prefix?: string;
  /** Path-style URLs (https://host/bucket/key), as most non-AWS servers want (default false). */
  forcePathStyle?: boolean;
  /**
   * File (mode 0600) with access_key_id and secret_access_key. Without it, the AWS SDK's default
   * chain: environment, shared files (`profile`), web identity, container and instance metadata.
   */
  credentialsFile?: string;
  /** The shared-files profile the default chain reads (default: $AWS_PROFILE, else "default"). */
  profile?: string;
  /** PEM file of the CA(s) that signed the server's certificate; replaces the system CAs. */
  caFile?: string;
  /** Accept an http:// endpoint (no TLS). Default false. */
  allowInsecureHttp?: boolean;
  serverSideEncryption?: S3ServerSideEncryption;
  /** Object Lock retention for every object written (the bucket must have Object Lock enabled). */
  objectLock?: S3ObjectLock;
  /** Bytes per multipart part (default 16 MiB; 5 MiB to 5 GiB). */
  partSize?: number;
  /** Parts uploaded in parallel per put (default 4). */
  concurrency?: number;
  /**
   * Use `If-None-Match: *` for ifAbsent puts (default true). Turn off only for a server that rejects
   * the header; then ifAbsent falls back to a check before the write, which two writers can race.
   */
  conditionalWrites?: boolean;
  /** Check at open that the bucket exists and the credentials work (default true). */
  verify?: boolean;
  /** Attempts per HTTP request inside the SDK, for transient errors (default 3). */
  maxAttempts?: number;
  /** Give up on a request whose socket stays idle this long (default 120 s). */
  requestTimeoutMs?: number;
}

type AwsCredentialIdentityProvider = ReturnType<typeof fromNodeProviderChain>;

/** Where a storage's credentials come from, as error messages name it. */
export function credentialsSource(o: Pick<S3StorageOptions, "credentialsFile" | "profile">): string {
  if (o.credentialsFile) return o.credentialsFile;
  return `the AWS default chain${o.profile ? ` (profile ${o.profile})` : ""}`;
}

/**
 * The AWS SDK's default provider chain, as the aws CLI finds credentials: AWS_ACCESS_KEY_ID…,
 * the shared files (AWS_PROFILE or \`profile\`), SSO, web identity (AWS_WEB_IDENTITY_TOKEN_FILE),
 * the container and the EC2 instance metadata. Found once, refreshed before they expire. Finding
 * none is a configuration error naming the places looked at.
 */
async function defaultChain(o: S3StorageOptions): Promise<AwsCredentialIdentityProvider> {
  const { fromNodeProviderChain } = await import("@aws-sdk/credential-providers");
  const chain = fromNodeProviderChain(o.profile ? { profile: o.profile } : {});
  return async (identityProperties) => {
    try {
      return await chain(identityProperties);
    } catch (error) {
      throw storageError(
        RemoteStorageErrorCode.auth,
        `no S3 credentials for bucket ${o.bucket} in ${credentialsSource(o)}: ${messageOf(error).split("\n")[0]}`,
        {
          cause: error,
          hint: "set credentialsFile, or give this account AWS credentials: AWS_PROFILE and ~/.aws/credentials, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, web identity, or an instance role",
        },
      );
    }
  };
}

const QUIET = { trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/** Checks the options, reads the credentials and the CA file, and makes the client. */
export async function createS3Client(options: S3StorageOptions): Promise<S3Client> {
  const partSize = options.partSize ?? DEFAULT_PART_SIZE;
  if (!(Number.isSafeInteger(partSize) && partSize >= MIN_PART_SIZE && partSize <= MAX_PART_SIZE)) {
    throw storageError(RemoteStorageErrorCode.config, `S3 partSize ${partSize} is outside 5 MiB…5 GiB`);
  }
  const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
  if (!(Number.isSafeInteger(concurrency) && concurrency >= 1 && concurrency <= 64)) {
    throw storageError(RemoteStorageErrorCode.config, `S3 concurrency ${concurrency} is outside 1…64`);
  }
  if (options.objectLock && !(options.objectLock.retainDays >= 1)) {
    throw storageError(RemoteStorageErrorCode.config, "S3 objectLock.retainDays must be at least 1");
  }
  if (options.endpoint) {
    const problem = endpointProblem(options.endpoint, options.allowInsecureHttp ?? false);
    if (problem) throw problem;
  }
  const credentials: S3Credentials | AwsCredentialIdentityProvider = options.credentialsFile
    ? await readS3Credentials(options.credentialsFile)
    : await defaultChain(options);
  let ca: Buffer | undefined;
  if (options.caFile) {
    try {
      ca = readFileSync(options.caFile);
    } catch (error) {
      throw storageError(
        RemoteStorageErrorCode.config,
        `cannot read caFile ${options.caFile}: ${messageOf(error)}`,
        {
          cause: error,
        },
      );
    }
  }
  const sockets = Math.max(16, concurrency * 2);
  const client = new S3Client({
    region: options.region ?? "us-east-1",
    ...(options.endpoint ? { endpoint: options.endpoint } : {}),
    forcePathStyle: options.forcePathStyle ?? false,
    credentials,
    maxAttempts: options.maxAttempts ?? 3,
    // No CRC32 of every byte in JavaScript, and stream bodies sent as they are read (signed
    // UNSIGNED-PAYLOAD; TLS protects them in transit, the manifests' SHA-256 at rest). With Object
    // Lock, S3 requires a checksum on every PUT: the SDK's default then.
    requestChecksumCalculation: options.objectLock ? "WHEN_SUPPORTED" : "WHEN_REQUIRED",
    // The SDK does not retry a streamed PUT (the storage core retries it from a reopened file)
    // and says so on the console unless it has a logger: one that keeps quiet, as errors are
    // reported once, by the command.
    logger: QUIET,
    requestHandler: {
      httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: sockets, ...(ca ? { ca } : {}) }),
      httpAgent: new HttpAgent({ keepAlive: true, maxSockets: sockets }),
      connectionTimeout: 15_000,
      requestTimeout: options.requestTimeoutMs ?? 120_000,
    },
  });
  return client;
}
