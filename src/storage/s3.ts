// S3-compatible backend (@aws-sdk/client-s3). An object up to one part (partSize) is one PutObject;
// a larger one is a multipart upload whose parts go up `concurrency` at a time. Memory per put is
// bounded and known up front: (concurrency + 1) × partSize, the parts in flight plus the one being
// filled from the source (default 5 × 16 MiB = 80 MiB). A failed or aborted multipart upload is
// aborted on the server, so nothing is committed; if the server cannot be reached to abort it, the
// abort is retried before the next put (and `cleanupIncomplete` removes those of crashed runs).
//
// Transport: HTTPS with certificate verification; `caFile` trusts a private CA (only that CA). A
// plain http:// endpoint is refused unless `allowInsecureHttp` is set.
import { readFileSync } from "node:fs";
import { Agent as HttpAgent } from "node:http";
import { Agent as HttpsAgent } from "node:https";
import { addAbortSignal, Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  DeleteObjectCommand,
  GetObjectCommand,
  GetObjectLockConfigurationCommand,
  GetObjectRetentionCommand,
  HeadObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  type ListObjectsV2CommandOutput,
  type ObjectLockMode,
  PutObjectCommand,
  PutObjectRetentionCommand,
  S3Client,
  type ServerSideEncryption,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { StrongboxError } from "../errors.ts";
import { isAbortError, messageOf, NETWORK_ERRNO } from "../util/error-kinds.ts";
import { RemoteStorageErrorCode, storageError } from "./remote-errors.ts";
import { readS3Credentials, type S3Credentials } from "./s3-credentials.ts";
import {
  type GetOptions,
  type ObjectInfo,
  type OperationOptions,
  type PutOptions,
  type Storage,
  type StorageCapabilities,
  StorageErrorCode,
  validateKey,
  validatePrefix,
  validateRange,
} from "./types.ts";

const MiB = 1024 * 1024;
/** S3's limits: parts of 5 MiB to 5 GiB (the last may be smaller), at most 10 000 of them. */
export const MIN_PART_SIZE = 5 * MiB;
export const MAX_PART_SIZE = 5 * 1024 * MiB;
const MAX_PARTS = 10_000;
const DEFAULT_PART_SIZE = 16 * MiB;
const DEFAULT_CONCURRENCY = 4;

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
  /** File (mode 0600) with access_key_id and secret_access_key. */
  credentialsFile: string;
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

/** Marks an error of the caller's source stream (or an abort while reading it). */
class SourceFailure extends Error {
  constructor(cause: unknown) {
    super("source failed", { cause });
  }
}

/** Cuts a stream into parts of exactly `size` bytes (the last may be shorter); one copy per byte. */
class PartReader {
  private readonly iterator: AsyncIterator<unknown>;
  private readonly size: number;
  private leftover: Buffer | undefined;
  private done = false;

  constructor(source: Readable, size: number) {
    this.iterator = source[Symbol.asyncIterator]();
    this.size = size;
  }

  /** The next part, or undefined at the end. The first call returns a (maybe empty) part. */
  async read(first = false): Promise<Buffer | undefined> {
    if (this.done && !this.leftover) return first ? Buffer.alloc(0) : undefined;
    let part: Buffer | undefined;
    let filled = 0;
    const take = (chunk: Buffer) => {
      if (!part && chunk.length >= this.size) {
        // A chunk at least a whole part long: no copy.
        this.leftover = chunk.length > this.size ? chunk.subarray(this.size) : undefined;
        part = chunk.subarray(0, this.size);
        filled = this.size;
        return;
      }
      part ??= Buffer.allocUnsafe(this.size);
      const n = Math.min(chunk.length, this.size - filled);
      chunk.copy(part, filled, 0, n);
      filled += n;
      this.leftover = n < chunk.length ? chunk.subarray(n) : undefined;
    };
    if (this.leftover) {
      const chunk = this.leftover;
      this.leftover = undefined;
      take(chunk);
    }
    while (filled < this.size && !this.done) {
      let next: IteratorResult<unknown>;
      try {
        next = await this.iterator.next();
      } catch (error) {
        throw new SourceFailure(error);
      }
      if (next.done) {
        this.done = true;
        break;
      }
      const value = next.value;
      const chunk = Buffer.isBuffer(value)
        ? value
        : value instanceof Uint8Array
          ? Buffer.from(value.buffer, value.byteOffset, value.byteLength)
          : Buffer.from(String(value));
      if (chunk.length > 0) take(chunk);
    }
    if (!part) return first ? Buffer.alloc(0) : undefined;
    return filled < part.length ? part.subarray(0, filled) : part;
  }

  /** Stops reading: destroys the source. */
  async cancel(): Promise<void> {
    await this.iterator.return?.().catch(() => {});
  }
}

function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

function errorName(error: unknown): string {
  const e = error as { name?: unknown; Code?: unknown } | undefined;
  return typeof e?.Code === "string" ? e.Code : typeof e?.name === "string" ? e.name : "";
}

/** Beyond the errno codes of a dropped connection: what the SDK's HTTP clients say of one. */
const NETWORK_CODES = new Set([
  ...NETWORK_ERRNO,
  "ENOTFOUND",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);

const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "EPROTO",
]);

