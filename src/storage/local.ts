// Local filesystem backend. Every put writes a temp file next to the target (".tmp-<random>-<name>",
// created 0600), fsyncs it, renames it into place (or hard-links it for ifAbsent, so exactly one
// of two racing writers wins) and fsyncs the directory. Directories are created 0700. Modes are
// passed to open()/mkdir() rather than fixed with chmod afterwards, so there is no moment when a
// file is readable by others; the umask can only remove bits, never add them.
import { randomBytes } from "node:crypto";
import { type Dirent, existsSync } from "node:fs";
import {
  type FileHandle,
  link,
  lstat,
  mkdir,
  open,
  readdir,
  rename,
  rmdir,
  stat,
  unlink,
} from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { addAbortSignal, type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrongboxError } from "../errors.ts";
import { errnoOf, isAbortError, WriteFailure } from "../util/error-kinds.ts";
import { openDirect, supportsDirect, writeStreamDirect } from "./direct.ts";
import {
  type GetOptions,
  type LocalFiles,
  type ObjectInfo,
  type OperationOptions,
  type PutOptions,
  type Storage,
  type StorageCapabilities,
  StorageErrorCode,
  TEMP_PREFIX,
  validateKey,
  validatePrefix,
  validateRange,
} from "./types.ts";

const DIR_MODE = 0o700;
/** Files of one directory stat'ed at once while listing. */
const STAT_BATCH = 256;
const FILE_MODE = 0o600;
// Reads allocate a new buffer each; larger ones read no faster but leave more garbage between two
// collections (measured on a 400 MB read: 1 MiB peaks at 118 MB RSS, 256 KiB at 94 MB).
const READ_HIGH_WATER_MARK = 256 * 1024;
/** A put gathers up to this much of its stream into one writev. */
const WRITE_HIGH_WATER_MARK = 1024 * 1024;

export interface LocalStorageOptions {
  /** Create the root directory (mode 0700) when it is missing (default true). */
  create?: boolean;
  /** fsync files and directories so a finished put survives a power loss (default true). */
  durable?: boolean;
  /**
   * Write streamed objects with O_DIRECT, bypassing the page cache, where the filesystem takes
   * it (default true; see direct.ts). Small objects given as bytes are always written buffered.
   */
  direct?: boolean;
}

/** Writes every byte of `buffers` (write(2) may write less than asked, e.g. just before ENOSPC). */
async function writeAll(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending);
    if (bytesWritten === 0) {
      throw Object.assign(new Error("write made no progress"), { code: "EIO" });
    }
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
        continue;
      }
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
    pending = rest;
  }
}

/** Copies a stream into an open file with backpressure; returns the byte count. */
async function writeStream(handle: FileHandle, source: Readable, signal?: AbortSignal): Promise<number> {
  let size = 0;
  const sink = new Writable({
    highWaterMark: WRITE_HIGH_WATER_MARK,
    writev(chunks, callback) {
      const buffers = chunks.map((c) => c.chunk as Buffer);
      writeAll(handle, buffers).then(
        () => {
          for (const b of buffers) size += b.length;
          callback();
        },
        (error: unknown) => callback(new WriteFailure(error)),
      );
    },
  });
  await pipeline(source, sink, signal ? { signal } : {});
  return size;
}

/** A fresh temp file name for `name` (removed by cleanupTemp if its writer dies). */
function tempName(name: string): string {
  return `${TEMP_PREFIX}${randomBytes(8).toString("hex")}-${name}`;
}

/**
 * Puts a finished temp file in place as `target`, never over an existing file: link() fails with
 * EEXIST when the target exists (an atomic create-if-absent). A temp name left behind when the
 * unlink fails is harmless and removed by cleanupTemp.
 */
async function linkNew(temp: string, target: string): Promise<void> {
  await link(temp, target);
  await unlink(temp).catch(() => {});
}

async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems (FUSE, some network mounts) cannot fsync a directory; the rename is done.
    if (errnoOf(error) !== "EINVAL" && errnoOf(error) !== "ENOTSUP") throw error;
  } finally {
    await handle.close();
  }
}

export class LocalStorage implements Storage {
  readonly root: string;
  readonly description: string;
  readonly capabilities: StorageCapabilities = {
    atomicRename: true,
    appendOnly: false,
    conditionalCreate: true,
  };
  private readonly durable: boolean;
  /** Whether the root's filesystem takes direct writes: asked once, at the first streamed put. */
  private direct: Promise<boolean> | boolean;

