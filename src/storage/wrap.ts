// The core every backend is used through. It adds, once for all backends: key validation,
// append-only enforcement, and retries with exponential backoff and jitter on transient errors.
import type { FileHandle } from "node:fs/promises";
import { Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import { StrongboxError } from "../errors.ts";
import { isAbortError, isNetworkError } from "../util/error-kinds.ts";
import {
  type GetOptions,
  isStorageError,
  type LocalFiles,
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

/** A function that opens the source afresh on every call, so a failed upload can start over. */
export type RestartableSource = () => Readable;
export type PutSource = Readable | Uint8Array | RestartableSource;

export interface RetryOptions {
  /** Attempts in total, the first included (default 5; 1 turns retries off). */
  attempts?: number;
  /** Delay before the first retry (default 200 ms); it doubles with every further retry. */
  baseDelayMs?: number;
  /** Longest single delay (default 10 s). */
  maxDelayMs?: number;
}

export interface RetryEvent {
  operation: string;
  key: string;
  /** The attempt that failed (1 = the first try). */
  attempt: number;
  delayMs: number;
  error: unknown;
}

export interface WrapOptions {
  retry?: RetryOptions;
  /** Refuse deletes and overwrites (offsite copies that a compromised host must not destroy). */
  appendOnly?: boolean;
  /**
   * Key prefixes that stay deletable and overwritable even when append-only, e.g. "locks/": a
   * lock must be refreshed and released. Storage credentials may still forbid it.
   */
  mutablePrefixes?: readonly string[];
  /** Called before each retry (for logs and metrics). */
  onRetry?: (event: RetryEvent) => void;
  /** Test seams. */
  random?: () => number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
}

export interface WrappedStorage extends Storage {
  readonly inner: Storage;
  /** Like Storage.put; a RestartableSource can be retried even after it was partly read. */
  put(key: string, data: PutSource, options?: PutOptions): Promise<{ size: number }>;
  localFiles(): LocalFiles | undefined;
  openLocal(key: string, options?: OperationOptions): Promise<FileHandle | undefined>;
}

/** Worth another try: STORAGE_UNAVAILABLE, or a network error a backend forgot to map. */
export function isTransient(error: unknown): boolean {
  if (isAbortError(error)) return false;
  if (error instanceof StrongboxError) return error.code === StorageErrorCode.unavailable;
  return isNetworkError(error);
}

/** "Equal jitter": half the exponential delay fixed, half random, so retrying clients spread out. */
export function backoffDelay(retry: number, base: number, max: number, random: () => number): number {
  const exponential = Math.min(max, base * 2 ** (retry - 1));
  return Math.round(exponential / 2 + random() * (exponential / 2));
}

function withNote(error: unknown, note: string, hint?: string): unknown {
  if (!(error instanceof StrongboxError)) return error;
  return new StrongboxError(error.code, `${error.message}; ${note}`, {
    stage: error.stage,
    hint: hint ?? error.hint,
    cause: error,
    details: error.details,
  });
}

class CoreStorage implements WrappedStorage {
  readonly inner: Storage;
  readonly description: string;
  readonly capabilities: StorageCapabilities;
  private readonly attempts: number;
  private readonly baseDelayMs: number;
  private readonly maxDelayMs: number;
  private readonly appendOnly: boolean;
  private readonly mutablePrefixes: readonly string[];
  private readonly onRetry: ((event: RetryEvent) => void) | undefined;
  private readonly random: () => number;
  private readonly sleep: (ms: number, signal?: AbortSignal) => Promise<void>;

  constructor(inner: Storage, options: WrapOptions) {
    this.inner = inner;
    this.description = inner.description;
    this.appendOnly = options.appendOnly ?? false;
    this.capabilities = {
      ...inner.capabilities,
      appendOnly: inner.capabilities.appendOnly || this.appendOnly,
    };
    this.attempts = Math.max(1, Math.floor(options.retry?.attempts ?? 5));
    this.baseDelayMs = options.retry?.baseDelayMs ?? 200;
    this.maxDelayMs = options.retry?.maxDelayMs ?? 10_000;
    this.mutablePrefixes = options.mutablePrefixes ?? [];
    this.onRetry = options.onRetry;
    this.random = options.random ?? Math.random;
    this.sleep = options.sleep ?? ((ms, signal) => delay(ms, undefined, signal ? { signal } : {}));
  }

  async put(key: string, data: PutSource, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const frozen = this.isFrozen(key);
    if (
      frozen &&
      !this.inner.capabilities.conditionalCreate &&
      (await this.stat(key, { signal: options.signal }))
    ) {
      // Without an atomic create-if-absent this check can race; such backends are rare (see docs).
      throw this.appendOnlyError(key, "overwrite");
    }
    const ifAbsent = (options.ifAbsent ?? false) || (frozen && this.inner.capabilities.conditionalCreate);
    let current: Readable | Uint8Array | undefined;
    for (let attempt = 1; ; attempt++) {
      if (typeof data === "function") {
        if (current instanceof Readable && !current.destroyed) current.destroy();
        current = data();
      } else {
        current = data;
      }
      try {
        return await this.inner.put(key, current, { ...options, ifAbsent });
      } catch (error) {
        try {
          if (frozen && !options.ifAbsent && isStorageError(error, StorageErrorCode.exists)) {
            // Note: after a retry this may be our own first attempt whose reply was lost.
            throw this.appendOnlyError(key, "overwrite", error);
          }
          await this.beforeRetry("put", key, attempt, error, options.signal, this.notRestartable(data));
        } catch (final) {
          // A stream we opened and are giving up on must not keep its file or socket open.
          if (typeof data === "function" && current instanceof Readable) current.destroy();
          throw final;
        }
      }
    }
  }

  private notRestartable(data: PutSource): { note: string; hint: string } | undefined {
    if (!(data instanceof Readable) || !(data.readableDidRead || data.destroyed)) return undefined;
    return {
      note: "not retried: the source stream was already read from (or closed) and cannot be restarted",
      hint: "pass a buffer or a function that reopens the source so uploads can be retried",
    };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    validateRange(key, options);
    // Only opening is retried; an error while the caller reads the stream is theirs to handle.
    return this.withRetries("get", key, options.signal, () => this.inner.get(key, options));
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key);
    return this.withRetries("stat", key, options.signal, () => this.inner.stat(key, options));
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    for (let attempt = 1; ; attempt++) {
      let yielded = false;
      try {
        for await (const info of this.inner.list(prefix, options)) {
          yielded = true;
          yield info;
        }
        return;
      } catch (error) {
        // Restarting after objects were handed out would repeat them: only retry a clean failure.
        const partial = yielded
          ? { note: "not retried: the listing had already returned objects" }
          : undefined;
        await this.beforeRetry("list", prefix, attempt, error, options.signal, partial);
      }
    }
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key);
    if (this.isFrozen(key)) throw this.appendOnlyError(key, "delete");
    return this.withRetries("delete", key, options.signal, () => this.inner.delete(key, options));
  }

  async cleanupTemp(olderThanMs: number): Promise<number> {
    return (await this.inner.cleanupTemp?.(olderThanMs)) ?? 0;
  }

  async openLocal(key: string, options: OperationOptions = {}): Promise<FileHandle | undefined> {
    validateKey(key);
    return this.inner.openLocal ? this.inner.openLocal(key, options) : undefined;
  }

  localFiles(): LocalFiles | undefined {
    const files = this.inner.localFiles?.();
    if (!files) return undefined;
    // A commit never replaces an object, so append-only holds without a check here.
    return {
      durable: files.durable,
      tempPath: (key) => {
        validateKey(key);
        return files.tempPath(key);
      },
      commit: (temp, key) => {
        validateKey(key);
        return files.commit(temp, key);
      },
      discard: (temp) => files.discard(temp),
      writeError: (code, message, key) => files.writeError(code, message, key),
    };
  }

  close(): Promise<void> {
    return this.inner.close();
  }

  private isFrozen(key: string): boolean {
    return this.appendOnly && !this.mutablePrefixes.some((prefix) => key.startsWith(prefix));
  }

  private appendOnlyError(key: string, operation: "delete" | "overwrite", cause?: unknown): StrongboxError {
    return new StrongboxError(
      StorageErrorCode.appendOnly,
      `refusing to ${operation} ${key}: ${this.description} is append-only`,
      {
        stage: "storage",
        hint: "run prune from a host whose credentials may delete, or drop append_only for this storage",
        cause,
        details: { key, operation },
      },
    );
  }

  private async withRetries<T>(
    operation: string,
    key: string,
    signal: AbortSignal | undefined,
    run: () => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      try {
        return await run();
      } catch (error) {
        await this.beforeRetry(operation, key, attempt, error, signal);
      }
    }
  }

  /** Throws when the failure is final; otherwise waits the backoff delay. */
  private async beforeRetry(
    operation: string,
    key: string,
    attempt: number,
    error: unknown,
    signal: AbortSignal | undefined,
    notRetryable?: { note: string; hint?: string },
  ): Promise<void> {
    if (!isTransient(error) || signal?.aborted) throw error;
    if (notRetryable) throw withNote(error, notRetryable.note, notRetryable.hint);
    if (attempt >= this.attempts) {
      throw attempt > 1 ? withNote(error, `gave up after ${attempt} attempts`) : error;
    }
    const delayMs = backoffDelay(attempt, this.baseDelayMs, this.maxDelayMs, this.random);
    this.onRetry?.({ operation, key, attempt, delayMs, error });
    await this.sleep(delayMs, signal);
  }
}

/** Wraps a backend with key validation, append-only enforcement and retries. */
export function wrapStorage(inner: Storage, options: WrapOptions = {}): WrappedStorage {
  return new CoreStorage(inner, options);
}