const AUTH_NAMES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "InvalidSecurity",
]);

const TRANSIENT_NAMES = new Set([
  "SlowDown",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "TimeoutError",
  "RequestTimeoutException",
  "OperationAborted",
  "ConditionalRequestConflict",
]);

function endpointProblem(endpoint: string, allowInsecureHttp: boolean): StrongboxError | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return storageError(
      RemoteStorageErrorCode.config,
      `S3 endpoint ${JSON.stringify(endpoint)} is not a URL`,
      {
        hint: 'write it as "https://host[:port]"',
      },
    );
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    if (allowInsecureHttp) return undefined;
    return storageError(
      RemoteStorageErrorCode.insecure,
      `refusing the plain http:// S3 endpoint ${endpoint}: request signatures, object names and backup data would cross the network unprotected and could be altered or dropped unnoticed`,
      {
        hint: "use https:// (with caFile for a private CA); only for a server on loopback or a trusted network, set allowInsecureHttp: true",
      },
    );
  }
  return storageError(RemoteStorageErrorCode.config, `S3 endpoint ${endpoint} must start with https://`);
}

export class S3Storage implements Storage {
  readonly description: string;
  readonly capabilities: StorageCapabilities;
  /** The SDK client (tests add request-capturing middleware to it). */
  readonly client: S3Client;
  readonly bucket: string;
  /** Key prefix inside the bucket ("" or ending in "/"). */
  readonly prefix: string;
  readonly partSize: number;
  readonly concurrency: number;
  private readonly options: S3StorageOptions;
  /** Multipart uploads that failed and could not be aborted yet (server unreachable). */
  private readonly pendingAborts = new Map<string, string>();

  private constructor(options: S3StorageOptions, client: S3Client) {
    this.options = options;
    this.client = client;
    this.bucket = options.bucket;
    const prefix = (options.prefix ?? "").replace(/^\/+/, "");
    this.prefix = prefix === "" || prefix.endsWith("/") ? prefix : `${prefix}/`;
    this.partSize = options.partSize ?? DEFAULT_PART_SIZE;
    this.concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    this.capabilities = {
      atomicRename: false,
      appendOnly: false,
      conditionalCreate: options.conditionalWrites ?? true,
    };
    const where = options.endpoint ? new URL(options.endpoint).host : `s3.${options.region ?? "us-east-1"}`;
    this.description = `s3://${options.bucket}/${this.prefix}${options.endpoint ? ` at ${where}` : ""}`;
  }