  private constructor(root: string, durable: boolean, direct: boolean) {
    this.root = root;
    this.durable = durable;
    this.direct = direct;
    this.description = `local:${root}`;
  }

  /** Opens (and by default creates, mode 0700) a storage rooted at a directory. */
  static async open(root: string, options: LocalStorageOptions = {}): Promise<LocalStorage> {
    const absolute = resolve(root);
    const storage = new LocalStorage(absolute, options.durable ?? true, options.direct ?? true);
    try {
      if (options.create ?? true) await mkdir(absolute, { recursive: true, mode: DIR_MODE });
      const info = await stat(absolute);
      if (!info.isDirectory()) {
        throw new StrongboxError(StorageErrorCode.io, `storage path ${absolute} is not a directory`, {
          stage: "storage",
          hint: "point the repository at a directory",
        });
      }
    } catch (error) {
      if (errnoOf(error) === "ENOENT") {
        throw new StrongboxError(StorageErrorCode.notFound, `no storage directory at ${absolute}`, {
          stage: "storage",
          hint: "check the repository path, or run `strongbox init` to create it",
          cause: error,
        });
      }
      throw storage.mapError(error, "open", "");
    }
    return storage;
  }

  async put(key: string, data: Readable | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const { signal, ifAbsent = false } = options;
    signal?.throwIfAborted();
    const target = this.path(key);
    const dir = dirname(target);
    // Cheap early refusal; the link() below is what decides a race.
    if (ifAbsent && (await this.stat(key))) throw this.exists(key);
    let temp: string | undefined;
    let handle: FileHandle | undefined;
    // While copying the caller's stream, an error is theirs (or an abort) unless the write failed.
    let copying = false;
    try {
      const wantDirect = !(data instanceof Uint8Array) && (await this.directWrites());
      let direct: boolean;
      ({ temp, handle, direct } = await this.createTemp(key, dir, basename(target), wantDirect));
      let size: number;
      if (data instanceof Uint8Array) {
        await writeAll(handle, [Buffer.from(data.buffer, data.byteOffset, data.byteLength)]);
        size = data.byteLength;
      } else {
        copying = true;
        size = direct
          ? await writeStreamDirect(handle, data, (e) => new WriteFailure(e), signal)
          : await writeStream(handle, data, signal);
        copying = false;
      }
      if (this.durable) await handle.sync();
      await handle.close();
      handle = undefined;
      signal?.throwIfAborted();
      if (ifAbsent) {
        await linkNew(temp, target);
        temp = undefined;
      } else {
        await rename(temp, target);
        temp = undefined;
      }
      if (this.durable) await syncDirectory(dir);
      return { size };
    } catch (error) {
      if (handle) await handle.close().catch(() => {});
      if (temp) await unlink(temp).catch(() => {});
      if (error instanceof WriteFailure) throw this.mapError(error.cause, "put", key);
      if (copying) throw error;
      throw this.mapError(error, "put", key);
    }
  }

