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

/**
 * The part buffers of every upload of one storage together: at most `size` of `bytes` each, so
 * memory stays (concurrency + 1) × partSize however many puts overlap (a backup uploads a part
 * while it fills the next one). The buffers are reused, not left to the garbage collector: freed
 * part buffers that V8 collects only at its next full GC made the peak RSS of a backup to S3
 * two to three times the live data. A buffer is taken before it is filled and given back once
 * its upload succeeded; after a failure it is dropped (a cancelled request may still hold it) and
 * only its slot returns. Waiters are served in order.
 */
export class BufferPool {
  private free: number;
  private readonly bytes: number;
  private readonly spare: Buffer[] = [];
  private readonly waiting: { grant: () => void }[] = [];

  constructor(size: number, bytes: number) {
    this.free = size;
    this.bytes = bytes;
  }

  async acquire(signal?: AbortSignal): Promise<Buffer> {
    signal?.throwIfAborted();
    if (this.free > 0) {
      this.free--;
    } else {
      await new Promise<void>((resolve, reject) => {
        const onAbort = () => {
          const i = this.waiting.indexOf(waiter);
          if (i >= 0) this.waiting.splice(i, 1);
          reject(signal?.reason);
        };
        const waiter = {
          grant: () => {
            signal?.removeEventListener("abort", onAbort);
            resolve();
          },
        };
        signal?.addEventListener("abort", onAbort, { once: true });
        this.waiting.push(waiter);
      });
    }
    return this.spare.pop() ?? Buffer.allocUnsafe(this.bytes);
  }

  /** Gives a slot back, with its buffer for reuse, or `undefined` to drop the buffer. */
  release(buffer: Buffer | undefined): void {
    if (buffer) this.spare.push(buffer);
    const next = this.waiting.shift();
    if (next) next.grant();
    else this.free++;
  }
}

/** A part to upload and the pool buffer it lives in (undefined: its memory is the caller's). */
export interface PartBody {
  body: Buffer;
  buffer: Buffer | undefined;
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

  /**
   * The next part, filled into `into` (at least `size` bytes), or undefined at the end. The first
   * call returns a (maybe empty) part.
   */
  async read(into: Buffer, first = false): Promise<Buffer | undefined> {
    if (this.done && !this.leftover) return first ? into.subarray(0, 0) : undefined;
    let filled = 0;
    const take = (chunk: Buffer) => {
      const n = Math.min(chunk.length, this.size - filled);
      chunk.copy(into, filled, 0, n);
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
    if (filled === 0 && !first) return undefined;
    return into.subarray(0, filled);
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
  /** Part buffers, shared by every put of the storage. */
  readonly pool: BufferPool;
  /** Multipart uploads that failed and could not be aborted yet (server unreachable). */
  private readonly pendingAborts = new Map<string, string>();

  constructor(target: UploadTarget) {
    this.t = target;
    this.pool = new BufferPool(target.concurrency + 1, target.partSize);
  }

  /**
   * Uploads `buffered`, then `nextPart()` until it returns undefined, `concurrency` parts at a time;
   * `beforeComplete` may refuse the upload before it is completed. Returns the object's version.
   * Each `buffered` part's pool buffer (taken by the caller) and each one taken here go back to the
   * pool as their parts are stored.
   */
  async upload(
    key: string,
    parts: { buffered: PartBody[]; next: (into: Buffer) => Promise<Buffer | undefined> },
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
      // Never sent: their buffers are safe to reuse.
      for (const p of parts.buffered.splice(0)) this.pool.release(p.buffer);
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
        let part = parts.buffered.shift();
        if (!part) {
          const buffer = await this.pool.acquire(signal);
          let body: Buffer | undefined;
          try {
            body = await parts.next(buffer);
          } catch (error) {
            this.pool.release(buffer);
            throw error;
          }
          if (!body) {
            this.pool.release(buffer);
            break;
          }
          part = { body, buffer };
        }
        const { body, buffer } = part;
        if (number > MAX_PARTS) {
          this.pool.release(buffer);
          throw storageError(
            StorageErrorCode.io,
            `${key} is larger than ${MAX_PARTS} parts of ${this.t.partSize} bytes (S3's limit)`,
            { hint: "raise partSize for this storage" },
          );
        }
        size += body.length;
        let stored = false;
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
              stored = true;
            },
            (error: unknown) => {
              failure ??= error;
              uploads.abort(error);
            },
          )
          .finally(() => {
            inFlight.delete(upload);
            this.pool.release(stored ? buffer : undefined);
          });
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
      // Never sent: their buffers are safe to reuse.
      for (const p of parts.buffered.splice(0)) this.pool.release(p.buffer);
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
