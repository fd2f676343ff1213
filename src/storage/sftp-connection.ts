// One shared SSH connection for the SFTP backend: key authentication only, the server's host key
// checked against pinned keys or a known_hosts file. When the connection drops, requests in flight
// fail (ssh2 would wait forever), the next request reconnects, and temp files a dropped connection
// kept us from removing are removed after the reconnect.
import type { Client, SFTPWrapper } from "ssh2";
import {
  isSshConnectionError,
  loadSshIdentity,
  type SshErrorCodes,
  type SshIdentity,
  type SshOptions,
  sshConnect,
} from "../ssh/client.ts";
import { RemoteStorageErrorCode, storageError } from "./errors.ts";
import { bulkIneligible, OpenSshSftp } from "./sftp-openssh.ts";
import { StorageErrorCode } from "./types.ts";

/** SSH failures of the SFTP backend are storage errors. */
const SSH_CODES: SshErrorCodes = {
  stage: "storage",
  hostKey: RemoteStorageErrorCode.hostKey,
  auth: RemoteStorageErrorCode.auth,
  unavailable: StorageErrorCode.unavailable,
  config: RemoteStorageErrorCode.config,
  io: StorageErrorCode.io,
};

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

export type SftpConnectionOptions = SshOptions;

export interface Session {
  readonly client: { end(): unknown };
  /**
   * ssh2's SFTP client; on a bulk session an OpenSshSftp, which answers the requests a put sends
   * (open, write, close, stat, mkdir, unlink, rename and the OpenSSH extensions) and no others.
   */
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
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === FX.noConnection || code === FX.connectionLost || isSshConnectionError(error);
}

export function abortError(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException("This operation was aborted", "AbortError");
}

export class SftpConnection {
  /** The repository's URL, for messages. */
  readonly description: string;
  private readonly options: SftpConnectionOptions;
  private readonly identity: SshIdentity;
  private current: Promise<Session> | undefined;
  /** The OpenSSH child that carries large uploads (sftp-openssh.ts), once started. */
  private bulk: Promise<Session | undefined> | undefined;
  /** Why large uploads go over ssh2 (the OpenSSH path is not possible or failed to start). */
  bulkUnavailable: string | undefined;
  private closed = false;
  /** Temp files of failed puts that could not be removed because the connection was gone. */
  private readonly orphans = new Set<string>();

  private constructor(options: SftpConnectionOptions, description: string, identity: SshIdentity) {
    this.options = options;
    this.description = description;
    this.identity = identity;
  }

  /** Reads the key files and the accepted host keys; connects on the first request. */
  static async open(options: SftpConnectionOptions, description: string): Promise<SftpConnection> {
    return new SftpConnection(options, description, await loadSshIdentity(options, SSH_CODES));
  }

  /** A temp file to remove after the next connect (the connection that made it is gone). */
  removeLater(path: string): void {
    this.orphans.add(path);
  }

  async close(): Promise<void> {
    this.closed = true;
    const current = this.current;
    this.current = undefined;
    const bulk = this.bulk;
    this.bulk = undefined;
    const session = await current?.catch(() => undefined);
    if (session) this.sessionLost(session, new Error("storage closed"));
    const bulkSession = await bulk;
    if (bulkSession) {
      this.sessionLost(bulkSession, new Error("storage closed"));
      if (bulkSession.client instanceof OpenSshSftp) await bulkSession.client.exited;
    }
  }

  /** What carries large uploads: "openssh", "ssh2 (why)", or "none yet" before the first one. */
  get largeUploads(): string {
    if (this.bulkUnavailable !== undefined) return `ssh2 (${this.bulkUnavailable})`;
    return this.bulk ? "openssh" : "none yet";
  }

  /**
   * The session for a large upload: the OpenSSH child, started on first use after the ssh2
   * session proved the host key and the key; the ssh2 session when the child is not possible or
   * did not start (bulkUnavailable says why). A child that died is started again next time.
   */
  async bulkSession(): Promise<Session> {
    const main = await this.session();
    if (this.bulkUnavailable !== undefined) return main;
    if (!this.bulk) {
      const ineligible = bulkIneligible(this.options, this.identity);
      if (ineligible) {
        this.bulkUnavailable = ineligible;
        return main;
      }
      const starting = OpenSshSftp.start(this.options, this.identity).then(
        (child) => {
          const session: Session = {
            client: child,
            sftp: child as unknown as SFTPWrapper,
            alive: true,
            pending: new Set(),
          };
          child.onLost((error) => {
            if (this.bulk === starting) this.bulk = undefined;
            this.sessionLost(session, error);
          });
          return session;
        },
        (error: unknown) => {
          this.bulkUnavailable = `ssh did not start: ${error instanceof Error ? error.message : String(error)}`;
          return undefined;
        },
      );
      this.bulk = starting;
    }
    return (await this.bulk) ?? main;
  }

  /** The ssh2 session if it is connected (or connecting); never starts a connection. */
  async connected(): Promise<Session | undefined> {
    const session = await this.current?.catch(() => undefined);
    return session?.alive ? session : undefined;
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

  private async connect(): Promise<Session> {
    const client: Client = await sshConnect(this.options, this.identity, SSH_CODES);
    return new Promise<Session>((resolve, reject) => {
      client.sftp((error, sftp) => {
        if (error) {
          client.end();
          return reject(
            storageError(
              StorageErrorCode.unavailable,
              `cannot open SFTP on ${this.description}: ${error.message}`,
              { cause: error },
            ),
          );
        }
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
  }

  private sessionLost(session: Session, cause: Error): void {
    if (!session.alive) return;
    session.alive = false;
    const pending = [...session.pending];
    session.pending.clear();
    for (const reject of pending) reject(cause);
    if (session.client instanceof OpenSshSftp) {
      session.client.end();
      return;
    }
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