  localFiles(): LocalFiles {
    return {
      durable: this.durable,
      tempPath: async (key) => {
        validateKey(key);
        try {
          await this.makeDirectories(key);
        } catch (error) {
          throw this.mapError(error, "put", key);
        }
        const target = this.path(key);
        return join(dirname(target), tempName(basename(target)));
      },
      commit: async (temp, key) => {
        validateKey(key);
        const target = this.path(key);
        try {
          await linkNew(temp, target);
          if (this.durable) await syncDirectory(dirname(target));
        } catch (error) {
          throw this.mapError(error, "put", key);
        }
      },
      discard: (temp) => unlink(temp).catch(() => {}),
      writeError: (code, message, key) => {
        const error = Object.assign(new Error(message), { code });
        // A file that cannot be created is not a missing object: its directory, or the whole
        // repository (an unmounted disk), went away under the writer.
        if (code === "ENOENT" && !existsSync(this.root)) return this.disappeared(error);
        return this.mapError(error, "put", key);
      },
    };
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    validateRange(key, options);
    options.signal?.throwIfAborted();
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.path(key), "r");
      if (!(await handle.stat()).isFile()) throw Object.assign(new Error("not a file"), { code: "EISDIR" });
    } catch (error) {
      await handle?.close().catch(() => {});
      const code = errnoOf(error);
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") throw this.notFound(key, error);
      throw this.mapError(error, "get", key);
    }
    const stream = handle.createReadStream({
      highWaterMark: READ_HIGH_WATER_MARK,
      ...(options.start !== undefined ? { start: options.start } : {}),
      ...(options.end !== undefined ? { end: options.end } : {}),
    });
    if (options.signal) addAbortSignal(options.signal, stream);
    return stream;
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key);
    options.signal?.throwIfAborted();
    try {
      const info = await stat(this.path(key));
      if (!info.isFile()) return undefined;
      return { key, size: info.size, modified: info.mtime };
    } catch (error) {
      const code = errnoOf(error);
      if (code === "ENOENT" || code === "ENOTDIR") return undefined;
      throw this.mapError(error, "stat", key);
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf("/");
    yield* this.walk(slash >= 0 ? prefix.slice(0, slash) : "", prefix.slice(slash + 1), options.signal);
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key);
    options.signal?.throwIfAborted();
    const target = this.path(key);
    try {
      await unlink(target);
    } catch (error) {
      const code = errnoOf(error);
      // Missing, or a directory (which is a prefix, not an object): nothing to delete.
      if (code === "ENOENT" || code === "ENOTDIR" || code === "EISDIR") return;
      throw this.mapError(error, "delete", key);
    }
    await this.pruneEmptyDirectories(dirname(target));
  }

  async close(): Promise<void> {}

  /**
   * Removes temp files left behind by crashed runs, if older than `olderThanMs` (a running put
   * keeps its temp file's mtime fresh). Returns how many were removed.
   */
  async cleanupTemp(olderThanMs: number): Promise<number> {
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      let entries: Dirent[];
      try {
        entries = await readdir(dir, { withFileTypes: true });
      } catch (error) {
        if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") return;
        throw this.mapError(error, "cleanup", dir);
      }
      for (const entry of entries) {
        const path = join(dir, entry.name);
        if (entry.isDirectory() && !entry.name.startsWith(".")) {
          await visit(path);
        } else if (entry.isFile() && entry.name.startsWith(TEMP_PREFIX)) {
          const info = await lstat(path).catch(() => undefined);
          if (!info || info.mtimeMs >= cutoff) continue;
          await unlink(path).then(
            () => removed++,
            () => {},
          );
        }
      }
    };
    await visit(this.root);
    return removed;
  }

  private path(key: string): string {
    return join(this.root, ...key.split("/"));
  }

  private async *walk(dirKey: string, namePrefix: string, signal?: AbortSignal): AsyncIterable<ObjectInfo> {
    const dir = dirKey === "" ? this.root : this.path(dirKey);
    let entries: Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (error) {
      if (errnoOf(error) === "ENOENT" || errnoOf(error) === "ENOTDIR") return;
      throw this.mapError(error, "list", dirKey);
    }
    entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    // Files of one directory are stat'ed together (a backup's parts and manifest): a repository
    // of hundreds of backups is listed in a fraction of the time of one stat after another.
    const files: Promise<ObjectInfo | undefined>[] = [];
    const flush = async function* (): AsyncIterable<ObjectInfo> {
      for (const info of await Promise.all(files.splice(0))) if (info) yield info; // gone meanwhile: a concurrent delete
    };
    for (const entry of entries) {
      signal?.throwIfAborted();
      // Dot names are temp files (or not ours); symlinks and other non-regular files are skipped.
      if (entry.name.startsWith(".") || !entry.name.startsWith(namePrefix)) continue;
      const key = dirKey === "" ? entry.name : `${dirKey}/${entry.name}`;
      try {
        validateKey(key);
      } catch {
        continue; // a name no key could produce: not an object of ours
      }
      if (entry.isDirectory()) {
        yield* flush();
        yield* this.walk(key, "", signal);
      } else if (entry.isFile()) {
        const info = this.stat(key);
        info.catch(() => {}); // awaited in flush; a failure surfaces there
        files.push(info);
        // A directory of many thousand files (a binlog archive) is stat'ed in bounded batches.
        if (files.length >= STAT_BATCH) yield* flush();
      }
    }
    yield* flush();
  }

  /** Whether streamed puts go through O_DIRECT: the root's filesystem is probed the first time. */
  private async directWrites(): Promise<boolean> {
    if (this.direct === false) return false;
    if (this.direct === true) {
      this.direct = supportsDirect(this.root, tempName("direct-probe"));
      // A probe that fails for another reason (a full disk) decides nothing: ask again next time.
      this.direct.catch(() => {
        this.direct = true;
      });
    }
    return await this.direct;
  }

  /**
   * Opens a new temp file (0600, O_EXCL) in the target's directory, creating missing directories
   * (0700) one level at a time below the root. The root itself is never re-created: if it has
   * vanished (an unmounted disk), writing into the mount point underneath would be wrong. With
   * `direct`, the file is opened for direct writes if its filesystem takes them.
   */
  private async createTemp(
    key: string,
    dir: string,
    name: string,
    direct: boolean,
  ): Promise<{ temp: string; handle: FileHandle; direct: boolean }> {
    for (let attempt = 0; ; attempt++) {
      const temp = join(dir, tempName(name));
      try {
        const handle = direct ? await openDirect(temp, FILE_MODE) : undefined;
        if (handle) return { temp, handle, direct: true };
        return { temp, handle: await open(temp, "wx", FILE_MODE), direct: false };
      } catch (error) {
        // A concurrent delete may prune the directory between our mkdir and open: try again.
        if (errnoOf(error) !== "ENOENT" || attempt >= 3) throw error;
      }
      await this.makeDirectories(key);
    }
  }

  private disappeared(cause: unknown): StrongboxError {
    return new StrongboxError(
      StorageErrorCode.unavailable,
      `storage directory ${this.root} has disappeared`,
      {
        stage: "storage",
        hint: "is the disk or network share holding the repository mounted?",
        cause,
      },
    );
  }

  private async makeDirectories(key: string): Promise<void> {
    const segments = key.split("/").slice(0, -1);
    let dir = this.root;
    for (let i = 0; i < segments.length; i++) {
      dir = join(dir, segments[i]!);
      try {
        await mkdir(dir, { mode: DIR_MODE });
      } catch (error) {
        const code = errnoOf(error);
        if (code === "EEXIST") continue;
        if (code === "ENOENT" && i === 0) throw this.disappeared(error);
        throw error;
      }
    }
  }

  /** Removes directories left empty by a delete, up to (not including) the root. */
  private async pruneEmptyDirectories(dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(this.root)) {
      try {
        await rmdir(dir);
      } catch {
        return; // not empty (or already gone): stop
      }
      dir = dirname(dir);
    }
  }

  private exists(key: string, cause?: unknown): StrongboxError {
    return new StrongboxError(StorageErrorCode.exists, `${key} already exists in ${this.description}`, {
      stage: "storage",
      cause,
      details: { key },
    });
  }

  private notFound(key: string, cause?: unknown): StrongboxError {
    return new StrongboxError(StorageErrorCode.notFound, `${key} not found in ${this.description}`, {
      stage: "storage",
      cause,
      details: { key },
    });
  }

  /** Turns an errno error into a StrongboxError with a storage code. */
  private mapError(error: unknown, operation: string, key: string): unknown {
    if (error instanceof StrongboxError || isAbortError(error)) return error;
    const code = errnoOf(error);
    if (code === undefined) return error; // not from the filesystem (an abort reason, a bug): as is
    const where = `${operation} ${key || "/"} in ${this.description}`;
    const options = { stage: "storage", cause: error, details: { key, operation, errno: code } };
    switch (code) {
      case "EEXIST":
        return this.exists(key, error);
      case "ENOENT":
        return this.notFound(key, error);
      case "ENOSPC":
      case "EDQUOT":
        return new StrongboxError(
          StorageErrorCode.full,
          `storage is full: ${code === "EDQUOT" ? "disk quota exceeded on" : "no space left on"} the device holding ${this.root} (while writing ${key})`,
          { ...options, hint: "free space on that filesystem or move the repository to a larger one" },
        );
      case "EACCES":
      case "EPERM":
      case "EROFS":
        return new StrongboxError(
          StorageErrorCode.permission,
          `permission denied: ${where}${code === "EROFS" ? " (read-only filesystem)" : ""}`,
          {
            ...options,
            hint: "strongbox needs to own the repository directory (rwx on directories, rw on files)",
          },
        );
      case "ENOTDIR":
      case "EISDIR":
      case "ENOTEMPTY":
        return new StrongboxError(
          StorageErrorCode.badKey,
          `cannot ${where}: the key conflicts with an existing object or folder of the same name`,
          { ...options, hint: "on a filesystem a key cannot be both an object and a folder" },
        );
      case "EIO":
      case "EAGAIN":
      case "EBUSY":
      case "EINTR":
      case "ESTALE":
      case "ETIMEDOUT":
      case "EMFILE":
      case "ENFILE":
        return new StrongboxError(
          StorageErrorCode.unavailable,
          `temporary failure: ${where} (${code})`,
          options,
        );
      default:
        return new StrongboxError(
          StorageErrorCode.io,
          `${where} failed: ${error instanceof Error ? error.message : String(error)}`,
          options,
        );
    }
  }
}
