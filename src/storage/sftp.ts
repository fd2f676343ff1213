// SFTP backend (ssh2). Authentication by key only; the server's host key must match a pinned key or
// a known_hosts entry. A put writes a temp file (".tmp-<random>-<name>", created 0600 by the open
// request itself, O_EXCL) with pipelined write requests, fsyncs it (fsync@openssh.com) and renames it
// into place. Directories are created 0700. One SSH connection is shared by all operations; when it
// drops, pending operations fail with STORAGE_UNAVAILABLE and the next operation reconnects, so the
// core wrapper's retry works. Temp files that a dropped connection kept us from removing are removed
// after the reconnect.
import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import { addAbortSignal, Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import ssh2, { type Client, type SFTPWrapper, type Stats } from "ssh2";
import { assertPrivateFile } from "../config/load.ts";
import { StrongboxError } from "../errors.ts";
import { TEMP_PREFIX } from "./local.ts";
import { isAbortError, messageOf, RemoteStorageErrorCode, storageError } from "./remote-errors.ts";
import {
  checkHostKey,
  fingerprintOf,
  type HostKeyPin,
  hostKeyAlgorithms,
  keyTypeOf,
  parseHostKeyPin,
  parseKnownHosts,
} from "./ssh-hostkey.ts";
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

// ssh2 is CommonJS: `utils` is not visible as a named export to Node's ESM loader.
const { Client: SshClient, utils } = ssh2;

const DIR_MODE = 0o700;
const FILE_MODE = 0o600;
const READ_ONLY_FILE_MODE = 0o400;
/** One write or read request: OpenSSH's limit (ssh2 splits it for servers that announce less). */
const CHUNK = 255 * 1024;
/** Unacknowledged write bytes per put: bounds memory while keeping the link busy. */
const WRITE_WINDOW = 8 * 1024 * 1024;
/** Read requests in flight per get. */
const READ_AHEAD = 8;
/** Free space below which a failed write is reported as a full disk. */
const FULL_THRESHOLD = 1024 * 1024;

/** SSH_FX_* status codes (draft-ietf-secsh-filexfer-02; 14 and 15 from later drafts). */
const FX = {
  eof: 1,
  noSuchFile: 2,
  permissionDenied: 3,
  failure: 4,
  noConnection: 6,
  connectionLost: 7,
  opUnsupported: 8,
  noSpace: 14,
  quotaExceeded: 15,
} as const;

export interface SftpStorageOptions {
  host: string;
  /** Default 22. */
  port?: number;
  user: string;
  /** Directory of the repository on the server; relative paths start at the login directory. */
  path: string;
  /** OpenSSH private key file (mode 0600). */
  privateKeyFile: string;
  /** File holding the private key's passphrase (mode 0600). */
  passphraseFile?: string;
  /** Accepted host key(s): "ssh-ed25519 AAAA…" lines or "SHA256:…" fingerprints. */
  hostKey?: string | readonly string[];
  /** A known_hosts file (plain or hashed entries; @revoked honoured, @cert-authority ignored). */
  knownHostsFile?: string;
  /** Create the repository directory (0700) when missing (default true). */
  create?: boolean;
  /** fsync each file on the server before the rename, when it offers fsync@openssh.com (default true). */
  durable?: boolean;
  /** Create files 0400 instead of 0600, so an account that may not chmod cannot reopen them for writing. */
  readOnlyFiles?: boolean;
  /** Handshake timeout (default 20 s). */
  connectTimeoutMs?: number;
  /** SSH keepalive interval; three unanswered ones drop the connection (default 15 s). */
  keepaliveIntervalMs?: number;
}

interface Session {
  readonly client: Client;
  readonly sftp: SFTPWrapper;
  alive: boolean;
  /** Rejecters of requests in flight: ssh2 never answers requests sent on a dead channel. */
  readonly pending: Set<(error: Error) => void>;
}

type Callback<T> = (error: Error | null | undefined, value?: T) => void;

/** Marks an error of the destination (as opposed to the caller's source stream) in a pipeline. */
class WriteFailure extends Error {
  constructor(cause: unknown) {
    super("write failed", { cause });
  }
}

function sftpCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

const CONNECTION_ERRNO = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ECONNABORTED",
  "EPIPE",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "EAI_AGAIN",
]);

