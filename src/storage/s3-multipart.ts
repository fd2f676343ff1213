// Multipart uploads: parts cut from the source without copying where possible, `concurrency` of
// them in flight. A failed or aborted upload is aborted on the server, so nothing is committed; an
// abort the server could not be reached for is remembered and retried.

import type { Readable } from "node:stream";
import {
  AbortMultipartUploadCommand,
  type CompletedPart,
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  type S3Client,
  UploadPartCommand,
} from "@aws-sdk/client-s3";
import { isAbortError } from "../util/error-kinds.ts";
import { storageError } from "./errors.ts";
import { httpStatus } from "./s3-errors.ts";
import { StorageErrorCode } from "./types.ts";

const MAX_PARTS = 10_000;

/** Marks an error of the caller's source stream (or an abort while reading it). */
export class SourceFailure extends Error {
  constructor(cause: unknown) {
    super("source failed", { cause });
  }
}

/** Cuts a stream into parts of exactly `size` bytes (the last may be shorter); one copy per byte. */
export class PartReader {
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

/** The bucket uploads go to, and how its errors are reported. */
export interface UploadTarget {
  client: S3Client;
  bucket: string;
  partSize: number;
  concurrency: number;
  objectKey(key: string): string;
  mapError(error: unknown, operation: string, key: string): unknown;
}

export class MultipartUploads {
  private readonly t: UploadTarget;
  /** Multipart uploads that failed and could not be aborted yet (server unreachable). */
  private readonly pendingAborts = new Map<string, string>();

  constructor(target: UploadTarget) {
    this.t = target;
  }

  /**
   * Uploads `buffered`, then `nextPart()` until it returns undefined, `concurrency` parts at a time;
   * `beforeComplete` may refuse the upload before it is completed. Returns the object's version.
   */
  async upload(
    key: string,
    parts: { buffered: Buffer[]; next: () => Promise<Buffer | undefined> },
    write: { parameters: Record<string, unknown>; conditional: { IfNoneMatch?: string } },
    o: { signal?: AbortSignal | undefined; beforeComplete?: (() => Promise<void>) | undefined },
  ): Promise<{ size: number; versionId: string | undefined }> {
    const { signal } = o;
    const objectKey = this.t.objectKey(key);
    let uploadId: string;
    try {
      const created = await this.t.client.send(
        new CreateMultipartUploadCommand({
          Bucket: this.t.bucket,
          Key: objectKey,
          ContentType: "application/octet-stream",
          ...write.parameters,
        }),
        signal ? { abortSignal: signal } : {},
      );
      if (!created.UploadId) throw new Error("the server returned no UploadId");
      uploadId = created.UploadId;
    } catch (error) {
      throw this.t.mapError(error, "put", key);
    }
    // Aborts the part uploads in flight when one fails or the caller aborts.
    const uploads = new AbortController();
    const onAbort = () => uploads.abort(signal?.reason);
    signal?.addEventListener("abort", onAbort, { once: true });
    const inFlight = new Set<Promise<void>>();
    const completed: CompletedPart[] = [];
    let failure: unknown;
    let size = 0;
    try {
      for (let number = 1; ; number++) {
        const body = parts.buffered.shift() ?? (await parts.next());
        if (!body) break;
        if (number > MAX_PARTS) {
          throw storageError(
            StorageErrorCode.io,
            `${key} is larger than ${MAX_PARTS} parts of ${this.t.partSize} bytes (S3's limit)`,
            { hint: "raise partSize for this storage" },
          );
        }
        size += body.length;
        const upload = this.t.client
          .send(
            new UploadPartCommand({
              Bucket: this.t.bucket,
              Key: objectKey,
              UploadId: uploadId,
              PartNumber: number,
              Body: body,
              ContentLength: body.length,
            }),
            { abortSignal: uploads.signal },
          )
          .then(
            (result) => {
              completed.push({ PartNumber: number, ETag: result.ETag });
            },
            (error: unknown) => {
              failure ??= error;
              uploads.abort(error);
            },
          )
          .finally(() => inFlight.delete(upload));
        inFlight.add(upload);
        // Never more than `concurrency` parts in memory besides the one being read.
        while (inFlight.size >= this.t.concurrency && failure === undefined) await Promise.race(inFlight);
        if (failure !== undefined) throw failure;
        signal?.throwIfAborted();
      }
      await Promise.all(inFlight);
      if (failure !== undefined) throw failure;
      signal?.throwIfAborted();
      await o.beforeComplete?.();
      completed.sort((a, b) => (a.PartNumber ?? 0) - (b.PartNumber ?? 0));
      const done = await this.t.client.send(
        new CompleteMultipartUploadCommand({
          Bucket: this.t.bucket,
          Key: objectKey,
          UploadId: uploadId,
          MultipartUpload: { Parts: completed },
          ...write.conditional,
        }),
        signal ? { abortSignal: signal } : {},
      );
      return { size, versionId: done.VersionId };
    } catch (error) {
      uploads.abort(error);
      await Promise.allSettled(inFlight);
      await this.abort(objectKey, uploadId);
      if (error instanceof SourceFailure || isAbortError(error) || error === signal?.reason) throw error;
      throw this.t.mapError(error, "put", key);
    } finally {
      signal?.removeEventListener("abort", onAbort);
    }
  }

  /** Aborts a multipart upload (its parts are deleted); remembered for later if that fails. */
  async abort(objectKey: string, uploadId: string): Promise<void> {
    try {
      await this.t.client.send(
        new AbortMultipartUploadCommand({ Bucket: this.t.bucket, Key: objectKey, UploadId: uploadId }),
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

  async retryPendingAborts(): Promise<void> {
    for (const [uploadId, objectKey] of [...this.pendingAborts]) await this.abort(objectKey, uploadId);
  }
}
