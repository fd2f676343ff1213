// SFTP backend (ssh2). Authentication by key only; the server's host key must match a pinned key or
// a known_hosts entry. A put writes a temp file (".tmp-<random>-<name>", created 0600 by the open
// request itself, O_EXCL) with pipelined write requests, fsyncs it (fsync@openssh.com) and renames it
// into place. Directories are created 0700. One SSH connection is shared by all operations; when it
// drops, pending operations fail with STORAGE_UNAVAILABLE and the next operation reconnects, so the
// core wrapper's retry works. Temp files that a dropped connection kept us from removing are removed
// after the reconnect.
import { randomBytes } from "node:crypto";
import { posix } from "node:path";
import { addAbortSignal, type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { Stats } from "ssh2";
import { messageOf, WriteFailure } from "../util/error-kinds.ts";
import { existsError, notFoundError, storageError } from "./errors.ts";
import {
  abortError,
  FX,
  type Session,
  SftpConnection,
  type SftpConnectionOptions,
  sftpCode,
} from "./sftp-connection.ts";
import { mapSftpError, mapWriteError } from "./sftp-errors.ts";
import { CHUNK, PipelinedWriter, readRange, sendFile } from "./sftp-transfer.ts";
import {
  type GetOptions,
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
const FILE_MODE = 0o600;
const READ_ONLY_FILE_MODE = 0o400;
/** Uploads of at least this size (when the caller knows it) go through OpenSSH when possible. */
const BULK_MIN_BYTES = 4 * 1024 * 1024;

export interface SftpStorageOptions extends SftpConnectionOptions {
  /** Directory of the repository on the server; relative paths start at the login directory. */
  path: string;
  /** Create the repository directory (0700) when missing (default true). */
  create?: boolean;
  /** fsync each file on the server before the rename, when it offers fsync@openssh.com (default true). */
  durable?: boolean;
  /** Create files 0400 instead of 0600, so an account that may not chmod cannot reopen them for writing. */
  readOnlyFiles?: boolean;
}

export class SftpStorage implements Storage {
  readonly description: string;
  readonly capabilities: StorageCapabilities = {
    atomicRename: true,
    appendOnly: false,
    // The plain SFTP rename refuses an existing target (protocol draft 02, §6.5): of two racing
    // writers exactly one rename succeeds.
    conditionalCreate: true,
  };
  /** Absolute path of the repository directory on the server (after open). */
  root: string;
  private readonly options: SftpStorageOptions;
  private readonly conn: SftpConnection;

  private constructor(options: SftpStorageOptions, conn: SftpConnection) {
    this.options = options;
    this.conn = conn;
    this.root = options.path;
    this.description = conn.description;
  }

  /** What carries large uploads of known size (sftp-openssh.ts): "openssh" or "ssh2 (why)". */
  get largeUploads(): string {
    return this.conn.largeUploads;
  }

  /** Reads the key files, connects, verifies the host key, and creates the directory (0700). */
  static async open(options: SftpStorageOptions): Promise<SftpStorage> {
    const description = `sftp://${options.user}@${options.host}:${options.port ?? 22}/${options.path.replace(/^\//, "")}`;
    const storage = new SftpStorage(options, await SftpConnection.open(options, description));
    try {
      storage.root = await storage.prepareRoot(options.create ?? true);
    } catch (error) {
      await storage.close();
      throw error;
    }
    return storage;
  }

  async put(key: string, data: Readable | Uint8Array, options: PutOptions = {}): Promise<{ size: number }> {
    validateKey(key);
    const { signal, ifAbsent = false } = options;
    signal?.throwIfAborted();
    const target = this.path(key);
    // Cheap early refusal; the rename below is what decides a race.
    if (ifAbsent && (await this.stat(key, options))) throw existsError(this.description, key);
    // A large upload of known size (a sealed part) goes through the OpenSSH child (sftp-openssh.ts).
    const session =
      (options.size ?? 0) >= BULK_MIN_BYTES ? await this.conn.bulkSession() : await this.conn.session();
    let temp: string | undefined;
    let handle: Buffer | undefined;
    let writer: PipelinedWriter | undefined;
    let copying = false;
    try {
      ({ temp, handle } = await this.createTemp(session, key, target));
      const fileHandle = handle;
      const send = (buffer: Buffer, length: number, position: number) =>
        this.conn.request<void>(session, (sftp, cb) =>
          sftp.write(fileHandle, buffer, 0, length, position, cb),
        );
      let size: number;
      if (options.file !== undefined) {
        // The bytes of a local file (a spooled part): read into reused buffers, no stream.
        size = await sendFile(options.file, send, signal);
      } else {
        writer = new PipelinedWriter((piece, position) => send(piece, piece.length, position));
        const pacer = writer;
        if (data instanceof Uint8Array) {
          await pacer.write(Buffer.from(data.buffer, data.byteOffset, data.byteLength), signal);
        } else {
          copying = true;
          const sink = new Writable({
            highWaterMark: CHUNK,
            write(chunk: Buffer, _encoding, callback) {
              pacer.write(chunk).then(() => callback(), callback);
            },
            final(callback) {
              pacer.flush().then(() => callback(), callback);
            },
          });
          await pipeline(data, sink, signal ? { signal } : {});
          copying = false;
        }
        await pacer.flush();
        size = pacer.position;
      }
      if (this.options.durable ?? true) await this.fsync(session, fileHandle);
      handle = undefined;
      await this.conn.request<void>(session, (sftp, cb) => sftp.close(fileHandle, cb));
      if (signal?.aborted) throw abortError(signal);
      await this.commit(session, key, temp, target, ifAbsent);
      temp = undefined;
      return { size };
    } catch (error) {
      if (writer) await writer.idle();
      // The caller's stream failed (or an abort): their error as is. Otherwise map ours, while the
      // temp file still takes up the space that tells a full disk apart.
      const final =
        copying && !(error instanceof WriteFailure)
          ? error
          : await mapWriteError(
              this.conn,
              session,
              this,
              error instanceof WriteFailure ? error.cause : error,
              "put",
              key,
            );
      if (handle && session.alive) {
        const open = handle;
        await this.conn.request<void>(session, (sftp, cb) => sftp.close(open, cb)).catch(() => {});
      }
      if (temp) await this.removeTemp(session, temp);
      throw final;
    }
  }

  async get(key: string, options: GetOptions = {}): Promise<Readable> {
    validateKey(key);
    validateRange(key, options);
    options.signal?.throwIfAborted();
    const path = this.path(key);
    const session = await this.conn.session();
    let handle: Buffer;
    try {
      handle = await this.conn.request<Buffer>(session, (sftp, cb) => sftp.open(path, "r", cb));
    } catch (error) {
      throw mapSftpError(this.description, error, "get", key);
    }
    let size: number;
    try {
      const attrs = await this.conn.request<Stats>(session, (sftp, cb) => sftp.fstat(handle, cb));
      if (!attrs.isFile()) throw notFoundError(this.description, key);
      size = attrs.size;
    } catch (error) {
      await this.conn.request<void>(session, (sftp, cb) => sftp.close(handle, cb)).catch(() => {});
      throw mapSftpError(this.description, error, "get", key);
    }
    const start = options.start ?? 0;
    const end = Math.min(options.end ?? Number.POSITIVE_INFINITY, size - 1);
    const stream = readRange(
      this.conn,
      session,
      handle,
      { start, end },
      (error) => mapSftpError(this.description, error, "get", key) as Error,
    );
    return options.signal ? addAbortSignal(options.signal, stream) : stream;
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key);
    options.signal?.throwIfAborted();
    const session = await this.conn.session();
    try {
      const attrs = await this.conn.request<Stats>(session, (sftp, cb) => sftp.stat(this.path(key), cb));
      if (!attrs.isFile()) return undefined;
      return { key, size: attrs.size, modified: new Date(attrs.mtime * 1000) };
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return undefined;
      throw mapSftpError(this.description, error, "stat", key);
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf("/");
    const session = await this.conn.session();
    yield* this.walk(
      session,
      slash >= 0 ? prefix.slice(0, slash) : "",
      prefix.slice(slash + 1),
      options.signal,
    );
  }

  async delete(key: string, options: OperationOptions = {}): Promise<void> {
    validateKey(key);
    options.signal?.throwIfAborted();
    const session = await this.conn.session();
    const target = this.path(key);
    try {
      await this.conn.request<void>(session, (sftp, cb) => sftp.unlink(target, cb));
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return;
      // A folder is a prefix, not an object: nothing to delete. Anything else is a real failure.
      const attrs = await this.conn
        .request<Stats>(session, (sftp, cb) => sftp.stat(target, cb))
        .catch(() => undefined);
      if (attrs?.isDirectory()) return;
      throw mapSftpError(this.description, error, "delete", key);
    }
    await this.pruneEmptyDirectories(session, posix.dirname(target));
  }

  /**
   * Removes temp files left behind by crashed runs, if older than `olderThanMs` (a running put
   * keeps its temp file's mtime fresh). Returns how many were removed.
   */
  async cleanupTemp(olderThanMs: number): Promise<number> {
    const session = await this.conn.session();
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      let entries: { filename: string; attrs: Stats }[];
      try {
        entries = await this.conn.request(session, (sftp, cb) => sftp.readdir(dir, cb));
      } catch (error) {
        if (sftpCode(error) === FX.noSuchFile) return;
        throw mapSftpError(this.description, error, "cleanup", dir);
      }
      for (const { filename, attrs } of entries) {
        const path = `${dir}/${filename}`;
        if (attrs.isDirectory() && !filename.startsWith(".")) {
          await visit(path);
        } else if (attrs.isFile() && filename.startsWith(TEMP_PREFIX) && attrs.mtime * 1000 < cutoff) {
          await this.conn
            .request<void>(session, (sftp, cb) => sftp.unlink(path, cb))
            .then(
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
    return `${this.root}/${key}`;
  }

  // --- put helpers ------------------------------------------------------------------------------

  private async prepareRoot(create: boolean): Promise<string> {
    const session = await this.conn.session();
    const path = this.options.path.replace(/\/+$/, "") || "/";
    try {
      const attrs = await this.conn.request<Stats>(session, (sftp, cb) => sftp.stat(path, cb));
      if (!attrs.isDirectory()) {
        throw storageError(StorageErrorCode.io, `${this.description} is not a directory`, {
          hint: "point the repository at a directory",
        });
      }
    } catch (error) {
      if (sftpCode(error) !== FX.noSuchFile) throw mapSftpError(this.description, error, "open", "");
      if (!create) {
        throw storageError(StorageErrorCode.notFound, `no storage directory at ${this.description}`, {
          hint: "check the repository path, or run `strongbox init` to create it",
          cause: error,
        });
      }
      const absolute = path.startsWith("/");
      const segments = path.split("/").filter((s) => s !== "");
      let dir = absolute ? "" : ".";
      for (const segment of segments) {
        dir = `${dir}/${segment}`;
        await this.mkdir(session, dir).catch((e: unknown) => {
          throw mapSftpError(this.description, e, "open", "");
        });
      }
    }
    try {
      return await this.conn.request<string>(session, (sftp, cb) => sftp.realpath(path, cb));
    } catch (error) {
      throw mapSftpError(this.description, error, "open", "");
    }
  }

  /** mkdir 0700; an existing directory is fine (servers report that as a plain failure). */
  private async mkdir(session: Session, dir: string): Promise<void> {
    try {
      await this.conn.request<void>(session, (sftp, cb) => sftp.mkdir(dir, { mode: DIR_MODE }, cb));
    } catch (error) {
      const attrs = await this.conn
        .request<Stats>(session, (sftp, cb) => sftp.stat(dir, cb))
        .catch(() => undefined);
      if (attrs?.isDirectory()) return;
      throw error;
    }
  }

  /** Opens a new temp file (O_EXCL, mode set by the open itself) beside the target. */
  private async createTemp(
    session: Session,
    key: string,
    target: string,
  ): Promise<{ temp: string; handle: Buffer }> {
    const mode = this.options.readOnlyFiles ? READ_ONLY_FILE_MODE : FILE_MODE;
    for (let attempt = 0; ; attempt++) {
      const temp = `${posix.dirname(target)}/${TEMP_PREFIX}${randomBytes(8).toString("hex")}-${posix.basename(target)}`;
      try {
        const handle = await this.conn.request<Buffer>(session, (sftp, cb) =>
          sftp.open(temp, "wx", { mode }, cb),
        );
        return { temp, handle };
      } catch (error) {
        // Missing folders; or a concurrent delete pruned one between our mkdir and open: again.
        if (sftpCode(error) !== FX.noSuchFile || attempt >= 3) throw error;
      }
      await this.makeDirectories(session, key);
    }
  }

  /** Creates the key's folders (0700) below the root; the root itself is never re-created. */
  private async makeDirectories(session: Session, key: string): Promise<void> {
    const segments = key.split("/").slice(0, -1);
    let dir = this.root;
    for (let i = 0; i < segments.length; i++) {
      dir = `${dir}/${segments[i]}`;
      try {
        await this.mkdir(session, dir);
      } catch (error) {
        if (i === 0 && sftpCode(error) === FX.noSuchFile) {
          throw storageError(
            StorageErrorCode.unavailable,
            `storage directory ${this.description} has disappeared`,
            {
              hint: "is the disk holding the repository mounted on the server?",
              cause: error,
            },
          );
        }
        throw error;
      }
    }
  }

  private async fsync(session: Session, handle: Buffer): Promise<void> {
    try {
      await this.conn.request<unknown>(session, (sftp, cb) => sftp.ext_openssh_fsync(handle, cb));
    } catch (error) {
      // Not offered by this server (ssh2 throws before sending): the rename still makes it atomic.
      if (/does not support/i.test(messageOf(error))) return;
      throw error;
    }
  }

  /**
   * Makes the temp file visible under its key.
   * - ifAbsent: the plain SFTP rename, which fails when the target exists (OpenSSH implements it with
   *   link(2) + unlink(2)), so it is an atomic create-if-absent.
   * - otherwise: posix-rename@openssh.com, rename(2), which atomically replaces the target. A server
   *   without that extension only has the plain rename; there we remove the old object first and
   *   rename after. That is NOT atomic: a reader in between sees no object (never a partial one),
   *   and a crash in between loses the old version. OpenSSH has had posix-rename since 5.x.
   */
  private async commit(session: Session, key: string, temp: string, target: string, ifAbsent: boolean) {
    const plainRename = () => this.conn.request<void>(session, (sftp, cb) => sftp.rename(temp, target, cb));
    const targetExists = async () => {
      const attrs = await this.conn
        .request<Stats>(session, (sftp, cb) => sftp.stat(target, cb))
        .catch(() => undefined);
      return attrs !== undefined;
    };
    if (ifAbsent) {
      try {
        await plainRename();
      } catch (error) {
        if (sftpCode(error) === FX.failure && (await targetExists()))
          throw existsError(this.description, key, error);
        throw error;
      }
      return;
    }
    let posixRename = true;
    try {
      await this.conn.request<void>(session, (sftp, cb) => sftp.ext_openssh_rename(temp, target, cb));
      return;
    } catch (error) {
      if (!/does not support/i.test(messageOf(error))) throw error;
      posixRename = false;
    }
    if (!posixRename) {
      try {
        await plainRename();
      } catch (error) {
        if (sftpCode(error) !== FX.failure || !(await targetExists())) throw error;
        await this.conn.request<void>(session, (sftp, cb) => sftp.unlink(target, cb));
        await plainRename();
      }
    }
  }

  private async removeTemp(session: Session, temp: string): Promise<void> {
    // On the put's own session, else (the OpenSSH child died) on the ssh2 one if it is up: no new
    // connection here, which could wait out a timeout on a failure path.
    const main = await this.conn.connected();
    for (const s of new Set([session, main])) {
      if (!s?.alive) continue;
      try {
        await this.conn.request<void>(s, (sftp, cb) => sftp.unlink(temp, cb));
        return;
      } catch (error) {
        if (sftpCode(error) === FX.noSuchFile) return;
      }
    }
    // The connection is gone (or the unlink failed): try again after the next connect.
    this.conn.removeLater(temp);
  }

  // --- list helpers -----------------------------------------------------------------------------

  private async *walk(
    session: Session,
    dirKey: string,
    namePrefix: string,
    signal?: AbortSignal,
  ): AsyncIterable<ObjectInfo> {
    const dir = dirKey === "" ? this.root : this.path(dirKey);
    let entries: { filename: string; attrs: Stats }[];
    try {
      entries = await this.conn.request(session, (sftp, cb) => sftp.readdir(dir, cb));
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return;
      throw mapSftpError(this.description, error, "list", dirKey);
    }
    entries.sort((a, b) => (a.filename < b.filename ? -1 : a.filename > b.filename ? 1 : 0));
    for (const { filename, attrs } of entries) {
      signal?.throwIfAborted();
      // Dot names are temp files (or not ours); links and other non-regular files are skipped.
      if (filename.startsWith(".") || !filename.startsWith(namePrefix)) continue;
      const key = dirKey === "" ? filename : `${dirKey}/${filename}`;
      try {
        validateKey(key);
      } catch {
        continue; // a name no key could produce: not an object of ours
      }
      if (attrs.isDirectory()) {
        yield* this.walk(session, key, "", signal);
      } else if (attrs.isFile()) {
        yield { key, size: attrs.size, modified: new Date(attrs.mtime * 1000) };
      }
    }
  }

  /** Removes directories left empty by a delete, up to (not including) the root. */
  private async pruneEmptyDirectories(session: Session, dir: string): Promise<void> {
    while (dir !== this.root && dir.startsWith(`${this.root}/`)) {
      try {
        await this.conn.request<void>(session, (sftp, cb) => sftp.rmdir(dir, cb));
      } catch {
        return; // not empty, already gone, or rmdir not allowed (append-only account): stop
      }
      dir = posix.dirname(dir);
    }
  }

  async close(): Promise<void> {
    await this.conn.close();
  }
}