function isConnectionError(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code === "string" && CONNECTION_ERRNO.has(code)) return true;
  if (code === FX.noConnection || code === FX.connectionLost) return true;
  const level = (error as { level?: unknown } | undefined)?.level;
  if (level === "client-socket" || level === "client-timeout") return true;
  return /No response from server|Not connected|connection lost|Channel not open|socket hang up/i.test(
    messageOf(error),
  );
}

function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  assertPrivateFile(path, what);
  return readFile(path);
}

/** Paced writer: issues write requests at increasing offsets, at most WRITE_WINDOW bytes unacknowledged. */
class PipelinedWriter {
  position = 0;
  private inFlight = 0;
  private failure: unknown;
  private waiters: (() => void)[] = [];
  private readonly send: (piece: Buffer, position: number) => Promise<void>;

  constructor(send: (piece: Buffer, position: number) => Promise<void>) {
    this.send = send;
  }

  async write(buffer: Buffer, signal?: AbortSignal): Promise<void> {
    for (let offset = 0; offset < buffer.length; offset += CHUNK) {
      while (this.inFlight >= WRITE_WINDOW && this.failure === undefined) await this.wait();
      if (this.failure !== undefined) throw new WriteFailure(this.failure);
      if (signal?.aborted) throw abortError(signal);
      const piece = buffer.subarray(offset, offset + CHUNK);
      const position = this.position;
      this.position += piece.length;
      this.inFlight += piece.length;
      this.send(piece, position).then(
        () => this.settle(piece.length),
        (error: unknown) => {
          this.failure ??= error;
          this.settle(piece.length);
        },
      );
    }
  }

  /** Waits for every request; throws the first failure. */
  async flush(): Promise<void> {
    await this.idle();
    if (this.failure !== undefined) throw new WriteFailure(this.failure);
  }

  /** Waits for every request, ignoring failures (before closing the handle of a failed put). */
  async idle(): Promise<void> {
    while (this.inFlight > 0) await this.wait();
  }

