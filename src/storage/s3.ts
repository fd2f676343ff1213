import { addAbortSignal, pipeline, Readable, Transform } from "node:stream";
import {
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
  type S3Client,
  type ServerSideEncryption,
} from "@aws-sdk/client-s3";
import { streamed } from "../util/gc.ts";
import { existsError, RemoteStorageErrorCode, storageError } from "./errors.ts";
import {
  createS3Client,
  credentialsSource,
  DEFAULT_CONCURRENCY,
  DEFAULT_PART_SIZE,
  type S3StorageOptions,
} from "./s3-client.ts";
import { errorName, httpStatus, mapS3Error } from "./s3-errors.ts";
import { MultipartUploads, type PartBody, PartReader, SourceFailure } from "./s3-multipart.ts";
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

/**
 * Objects of known length up to this size go in one streamed PUT; larger ones in parts, so that a
 * failure re-sends one part, not the object (S3 takes up to 5 GiB in one PUT).
 */
const MAX_STREAMED_PUT = 1024 * 1024 * 1024;

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
  private readonly uploads: MultipartUploads;

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
    this.uploads = new MultipartUploads({
      client,
      bucket: this.bucket,
      partSize: this.partSize,
      concurrency: this.concurrency,
      objectKey: (key) => this.objectKey(key),
      mapError: (error, operation, key) => this.mapError(error, operation, key),
    });
    const where = options.endpoint ? new URL(options.endpoint).host : `s3.${options.region ?? "us-east-1"}`;
    this.description = `s3://${options.bucket}/${this.prefix}${options.endpoint ? ` at ${where}` : ""}`;
  }

  /** Validates the options, reads the credentials file and (by default) checks the bucket. */
  static async open(options: S3StorageOptions): Promise<S3Storage> {
    const client = await createS3Client(options);
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
    await this.uploads.retryPendingAborts();
    // Cheap early refusal; If-None-Match on the write is what decides a race.
    if (ifAbsent && (await this.stat(key, options))) throw existsError(this.description, key);
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
    if (options.size !== undefined && !this.options.objectLock && options.size <= MAX_STREAMED_PUT)
      return this.putStreamed(key, source, options.size, ifAbsent, signal);
    const reader = new PartReader(source, this.partSize);
    // Part buffers come from the storage's pool (BufferPool); held here until handed over.
    const pool = this.uploads.pool;
    const held: Buffer[] = [];
    let sent = false;
    try {
      held.push(await pool.acquire(signal));
      const first = (await reader.read(held[0]!, true))!;
      if (first.length < this.partSize) {
        const r = await this.putSingle(key, first, ifAbsent, signal);
        sent = true;
        return r;
      }
      held.push(await pool.acquire(signal));
      const second = await reader.read(held[1]!);
      if (!second) {
        const r = await this.putSingle(key, first, ifAbsent, signal);
        sent = true;
        return r;
      }
      const buffered = [
        { body: first, buffer: held[0] },
        { body: second, buffer: held[1] },
      ];
      held.length = 0; // the upload gives them back as their parts are stored
      return await this.putMultipart(key, buffered, (into) => reader.read(into), ifAbsent, signal);
    } catch (error) {
      await reader.cancel();
      if (error instanceof SourceFailure) throw error.cause; // the caller's stream, or an abort
      throw error;
    } finally {
      // After a failed request the buffer may still be referenced: drop it, return only the slot.
      for (const buffer of held) pool.release(sent ? buffer : undefined);
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
    await this.uploads.retryPendingAborts();
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
        await this.uploads.abort(upload.Key, upload.UploadId);
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

  /** One PutObject of `length` bytes, with the storage's retention and, if asked, create-if-absent. */
  private putObject(
    key: string,
    body: Buffer | Readable,
    length: number,
    ifAbsent: boolean,
  ): PutObjectCommand {
    return new PutObjectCommand({
      Bucket: this.bucket,
      Key: this.objectKey(key),
      Body: body,
      ContentLength: length,
      ContentType: "application/octet-stream",
      ...this.writeParameters(this.retainUntil()),
      ...this.conditional(ifAbsent),
    });
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
        this.putObject(key, body, body.length, ifAbsent),
        signal ? { abortSignal: signal } : {},
      );
      return { size: body.length };
    } catch (error) {
      throw this.mapError(error, "put", key);
    }
  }

  /**
   * A stream of known length as one PUT, sent as it is read: no part buffers, and no SHA-256 of
   * the body by the SDK (a stream is signed UNSIGNED-PAYLOAD). Not with Object Lock, whose PUTs
   * need a checksum of the body up front (the SDK's CRC32 of a buffered part).
   */
  private async putStreamed(
    key: string,
    body: Readable,
    size: number,
    ifAbsent: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number }> {
    // Exactly `size` bytes or the put fails. A failing stream (too long, too short, or its own
    // error) aborts the request, so the server never completes an object from what it got.
    const stop = new AbortController();
    let sent = 0;
    const mismatch = () =>
      storageError(
        StorageErrorCode.io,
        `the data put to ${key} is not the ${size} bytes announced (${sent} or more)`,
      );
    // The last chunk is held back until the stream has ended at exactly `size` bytes: the server
    // never has the whole announced body of a stream that then runs longer or fails, so it can
    // never complete an object from it before the abort reaches it.
    let held: Buffer | undefined;
    const counted = new Transform({
      transform(chunk: Buffer, _e, cb) {
        sent += chunk.length;
        // Garbage once TLS has it (util/gc.ts): a young collection comes every few megabytes.
        streamed(chunk.length);
        if (sent > size) return cb(mismatch());
        const previous = held;
        held = chunk;
        cb(null, previous);
      },
      flush(cb) {
        if (sent !== size) return cb(mismatch());
        if (held) this.push(held);
        cb();
      },
    });
    const sending = pipeline(body, counted, (e) => {
      if (e) stop.abort(e);
    });
    try {
      await this.client.send(this.putObject(key, sending, size, ifAbsent), {
        abortSignal: signal ? AbortSignal.any([signal, stop.signal]) : stop.signal,
      });
    } catch (error) {
      sending.destroy();
      // The caller's stream failing (or an abort) is the error, not the request it broke off.
      if (signal?.aborted) throw signal.reason;
      if (stop.signal.aborted) throw stop.signal.reason;
      throw this.mapError(error, "put", key);
    }
    // Settled before its body was read to the end would be a bug: never a short object unnoticed.
    if (sent !== size) throw mismatch();
    return { size };
  }

  private async putMultipart(
    key: string,
    buffered: PartBody[],
    next: (into: Buffer) => Promise<Buffer | undefined>,
    ifAbsent: boolean,
    signal: AbortSignal | undefined,
  ): Promise<{ size: number }> {
    const retainUntil = this.retainUntil();
    const { size, versionId } = await this.uploads.upload(
      key,
      { buffered, next },
      { parameters: this.writeParameters(retainUntil), conditional: this.conditional(ifAbsent) },
      {
        signal,
        // Servers that ignore If-None-Match on completion (Ceph RGW before Reef) still get this check.
        beforeComplete: ifAbsent
          ? async () => {
              if (await this.stat(key)) throw existsError(this.description, key);
            }
          : undefined,
      },
    );
    // Only the retention fix-up can fail now: there is no upload left to abort.
    if (retainUntil) await this.ensureRetention(key, versionId, retainUntil);
    return { size };
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

  private mapError(error: unknown, operation: string, key: string): unknown {
    return mapS3Error(
      {
        description: this.description,
        bucket: this.bucket,
        endpoint: this.options.endpoint,
        credentials: credentialsSource(this.options),
        objectLock: this.options.objectLock !== undefined,
      },
      error,
      operation,
      key,
    );
  }
}