  /** Validates the options, reads the credentials file and (by default) checks the bucket. */
  static async open(options: S3StorageOptions): Promise<S3Storage> {
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
    const credentials: S3Credentials = await readS3Credentials(options.credentialsFile);
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
      requestHandler: {
        httpsAgent: new HttpsAgent({ keepAlive: true, maxSockets: sockets, ...(ca ? { ca } : {}) }),
        httpAgent: new HttpAgent({ keepAlive: true, maxSockets: sockets }),
        connectionTimeout: 15_000,
        requestTimeout: options.requestTimeoutMs ?? 120_000,
      },
    });
    const storage = new S3Storage(options, client);
    if (options.verify ?? true) {
      try {
        await storage.verifyBucket();
      } catch (error) {
        client.destroy();
        throw error;
      }
    }
    return storage;
  }

  async put(key: string, data: Readable | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const { signal, ifAbsent = false } = options;
    signal?.throwIfAborted();
    await this.retryPendingAborts();
    // Cheap early refusal; If-None-Match on the write is what decides a race.
    if (ifAbsent && (await this.stat(key, options))) throw this.exists(key);
    if (data instanceof Uint8Array) {
      const body = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
      if (body.length <= this.partSize) return this.putSingle(key, body, ifAbsent, signal);
      let offset = 0;
      return this.putMultipart(
        key,
        [],
        async () => {
          if (offset >= body.length) return undefined;
          const part = body.subarray(offset, offset + this.partSize);
          offset += part.length;
          return part;
        },
        ifAbsent,
        signal,
      );
    }
    const source = signal ? addAbortSignal(signal, data) : data;
    const reader = new PartReader(source, this.partSize);
    try {
      const first = (await reader.read(true))!;
      if (first.length < this.partSize) return await this.putSingle(key, first, ifAbsent, signal);
      const second = await reader.read();
      if (!second) return await this.putSingle(key, first, ifAbsent, signal);
      return await this.putMultipart(key, [first, second], () => reader.read(), ifAbsent, signal);
    } catch (error) {
      await reader.cancel();
      if (error instanceof SourceFailure) throw error.cause; // the caller's stream, or an abort
      throw error;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    validateRange(key, options);
    const { signal, start, end } = options;
    signal?.throwIfAborted();
    const range =
      start === undefined && end === undefined
        ? undefined
        : `bytes=${start ?? 0}-${end === undefined ? "" : end}`;
    try {
      const response = await this.client.send(
        new GetObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          ...(range ? { Range: range } : {}),
        }),
        signal ? { abortSignal: signal } : {},
      );
      const body = response.Body as Readable | undefined;
      if (!body) return Readable.from([]);
      return signal ? addAbortSignal(signal, body) : body;
    } catch (error) {
      // A range starting at or past the end: the contract says empty, S3 says 416.
      if (range && (httpStatus(error) === 416 || errorName(error) === "InvalidRange")) {
        if (await this.stat(key, options)) return Readable.from([]);
      }
      throw this.mapError(error, "get", key);
    }
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key);
    options.signal?.throwIfAborted();
    try {
      const head = await this.client.send(
        new HeadObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
      return { key, size: head.ContentLength ?? 0, modified: head.LastModified ?? new Date(0) };
    } catch (error) {
      if (httpStatus(error) === 404 && errorName(error) !== "NoSuchBucket") return undefined;
      throw this.mapError(error, "stat", key);
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    let token: string | undefined;
    do {
      options.signal?.throwIfAborted();
      let page: ListObjectsV2CommandOutput;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: this.prefix + prefix,
            ...(token ? { ContinuationToken: token } : {}),
          }),
          options.signal ? { abortSignal: options.signal } : {},
        );
      } catch (error) {
        throw this.mapError(error, "list", prefix);
      }
      for (const item of page.Contents ?? []) {
        if (!item.Key?.startsWith(this.prefix)) continue;
        const key = item.Key.slice(this.prefix.length);
        try {
          validateKey(key);
        } catch {
          continue; // a name no key could produce ("folder/" markers, foreign objects): not ours
        }
        yield { key, size: item.Size ?? 0, modified: item.LastModified ?? new Date(0) };
      }
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key);
    options.signal?.throwIfAborted();
    try {
      // On a versioned (Object Lock) bucket this adds a delete marker; locked versions stay.
      await this.client.send(
        new DeleteObjectCommand({ Bucket: this.bucket, Key: this.objectKey(key) }),
        options.signal ? { abortSignal: options.signal } : {},
      );
    } catch (error) {
      if (httpStatus(error) === 404 && errorName(error) !== "NoSuchBucket") return;
      throw this.mapError(error, "delete", key);
    }
  }

  async close(): Promise<void> {
    await this.retryPendingAborts();
    this.client.destroy();
  }

  /**
   * Aborts multipart uploads under the prefix started more than `olderThanMs` ago (left by crashed
   * runs; a bucket lifecycle rule "AbortIncompleteMultipartUpload" does the same server-side).
   * Returns how many were aborted.
   */
  async cleanupIncomplete(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let aborted = 0;
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    for (;;) {
      const page = await this.client
        .send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: this.prefix,
            ...(keyMarker ? { KeyMarker: keyMarker } : {}),
            ...(uploadIdMarker ? { UploadIdMarker: uploadIdMarker } : {}),
          }),
        )
        .catch((error: unknown) => {
          throw this.mapError(error, "cleanup", "");
        });
      for (const upload of page.Uploads ?? []) {
        if (!upload.Key || !upload.UploadId) continue;
        if ((upload.Initiated?.getTime() ?? 0) >= cutoff) continue;
        await this.abortUpload(upload.Key, upload.UploadId);
        aborted++;
      }
      if (!page.IsTruncated) return aborted;
      keyMarker = page.NextKeyMarker;
      uploadIdMarker = page.NextUploadIdMarker;
    }
  }

  private objectKey(key: string): string {
    return this.prefix + key;
  }

  /** Headers every write carries: server-side encryption and Object Lock retention (until `now + retainDays`). */
  private writeParameters(retainUntil: Date | undefined): {
    ServerSideEncryption?: ServerSideEncryption;
    SSEKMSKeyId?: string;
    ObjectLockMode?: ObjectLockMode;
    ObjectLockRetainUntilDate?: Date;
  } {
    const sse = this.options.serverSideEncryption;
    const lock = this.options.objectLock;
    return {
      ...(sse ? { ServerSideEncryption: sse.mode } : {}),
      ...(sse?.mode === "aws:kms" && sse.kmsKeyId ? { SSEKMSKeyId: sse.kmsKeyId } : {}),
      ...(lock && retainUntil ? { ObjectLockMode: lock.mode, ObjectLockRetainUntilDate: retainUntil } : {}),
    };
  }

  private retainUntil(): Date | undefined {
    const lock = this.options.objectLock;
    return lock ? new Date(Date.now() + lock.retainDays * 86_400_000) : undefined;
  }

  /**
   * Some servers (Ceph RGW 16) ignore the Object Lock headers of CreateMultipartUpload: check the
   * finished object and set its retention when it has none. Credentials that may not read the
   * retention are trusted to have had it applied.
   */
  private async ensureRetention(key: string, versionId: string | undefined, until: Date): Promise<void> {
    const lock = this.options.objectLock;
    if (!lock) return;
    const target = {
      Bucket: this.bucket,
      Key: this.objectKey(key),
      ...(versionId ? { VersionId: versionId } : {}),
    };
    try {
      const current = await this.client.send(new GetObjectRetentionCommand(target));
      if (current.Retention?.Mode && current.Retention.RetainUntilDate) return;
    } catch (error) {
      if (httpStatus(error) === 403) return;
      if (httpStatus(error) !== 404) throw this.mapError(error, "put", key);
    }
    try {
      await this.client.send(
        new PutObjectRetentionCommand({ ...target, Retention: { Mode: lock.mode, RetainUntilDate: until } }),
      );
    } catch (error) {
      throw this.mapError(error, "put", key);
    }
  }

  private conditional(ifAbsent: boolean): { IfNoneMatch?: string } {
    return ifAbsent && this.capabilities.conditionalCreate ? { IfNoneMatch: "*" } : {};
  }

  private async putSingle(
    key: string,
    body: Buffer,
    ifAbsent: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number }> {
    signal?.throwIfAborted();
    try {
      await this.client.send(
        new PutObjectCommand({
          Bucket: this.bucket,
          Key: this.objectKey(key),
          Body: body,
          ContentLength: body.length,
          ContentType: "application/octet-stream",
          ...this.writeParameters(this.retainUntil()),
          ...this.conditional(ifAbsent),
        }),
        signal ? { abortSignal: signal } : {},
      );
      return { size: body.length };
    } catch (error) {
      throw this.mapError(error, "put", key);
    }
  }

  private async putMultipart(
    key: string,
    buffered: Buffer[],
    nextPart: () => Promise<Buffer | undefined>,
    ifAbsent: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number }> {
    const objectKey = this.objectKey(key);
    const retainUntil = this.retainUntil();
    let uploadId: string;
    try {
      const created = await this.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          ContentType: "application/octet-stream",
          ...this.writeParameters(retainUntil),
        }),
        signal ? { abortSignal: signal } : {},
      );
      if (!created.UploadId) throw new Error("the server returned no UploadId");
      uploadId = created.UploadId;
    } catch (error) {
      throw this.mapError(error, "put", key);
    }
    // Aborts the part uploads in flight when one fails or the caller aborts.
    const parts = new AbortController();
    const onAbort = () => parts.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const inFlight = new Set<Promise<void>>();
    const completed: CompletedPart[] = [];
    let failure: unknown;
    let size = 0;
    let committed = false;
    try {
      for (let number = 1; ; number++) {
        const body = buffered.shift() ?? (await nextPart());
        if (!body) break;
        if (number > MAX_PARTS) {
          throw storageError(
            StorageErrorCode.io,
            `${key} is larger than ${MAX_PARTS} parts of ${this.partSize} bytes (S3's limit)`,
            { hint: "raise partSize for this storage" },
          );
        }
        size += body.length;
        const upload = this.client
          .send(
            new UploadPartCommand({
              Bucket: this.bucket,
              Key: objectKey,
              UploadId: uploadId,
              PartNumber: number,
              Body: body,
              ContentLength: body.length,
            }),
            { abortSignal: parts.signal },
          )
          .then(
            (result) => {
              completed.push({ PartNumber: number, ETag: result.ETag });
            },
            (error: unknown) => {
              failure ??= error;
              parts.abort(error);
            },
          )
          .finally(() => inFlight.delete(upload));
        inFlight.add(upload);
        // Never more than `concurrency` parts in memory besides the one being read.
        while (inFlight.size >= this.concurrency && failure === undefined) await Promise.race(inFlight);
        if (failure !== undefined) throw failure;
        signal?.throwIfAborted();
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure;
      signal?.throwIfAborted();
      // Servers that ignore If-None-Match on completion (Ceph RGW before Reef) still get this check.
      if (ifAbsent && (await this.stat(key))) throw this.exists(key);
      completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      const done = await this.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: completed },
          ...this.conditional(ifAbsent),
        }),
        signal ? { abortSignal: signal } : {},
      );
      committed = true;
      if (retainUntil) await this.ensureRetention(key, done.VersionId, retainUntil);
      return { size };
    } catch (error) {
      if (committed) throw error; // only the retention fix-up failed: there is no upload to abort
      parts.abort(error);
      await Promise.allSettled(inFlight);
      await this.abortUpload(objectKey, uploadId);
      if (error instanceof SourceFailure || isAbortError(error) || error === signal?.reason) throw error;
      throw this.mapError(error, "put", key);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Aborts a multipart upload (its parts are deleted); remembered for later if that fails. */
  private async abortUpload(objectKey: string, uploadId: string): Promise<void> {
    try {
      await this.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.bucket, Key: objectKey, UploadId: uploadId }),
      );
      this.pendingAborts.delete(uploadId);
    } catch (error) {
      if (httpStatus(error) === 404) {
        this.pendingAborts.delete(uploadId); // NoSuchUpload: already gone
      } else {
        this.pendingAborts.set(uploadId, objectKey);
      }
    }
  }

  private async retryPendingAborts(): Promise<void> {
    for (const [uploadId, objectKey] of [...this.pendingAborts]) await this.abortUpload(objectKey, uploadId);
  }

  /** A cheap request that tells apart a missing bucket, refused credentials and an unreachable server. */
  private async verifyBucket(): Promise<void> {
    try {
      await this.client.send(
        new ListObjectsV2Command({ Bucket: this.bucket, Prefix: this.prefix, MaxKeys: 1 }),
      );
    } catch (error) {
      throw this.mapError(error, "open", "");
    }
    if (!this.options.objectLock) return;
    try {
      const lock = await this.client.send(new GetObjectLockConfigurationCommand({ Bucket: this.bucket }));
      if (lock.ObjectLockConfiguration?.ObjectLockEnabled === "Enabled") return;
    } catch (error) {
      // Credentials that may not read the bucket's lock configuration: the first put will tell.
      if (httpStatus(error) === 403) return;
      if (httpStatus(error) !== 404) throw this.mapError(error, "open", "");
    }
    throw storageError(
      RemoteStorageErrorCode.config,
      `objectLock is configured but bucket ${this.bucket} does not have Object Lock enabled`,
      {
        hint: "Object Lock can only be turned on when a bucket is created (or, on AWS, with versioning on); create a new bucket with it",
      },
    );
  }

  private exists(key: string, cause?: unknown): StrongboxError {
    return storageError(StorageErrorCode.exists, `${key} already exists in ${this.description}`, {
      cause,
      details: { key },
    });
  }

  /** Turns an SDK or network error into a StrongboxError with a storage code. */
  private mapError(error: unknown, operation: string, key: string): unknown {
    if (error instanceof StrongboxError || isAbortError(error)) return error;
    const name = errorName(error);
    const status = httpStatus(error);
    const code = (error as { code?: unknown }).code;
    const where = `${operation} ${key || "/"} in ${this.description}`;
    const reason = name && name !== "Error" ? name : messageOf(error);
    const options = { cause: error, details: { key, operation, s3Error: name, httpStatus: status } };
    if (typeof code === "string" && TLS_CODES.has(code)) {
      return storageError(
        RemoteStorageErrorCode.tls,
        `TLS verification of the S3 endpoint failed: ${messageOf(error)} (${code})`,
        {
          ...options,
          hint: "if the server uses a private CA, set caFile to that CA's certificate (PEM)",
        },
      );
    }
    if (
      (typeof code === "string" && NETWORK_CODES.has(code)) ||
      TRANSIENT_NAMES.has(name) ||
      (status !== undefined && status >= 500) ||
      status === 409
    ) {
      return storageError(StorageErrorCode.unavailable, `temporary failure: ${where} (${reason})`, {
        ...options,
        hint: "the S3 server is unreachable or busy; the request is retried",
      });
    }
    if (name === "NoSuchBucket") {
      return storageError(
        RemoteStorageErrorCode.bucketMissing,
        `bucket ${this.bucket} does not exist${this.options.endpoint ? ` at ${this.options.endpoint}` : ""}`,
        {
          ...options,
          hint: "create it (with Object Lock enabled if you use objectLock), or check bucket, region, endpoint and forcePathStyle",
        },
      );
    }
    if (AUTH_NAMES.has(name)) {
      return storageError(
        RemoteStorageErrorCode.auth,
        `the S3 server refused the credentials from ${this.options.credentialsFile} (${name})`,
        {
          ...options,
          hint:
            name === "SignatureDoesNotMatch"
              ? "the secret access key is wrong"
              : "check the access key id, and that the key is active",
        },
      );
    }
    if (name === "PreconditionFailed" || status === 412) return this.exists(key, error);
    if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
      return storageError(StorageErrorCode.notFound, `${key} not found in ${this.description}`, options);
    }
    if (name === "QuotaExceeded" || name === "InsufficientStorage" || status === 507) {
      return storageError(StorageErrorCode.full, `storage is full: ${where} (${reason})`, {
        ...options,
        hint: "raise the bucket's or the account's quota, or prune",
      });
    }
    if (name === "AccessDenied" || name === "Forbidden" || status === 403) {
      return storageError(StorageErrorCode.permission, `permission denied: ${where}`, {
        ...options,
        hint: "the credentials may not do this here (append-only credentials refuse deletes by design; Object Lock refuses deleting locked versions)",
      });
    }
    if (name === "InvalidRequest" && this.options.objectLock) {
      return storageError(StorageErrorCode.io, `${where} failed: ${messageOf(error)}`, {
        ...options,
        hint: "is Object Lock enabled on the bucket?",
      });
    }
    return storageError(
      StorageErrorCode.io,
      `${where} failed: ${reason}${name && messageOf(error) !== name ? `: ${messageOf(error)}` : ""}`,
      options,
    );
  }
}