  private settle(length: number): void {
    this.inFlight -= length;
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
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
  private readonly port: number;
  private readonly privateKey: Buffer;
  private readonly passphrase: string | undefined;
  private readonly pins: HostKeyPin[];
  private readonly revoked: HostKeyPin[];
  private current: Promise<Session> | undefined;
  private closed = false;
  /** Temp files of failed puts that could not be removed because the connection was gone. */
  private readonly orphans = new Set<string>();

  private constructor(
    options: SftpStorageOptions,
    key: { privateKey: Buffer; passphrase: string | undefined },
    hostKeys: { pins: HostKeyPin[]; revoked: HostKeyPin[] },
  ) {
    this.options = options;
    this.port = options.port ?? 22;
    this.privateKey = key.privateKey;
    this.passphrase = key.passphrase;
    this.pins = hostKeys.pins;
    this.revoked = hostKeys.revoked;
    this.root = options.path;
    this.description = `sftp://${options.user}@${options.host}:${this.port}/${options.path.replace(/^\//, "")}`;
  }

  /** Reads the key files, connects, verifies the host key, and creates the directory (0700). */
  static async open(options: SftpStorageOptions): Promise<SftpStorage> {
    const privateKey = await readPrivateFile(options.privateKeyFile, "SSH private key");
    const passphrase = options.passphraseFile
      ? (await readPrivateFile(options.passphraseFile, "SSH key passphrase file"))
          .toString("utf8")
          .replace(/\r?\n$/, "")
      : undefined;
    const parsed = utils.parseKey(privateKey, passphrase);
    if (parsed instanceof Error) {
      throw storageError(
        RemoteStorageErrorCode.config,
        `cannot use the SSH private key ${options.privateKeyFile}: ${parsed.message}`,
        {
          hint: /passphrase/i.test(parsed.message)
            ? "set passphraseFile to a file holding the key's passphrase"
            : "give an OpenSSH private key (ssh-keygen -t ed25519)",
          cause: parsed,
        },
      );
    }
    const port = options.port ?? 22;
    const pins = [options.hostKey ?? []].flat().map((pin) => parseHostKeyPin(pin));
    const revoked: HostKeyPin[] = [];
    if (options.knownHostsFile) {
      let text: string;
      try {
        text = await readFile(options.knownHostsFile, "utf8");
      } catch (error) {
        throw storageError(
          RemoteStorageErrorCode.config,
          `cannot read known_hosts file ${options.knownHostsFile}: ${messageOf(error)}`,
          { cause: error },
        );
      }
      const known = parseKnownHosts(text, options.host, port);
      pins.push(...known.pins);
      revoked.push(...known.revoked);
    }
    if (pins.length === 0 && !options.knownHostsFile) {
      throw storageError(
        RemoteStorageErrorCode.config,
        `no host key for ${options.host}: set hostKey or knownHostsFile (keys are never accepted blindly)`,
        {
          hint: `get it on a trusted path, e.g. ssh-keyscan -p ${port} ${options.host}, and compare fingerprints`,
        },
      );
    }
    const storage = new SftpStorage(options, { privateKey, passphrase }, { pins, revoked });
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
    if (ifAbsent && (await this.stat(key, options))) throw this.exists(key);
    const session = await this.session();
    let temp: string | undefined;
    let handle: Buffer | undefined;
    let writer: PipelinedWriter | undefined;
    let copying = false;
    try {
      ({ temp, handle } = await this.createTemp(session, key, target));
      const fileHandle = handle;
      writer = new PipelinedWriter((piece, position) =>
        this.request<void>(session, (sftp, cb) =>
          sftp.write(fileHandle, piece, 0, piece.length, position, cb),
        ),
      );
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
      const size = pacer.position;
      if (this.options.durable ?? true) await this.fsync(session, fileHandle);
      handle = undefined;
      await this.request<void>(session, (sftp, cb) => sftp.close(fileHandle, cb));
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
          : await this.mapWriteError(
              session,
              error instanceof WriteFailure ? error.cause : error,
              "put",
              key,
            );
      if (handle && session.alive) {
        const open = handle;
        await this.request<void>(session, (sftp, cb) => sftp.close(open, cb)).catch(() => {});
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
    const session = await this.session();
    let handle: Buffer;
    try {
      handle = await this.request<Buffer>(session, (sftp, cb) => sftp.open(path, "r", cb));
    } catch (error) {
      throw this.mapError(error, "get", key);
    }
    let size: number;
    try {
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.fstat(handle, cb));
      if (!attrs.isFile()) throw this.notFound(key);
      size = attrs.size;
    } catch (error) {
      await this.request<void>(session, (sftp, cb) => sftp.close(handle, cb)).catch(() => {});
      throw this.mapError(error, "get", key);
    }
    const start = options.start ?? 0;
    const end = Math.min(options.end ?? Number.POSITIVE_INFINITY, size - 1);
    const stream = this.readStream(session, handle, key, start, end);
    return options.signal ? addAbortSignal(options.signal, stream) : stream;
  }

  async stat(key: string, options: OperationOptions = {}): Promise<ObjectInfo | undefined> {
    validateKey(key);
    options.signal?.throwIfAborted();
    const session = await this.session();
    try {
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.stat(this.path(key), cb));
      if (!attrs.isFile()) return undefined;
      return { key, size: attrs.size, modified: new Date(attrs.mtime * 1000) };
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return undefined;
      throw this.mapError(error, "stat", key);
    }
  }

  async *list(prefix: string, options: OperationOptions = {}): AsyncIterable<ObjectInfo> {
    validatePrefix(prefix);
    const slash = prefix.lastIndexOf("/");
    const session = await this.session();
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
    const session = await this.session();
    const target = this.path(key);
    try {
      await this.request<void>(session, (sftp, cb) => sftp.unlink(target, cb));
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return;
      // A folder is a prefix, not an object: nothing to delete. Anything else is a real failure.
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.stat(target, cb)).catch(
        () => undefined,
      );
      if (attrs?.isDirectory()) return;
      throw this.mapError(error, "delete", key);
    }
    await this.pruneEmptyDirectories(session, posix.dirname(target));
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    const session = await current?.catch(() => undefined);
    if (session) this.sessionLost(session, new Error("storage closed"));
  }

