// One shared SSH connection for the SFTP backend: key authentication only, the server's host key
// checked against pinned keys or a known_hosts file. When the connection drops, requests in flight
// fail (ssh2 would wait forever), the next request reconnects, and temp files a dropped connection
// kept us from removing are removed after the reconnect.
import { readFile } from "node:fs/promises";
import ssh2, { type Client, type SFTPWrapper } from "ssh2";
import { isNetworkError, messageOf } from "../util/error-kinds.ts";
import { assertPrivateFile } from "../util/private-file.ts";
import { RemoteStorageErrorCode, storageError } from "./errors.ts";
import {
  checkHostKey,
  fingerprintOf,
  type HostKeyPin,
  hostKeyAlgorithms,
  keyTypeOf,
  parseHostKeyPin,
  parseKnownHosts,
} from "./ssh-hostkey.ts";
import { StorageErrorCode } from "./types.ts";

// ssh2 is CommonJS: `utils` is not visible as a named export to Node's ESM loader.
const { Client: SshClient, utils } = ssh2;

/** SSH_FX_* status codes (draft-ietf-secsh-filexfer-02; 14 and 15 from later drafts). */
export const FX = {
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

export interface SftpConnectionOptions {
  host: string;
  /** Default 22. */
  port?: number;
  user: string;
  /** OpenSSH private key file (mode 0600). */
  privateKeyFile: string;
  /** File holding the private key's passphrase (mode 0600). */
  passphraseFile?: string;
  /** Accepted host key(s): "ssh-ed25519 AAAA…" lines or "SHA256:…" fingerprints. */
  hostKey?: string | readonly string[];
  /** A known_hosts file (plain or hashed entries; @revoked honoured, @cert-authority ignored). */
  knownHostsFile?: string;
  /** Handshake timeout (default 20 s). */
  connectTimeoutMs?: number;
  /** SSH keepalive interval; three unanswered ones drop the connection (default 15 s). */
  keepaliveIntervalMs?: number;
}

export interface Session {
  readonly client: Client;
  readonly sftp: SFTPWrapper;
  alive: boolean;
  /** Rejecters of requests in flight: ssh2 never answers requests sent on a dead channel. */
  readonly pending: Set<(error: Error) => void>;
}

export type Callback<T> = (error: Error | null | undefined, value?: T) => void;

export function sftpCode(error: unknown): number | undefined {
  const code = (error as { code?: unknown } | undefined)?.code;
  return typeof code === "number" ? code : undefined;
}

export function isConnectionError(error: unknown): boolean {
  if (isNetworkError(error)) return true;
  const code = (error as { code?: unknown } | undefined)?.code;
  if (code === FX.noConnection || code === FX.connectionLost) return true;
  const level = (error as { level?: unknown } | undefined)?.level;
  if (level === "client-socket" || level === "client-timeout") return true;
  return /No response from server|Not connected|connection lost|Channel not open|socket hang up/i.test(
    messageOf(error),
  );
}

export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  assertPrivateFile(path, what);
  return readFile(path);
}

export class SftpConnection {
  /** The repository's URL, for messages. */
  readonly description: string;
  private readonly options: SftpConnectionOptions;
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
    options: SftpConnectionOptions,
    description: string,
    key: { privateKey: Buffer; passphrase: string | undefined },
    hostKeys: { pins: HostKeyPin[]; revoked: HostKeyPin[] },
  ) {
    this.options = options;
    this.description = description;
    this.port = options.port ?? 22;
    this.privateKey = key.privateKey;
    this.passphrase = key.passphrase;
    this.pins = hostKeys.pins;
    this.revoked = hostKeys.revoked;
  }

  /** Reads the key files and the accepted host keys; connects on the first request. */
  static async open(options: SftpConnectionOptions, description: string): Promise<SftpConnection> {
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
    return new SftpConnection(options, description, { privateKey, passphrase }, { pins, revoked });
  }

  /** A temp file to remove after the next connect (the connection that made it is gone). */
  removeLater(path: string): void {
    this.orphans.add(path);
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    const session = await current?.catch(() => undefined);
    if (session) this.sessionLost(session, new Error("storage closed"));
  }

  /** The live session, connecting (again) when there is none. */
  session(): Promise<Session> {
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
  request<T>(session: Session, send: (sftp: SFTPWrapper, cb: Callback<T>) => void): Promise<T> {
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
}
