// The one storage interface every backend (local, SFTP, S3) implements. Backends stay dumb: retries,
// append-only enforcement and key validation are added once by `wrapStorage` (wrap.ts).
import type { FileHandle } from "node:fs/promises";
import type { Readable } from "node:stream";
import { StrongboxError } from "../errors.ts";

/** Temp files of unfinished puts; keys cannot start with "." so these never collide with objects. */
export const TEMP_PREFIX = ".tmp-";

/** Stable error codes of the storage layer; backends map their native errors onto these. */
export const StorageErrorCode = {
  badKey: "STORAGE_BAD_KEY",
  badRange: "STORAGE_BAD_RANGE",
  notFound: "STORAGE_NOT_FOUND",
  exists: "STORAGE_EXISTS",
  full: "STORAGE_FULL",
  permission: "STORAGE_PERMISSION",
  /** Transient: the wrapper retries these. */
  unavailable: "STORAGE_UNAVAILABLE",
  appendOnly: "STORAGE_APPEND_ONLY",
  /** Anything else the backend could not classify. */
  io: "STORAGE_IO",
} as const;

export type StorageErrorCodeValue = (typeof StorageErrorCode)[keyof typeof StorageErrorCode];

export interface ObjectInfo {
  /** Relative to the storage root, `/`-separated. */
  key: string;
  size: number;
  modified: Date;
}

export interface StorageCapabilities {
  /** Objects become visible by renaming a finished temp object (filesystem, SFTP). */
  readonly atomicRename: boolean;
  /** Delete and overwrite are refused (STORAGE_APPEND_ONLY). */
  readonly appendOnly: boolean;
  /** `put(..., { ifAbsent: true })` is atomic: of two racing writers exactly one wins. */
  readonly conditionalCreate: boolean;
}

export interface PutOptions {
  signal?: AbortSignal;
  /** Fail with STORAGE_EXISTS instead of replacing an existing object. */
  ifAbsent?: boolean;
  /**
   * The exact length of a stream being put, when known (a file, a part of a manifest): a backend
   * may then send it as it is read (S3: one PUT with that Content-Length, no part buffers), and
   * then fails the put when the stream holds another number of bytes. Others ignore it.
   */
  size?: number;
  /**
   * The data is this local file's content (`size` bytes): a backend may read the file itself
   * instead of the stream (SFTP: into reused buffers). The stream stays the data for the others.
   */
  file?: string;
}

export interface GetOptions {
  signal?: AbortSignal;
  /** First byte to read (default 0). */
  start?: number;
  /**
   * Last byte to read, inclusive (like HTTP ranges and fs.createReadStream). A range reaching past
   * the end of the object is clipped; a start at or past the end yields an empty stream.
   */
  end?: number;
}

export interface OperationOptions {
  signal?: AbortSignal;
}

export interface Storage {
  /** For messages: where the objects live. Never contains secrets. */
  readonly description: string;
  readonly capabilities: StorageCapabilities;
  /**
   * Stores an object atomically: readers see either the previous object (or none) or the whole new
   * one, never a part. A failed or aborted put leaves nothing visible. Resolves with the stored size.
   */
  put(key: string, data: Readable | Uint8Array, options?: PutOptions): Promise<{ size: number }>;
  /** Opens an object for reading; rejects with STORAGE_NOT_FOUND when it does not exist. */
  get(key: string, options?: GetOptions): Promise<Readable>;
  /** Size and time of an object, or undefined when there is none. */
  stat(key: string, options?: OperationOptions): Promise<ObjectInfo | undefined>;
  /**
   * Every object whose key starts with `prefix` (a plain string prefix, as in S3: "backups/" lists
   * one folder, "" everything), recursively. Keys are relative to the storage root; order is
   * unspecified.
   */
  list(prefix: string, options?: OperationOptions): AsyncIterable<ObjectInfo>;
  /** Removes an object; deleting a missing object succeeds. */
  delete(key: string, options?: OperationOptions): Promise<void>;
  /** Releases connections; the storage is not used afterwards. */
  close(): Promise<void>;
  /**
   * Removes temp objects of unfinished puts older than `olderThanMs` (leftovers of a killed
   * writer); returns how many. Only backends that write temp objects have it.
   */
  cleanupTemp?(olderThanMs: number): Promise<number>;
  /**
   * Files of this storage that another process may write directly (the native part sealer), or
   * undefined when objects are not plain local files. Only the local backend has them.
   */
  localFiles?(): LocalFiles | undefined;
  /**
   * The object's file, open for reading (a local file of this host), or undefined when objects are
   * not plain local files. A reader can hash it and then read it again through the same open file,
   * whatever happens to its name meanwhile. Only the local backend has it.
   */
  openLocal?(key: string, options?: OperationOptions): Promise<FileHandle | undefined>;
}