  /**
   * Removes temp files left behind by crashed runs, if older than `olderThanMs` (a running put
   * keeps its temp file's mtime fresh). Returns how many were removed.
   */
  async cleanupTemp(olderThanMs: number): Promise<number> {
    const session = await this.session();
    const cutoff = Date.now() - olderThanMs;
    let removed = 0;
    const visit = async (dir: string): Promise<void> => {
      let entries: { filename: string; attrs: Stats }[];
      try {
        entries = await this.request(session, (sftp, cb) => sftp.readdir(dir, cb));
      } catch (error) {
        if (sftpCode(error) === FX.noSuchFile) return;
        throw this.mapError(error, "cleanup", dir);
      }
      for (const { filename, attrs } of entries) {
        const path = `${dir}/${filename}`;
        if (attrs.isDirectory() && !filename.startsWith(".")) {
          await visit(path);
        } else if (attrs.isFile() && filename.startsWith(TEMP_PREFIX) && attrs.mtime * 1000 < cutoff) {
          await this.request<void>(session, (sftp, cb) => sftp.unlink(path, cb)).then(
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

  // --- connection -------------------------------------------------------------------------------

  /** The live session, connecting (again) when there is none. */
  private session(): Promise<Session> {
    if (this.closed) {
      return Promise.reject(storageError(StorageErrorCode.io, `${this.description} is closed`));
    }
    if (!this.current) {
      const connecting = this.connect().then(async (session) => {
        await this.afterReconnect(session);
        return session;
      });
      this.current = connecting;
      connecting.catch(() => {
        if (this.current === connecting) this.current = undefined;
      });
    }
    return this.current;
  }

  private connect(): Promise<Session> {
    const { host, user } = this.options;
    const port = this.port;
    return new Promise<Session>((resolve, reject) => {
      const client = new SshClient();
      let presented: Buffer | undefined;
      let refusal: string | undefined;
      let settled = false;
      const fail = (error: unknown) => {
        if (settled) return;
        settled = true;
        client.end();
        reject(this.connectError(error, presented, refusal));
      };
      client.on("error", fail);
      client.on("close", () => fail(new Error("the server closed the connection during the handshake")));
      client.once("ready", () => {
        client.sftp((error, sftp) => {
          if (error) return fail(error);
          if (settled) return;
          settled = true;
          // Many small requests (stat, open, close, rename) wait for answers: no Nagle delays.
          client.setNoDelay(true);
          const session: Session = { client, sftp, alive: true, pending: new Set() };
          const lost = (cause?: unknown) =>
            this.sessionLost(session, cause instanceof Error ? cause : new Error("connection closed"));
          client.on("close", lost);
          client.on("end", lost);
          client.on("error", lost);
          sftp.on("close", lost);
          sftp.on("error", lost);
          resolve(session);
        });
      });
      const serverHostKey = hostKeyAlgorithms(this.pins);
      client.connect({
        host,
        port,
        username: user,
        privateKey: this.privateKey,
        ...(this.passphrase !== undefined ? { passphrase: this.passphrase } : {}),
        hostVerifier: (key: Buffer): boolean => {
          presented = key;
          const check = checkHostKey(key, this.pins, this.revoked);
          if (!check.ok) refusal = check.reason;
          return check.ok;
        },
        ...(serverHostKey ? { algorithms: { serverHostKey: serverHostKey as never } } : {}),
        readyTimeout: this.options.connectTimeoutMs ?? 20_000,
        keepaliveInterval: this.options.keepaliveIntervalMs ?? 15_000,
        keepaliveCountMax: 3,
      });
    });
  }

  private sessionLost(session: Session, cause: Error): void {
    if (!session.alive) return;
    session.alive = false;
    const pending = [...session.pending];
    session.pending.clear();
    for (const reject of pending) reject(cause);
    this.current?.then(
      (s) => {
        if (s === session) this.current = undefined;
      },
      () => {},
    );
    session.client.end();
  }

  /** After a reconnect: remove temp files that failed puts had to leave behind. */
  private async afterReconnect(session: Session): Promise<void> {
    for (const temp of [...this.orphans]) {
      try {
        await this.request<void>(session, (sftp, cb) => sftp.unlink(temp, cb));
        this.orphans.delete(temp);
      } catch (error) {
        if (sftpCode(error) === FX.noSuchFile) this.orphans.delete(temp);
        if (!session.alive) return;
      }
    }
  }

  private connectError(error: unknown, presented: Buffer | undefined, refusal: string | undefined): unknown {
    const where = `${this.options.user}@${this.options.host}:${this.port}`;
    if (refusal !== undefined && presented) {
      const fingerprint = fingerprintOf(presented);
      return storageError(
        RemoteStorageErrorCode.hostKey,
        `host key verification failed for ${where}: the server presented ${fingerprint}, and ${refusal}`,
        {
          hint: "if the server's key was changed on purpose, compare this fingerprint with `ssh-keygen -lf` of its host key on the server itself, then update hostKey or the known_hosts file; otherwise someone may be intercepting the connection",
          cause: error,
          details: { presentedFingerprint: fingerprint, keyType: keyTypeOf(presented) },
        },
      );
    }
    const level = (error as { level?: unknown }).level;
    if (level === "client-authentication") {
      return storageError(
        RemoteStorageErrorCode.auth,
        `the SSH server ${where} refused the key ${this.options.privateKeyFile}`,
        {
          hint: `add the public key (ssh-keygen -y -f ${this.options.privateKeyFile}) to ~${this.options.user}/.ssh/authorized_keys on the server, and check the user name`,
          cause: error,
        },
      );
    }
    if (isConnectionError(error) || level === "client-dns" || level === "protocol" || level === "handshake") {
      return storageError(StorageErrorCode.unavailable, `cannot connect to ${where}: ${messageOf(error)}`, {
        hint: "is the SSH server running and reachable?",
        cause: error,
      });
    }
    return storageError(StorageErrorCode.io, `SSH connection to ${where} failed: ${messageOf(error)}`, {
      cause: error,
    });
  }

  /** One SFTP request; rejects when the session dies before the answer (ssh2 would wait forever). */
  private request<T>(session: Session, send: (sftp: SFTPWrapper, cb: Callback<T>) => void): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      if (!session.alive) {
        reject(new Error("Not connected"));
        return;
      }
      const onLost = (error: Error) =>
        reject(Object.assign(new Error(`connection lost: ${error.message}`), { cause: error }));
      session.pending.add(onLost);
      try {
        send(session.sftp, (error, value) => {
          session.pending.delete(onLost);
          if (error) reject(error);
          else resolve(value as T);
        });
      } catch (error) {
        session.pending.delete(onLost);
        reject(error);
      }
    });
  }

  // --- put helpers ------------------------------------------------------------------------------

  private async prepareRoot(create: boolean): Promise<string> {
    const session = await this.session();
    const path = this.options.path.replace(/\/+$/, "") || "/";
    try {
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.stat(path, cb));
      if (!attrs.isDirectory()) {
        throw storageError(StorageErrorCode.io, `${this.description} is not a directory`, {
          hint: "point the repository at a directory",
        });
      }
    } catch (error) {
      if (sftpCode(error) !== FX.noSuchFile) throw this.mapError(error, "open", "");
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
          throw this.mapError(e, "open", "");
        });
      }
    }
    try {
      return await this.request<string>(session, (sftp, cb) => sftp.realpath(path, cb));
    } catch (error) {
      throw this.mapError(error, "open", "");
    }
  }

  /** mkdir 0700; an existing directory is fine (servers report that as a plain failure). */
  private async mkdir(session: Session, dir: string): Promise<void> {
    try {
      await this.request<void>(session, (sftp, cb) => sftp.mkdir(dir, { mode: DIR_MODE }, cb));
    } catch (error) {
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.stat(dir, cb)).catch(
        () => undefined,
      );
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
        const handle = await this.request<Buffer>(session, (sftp, cb) => sftp.open(temp, "wx", { mode }, cb));
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
      await this.request<unknown>(session, (sftp, cb) => sftp.ext_openssh_fsync(handle, cb));
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
    const plainRename = () => this.request<void>(session, (sftp, cb) => sftp.rename(temp, target, cb));
    const targetExists = async () => {
      const attrs = await this.request<Stats>(session, (sftp, cb) => sftp.stat(target, cb)).catch(
        () => undefined,
      );
      return attrs !== undefined;
    };
    if (ifAbsent) {
      try {
        await plainRename();
      } catch (error) {
        if (sftpCode(error) === FX.failure && (await targetExists())) throw this.exists(key, error);
        throw error;
      }
      return;
    }
    let posixRename = true;
    try {
      await this.request<void>(session, (sftp, cb) => sftp.ext_openssh_rename(temp, target, cb));
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
        await this.request<void>(session, (sftp, cb) => sftp.unlink(target, cb));
        await plainRename();
      }
    }
  }

  private async removeTemp(session: Session, temp: string): Promise<void> {
    if (session.alive) {
      try {
        await this.request<void>(session, (sftp, cb) => sftp.unlink(temp, cb));
        return;
      } catch (error) {
        if (sftpCode(error) === FX.noSuchFile) return;
      }
    }
    // The connection is gone (or the unlink failed): try again after the next connect.
    this.orphans.add(temp);
  }

  /** A failed write says only "Failure" in SFTP v3: a look at the free space tells a full disk apart. */
  private async mapWriteError(
    session: Session,
    error: unknown,
    operation: string,
    key: string,
  ): Promise<unknown> {
    if (sftpCode(error) === FX.failure && session.alive) {
      try {
        const fs = await this.request<{ f_bavail: number; f_frsize: number; f_bsize: number }>(
          session,
          (sftp, cb) => sftp.ext_openssh_statvfs(this.root, cb),
        );
        const free = Number(fs.f_bavail) * Number(fs.f_frsize || fs.f_bsize);
        if (free < FULL_THRESHOLD) {
          return storageError(
            StorageErrorCode.full,
            `storage is full: no space left on the server's filesystem holding ${this.description} (while writing ${key})`,
            {
              hint: "free space on the server or move the repository to a larger filesystem",
              cause: error,
              details: { key, operation, freeBytes: free },
            },
          );
        }
      } catch {
        // No statvfs@openssh.com: fall through to the generic message.
      }
    }
    return this.mapError(error, operation, key);
  }

  // --- read helpers -----------------------------------------------------------------------------

  /** Reads [start, end] with a few requests in flight, in order; closes the handle at the end. */
  private readStream(session: Session, handle: Buffer, key: string, start: number, end: number): Readable {
    let next = start;
    const queue: Promise<Buffer>[] = [];
    let closed = false;
    const readAt = async (position: number, length: number): Promise<Buffer> => {
      const buffer = Buffer.allocUnsafe(length);
      let filled = 0;
      while (filled < length) {
        const n = await this.request<number>(session, (sftp, cb) =>
          sftp.read(handle, buffer, filled, length - filled, position + filled, cb),
        );
        if (!n) break; // end of file (the object shrank: it was replaced meanwhile)
        filled += n;
      }
      return buffer.subarray(0, filled);
    };
    const fill = () => {
      while (queue.length < READ_AHEAD && next <= end) {
        const length = Math.min(CHUNK, end - next + 1);
        const request = readAt(next, length);
        request.catch(() => {}); // handled when its turn comes
        queue.push(request);
        next += length;
      }
    };
    const closeHandle = async () => {
      if (closed) return;
      closed = true;
      if (session.alive)
        await this.request<void>(session, (sftp, cb) => sftp.close(handle, cb)).catch(() => {});
    };
    const stream: Readable = new Readable({
      highWaterMark: CHUNK * 2,
      read: () => {
        fill();
        const head = queue.shift();
        if (!head) {
          void closeHandle().then(() => stream.push(null));
          return;
        }
        head.then(
          (buffer) => {
            if (buffer.length === 0) queue.length = 0;
            stream.push(buffer.length > 0 ? buffer : null);
            if (buffer.length === 0) void closeHandle();
          },
          (error: unknown) => stream.destroy(this.mapError(error, "get", key) as Error),
        );
      },
      destroy: (error, callback) => {
        queue.length = 0;
        next = end + 1;
        closeHandle().then(() => callback(error), callback);
      },
    });
    return stream;
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
      entries = await this.request(session, (sftp, cb) => sftp.readdir(dir, cb));
    } catch (error) {
      if (sftpCode(error) === FX.noSuchFile) return;
      throw this.mapError(error, "list", dirKey);
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
        await this.request<void>(session, (sftp, cb) => sftp.rmdir(dir, cb));
      } catch {
        return; // not empty, already gone, or rmdir not allowed (append-only account): stop
      }
      dir = posix.dirname(dir);
    }
  }

  // --- errors -----------------------------------------------------------------------------------

  private exists(key: string, cause?: unknown): StrongboxError {
    return storageError(StorageErrorCode.exists, `${key} already exists in ${this.description}`, {
      cause,
      details: { key },
    });
  }

  private notFound(key: string, cause?: unknown): StrongboxError {
    return storageError(StorageErrorCode.notFound, `${key} not found in ${this.description}`, {
      cause,
      details: { key },
    });
  }

  /** Turns an SFTP status or a connection error into a StrongboxError with a storage code. */
  private mapError(error: unknown, operation: string, key: string): unknown {
    if (error instanceof StrongboxError || isAbortError(error)) return error;
    const where = `${operation} ${key || "/"} in ${this.description}`;
    const code = sftpCode(error);
    const options = { cause: error, details: { key, operation, sftpStatus: code } };
    if (isConnectionError(error)) {
      return storageError(StorageErrorCode.unavailable, `connection lost: ${where} (${messageOf(error)})`, {
        ...options,
        hint: "the SSH connection dropped; the next attempt reconnects",
      });
    }
    switch (code) {
      case FX.noSuchFile:
        return this.notFound(key, error);
      case FX.permissionDenied:
        return storageError(StorageErrorCode.permission, `permission denied: ${where}`, {
          ...options,
          hint: "the SFTP account may not do this here (an append-only account refuses deletes and overwrites by design)",
        });
      case FX.noSpace:
      case FX.quotaExceeded:
        return storageError(
          StorageErrorCode.full,
          `storage is full: ${code === FX.quotaExceeded ? "quota exceeded" : "no space left"} on the server (${where})`,
          { ...options, hint: "free space on the server or raise the account's quota" },
        );
      case FX.opUnsupported:
        return storageError(
          StorageErrorCode.io,
          `the SFTP server does not support this request: ${where}`,
          options,
        );
      case FX.failure:
        return storageError(
          StorageErrorCode.io,
          `${where} failed on the server (SFTP reports only "Failure": often a full disk, an exceeded quota, or a key that is both an object and a folder)`,
          options,
        );
      default:
        return storageError(StorageErrorCode.io, `${where} failed: ${messageOf(error)}`, options);
    }
  }
}