/** Objects written as files by another process: a temp path first, then a commit into place. */
export interface LocalFiles {
  /** Whether commits fsync (the writer should fsync its file too). */
  readonly durable: boolean;
  /** A fresh temp path beside where `key` goes (its directories created, 0700); no file yet. */
  tempPath(key: string): Promise<string>;
  /**
   * Moves a finished temp file into place as `key`, never over an existing object (a commit of an
   * existing key fails with STORAGE_EXISTS), and syncs the directory when durable.
   */
  commit(temp: string, key: string): Promise<void>;
  /** Removes a temp file, if it exists. */
  discard(temp: string): Promise<void>;
  /** The storage's error for a failure (errno code such as "ENOSPC") of the writer on `key`. */
  writeError(code: string, message: string, key: string): unknown;
}

/** Longest key in bytes (S3's limit). */
const MAX_KEY_BYTES = 1024;
/**
 * Longest segment in bytes: filesystems allow 255, and local/SFTP temp names add a prefix
 * (".tmp-<random>-") to the last segment.
 */
const MAX_SEGMENT_BYTES = 200;

const KEY_HINT = "keys are relative paths such as backups/2024-05-01T0200Z/part-000001.age";

function badKey(key: string, why: string): StrongboxError {
  return new StrongboxError(StorageErrorCode.badKey, `invalid storage key ${JSON.stringify(key)}: ${why}`, {
    hint: KEY_HINT,
    stage: "storage",
    details: { key },
  });
}

function segmentProblem(segment: string, last: boolean): string | undefined {
  if (segment === "") return last ? "it ends with '/'" : "it has an empty path segment";
  if (segment === "." || segment === "..") return `it has a '${segment}' segment`;
  // Names starting with "." are reserved for backends (temp files of unfinished puts).
  if (segment.startsWith(".")) return `segment ${JSON.stringify(segment)} starts with '.'`;
  if (Buffer.byteLength(segment) > MAX_SEGMENT_BYTES) {
    return `a segment is longer than ${MAX_SEGMENT_BYTES} bytes`;
  }
  return undefined;
}

function commonProblem(key: string): string | undefined {
  if (key.includes("\0")) return "it contains a NUL byte";
  if (/[\u0000-\u001f\u007f]/.test(key)) return "it contains a control character";
  if (key.includes("\\")) return "it contains a backslash";
  if (key.startsWith("/")) return "it starts with '/' (keys are relative to the storage root)";
  if (Buffer.byteLength(key) > MAX_KEY_BYTES) return `it is longer than ${MAX_KEY_BYTES} bytes`;
  return undefined;
}

/**
 * Checks an object key: `/`-separated relative path, no empty, "." or ".." segments, no NUL or
 * control characters, no segment starting with "." (reserved for temp files). Throws
 * STORAGE_BAD_KEY.
 */
export function validateKey(key: string): void {
  if (typeof key !== "string" || key === "") throw badKey(String(key), "it is empty");
  const common = commonProblem(key);
  if (common) throw badKey(key, common);
  const segments = key.split("/");
  for (let i = 0; i < segments.length; i++) {
    const problem = segmentProblem(segments[i]!, i === segments.length - 1);
    if (problem) throw badKey(key, problem);
  }
}

/**
 * Checks a list prefix: "" (everything), or a key-like string whose last segment may be partial
 * or empty ("backups/", "backups/2024-"). Throws STORAGE_BAD_KEY.
 */
export function validatePrefix(prefix: string): void {
  if (typeof prefix !== "string") throw badKey(String(prefix), "a prefix must be a string");
  if (prefix === "") return;
  const common = commonProblem(prefix);
  if (common) throw badKey(prefix, common);
  const segments = prefix.split("/");
  for (let i = 0; i < segments.length - 1; i++) {
    const problem = segmentProblem(segments[i]!, false);
    if (problem) throw badKey(prefix, problem);
  }
  const last = segments[segments.length - 1]!;
  if (last === "." || last === ".." || last.startsWith(".")) {
    throw badKey(prefix, `segment ${JSON.stringify(last)} starts with '.'`);
  }
}

/** Checks a get range; throws STORAGE_BAD_RANGE. */
export function validateRange(key: string, options: GetOptions | undefined): void {
  const start = options?.start;
  const end = options?.end;
  const bad = (why: string) =>
    new StrongboxError(StorageErrorCode.badRange, `invalid byte range for ${key}: ${why}`, {
      stage: "storage",
      details: { key, start, end },
    });
  if (start !== undefined && !(Number.isSafeInteger(start) && start >= 0)) {
    throw bad("start must be a non-negative integer");
  }
  if (end !== undefined && !(Number.isSafeInteger(end) && end >= 0)) {
    throw bad("end must be a non-negative integer");
  }
  if (end !== undefined && end < (start ?? 0)) throw bad("end (inclusive) is before start");
}

export function isStorageError(error: unknown, code?: StorageErrorCodeValue): error is StrongboxError {
  return (
    error instanceof StrongboxError &&
    error.code.startsWith("STORAGE_") &&
    (code === undefined || error.code === code)
  );
}
