// SFTP statuses and connection errors as StrongboxErrors with a storage code.
import { StrongboxError } from "../errors.ts";
import { isAbortError, messageOf } from "../util/error-kinds.ts";
import { notFoundError, storageError } from "./errors.ts";
import { FX, isConnectionError, type Session, type SftpConnection, sftpCode } from "./sftp-connection.ts";
import { StorageErrorCode } from "./types.ts";

/** Free space below which a failed write is reported as a full disk. */
const FULL_THRESHOLD = 1024 * 1024;

/** Turns an SFTP status or a connection error into a StrongboxError with a storage code. */
export function mapSftpError(description: string, error: unknown, operation: string, key: string): unknown {
  if (error instanceof StrongboxError || isAbortError(error)) return error;
  const where = `${operation} ${key || "/"} in ${description}`;
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
      return notFoundError(description, key, error);
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

/** A failed write says only "Failure" in SFTP v3: a look at the free space tells a full disk apart. */
export async function mapWriteError(
  conn: SftpConnection,
  session: Session,
  at: { root: string; description: string },
  error: unknown,
  operation: string,
  key: string,
): Promise<unknown> {
  if (sftpCode(error) === FX.failure && !session.alive) {
    // The server said only "Failure" and then the connection dropped (the statvfs below is out of
    // reach): the drop is what the operator can act on; the next attempt reconnects.
    return storageError(
      StorageErrorCode.unavailable,
      `connection lost: ${operation} ${key} in ${at.description} (the server answered "Failure" just before the connection dropped)`,
      {
        hint: "the SSH connection dropped; the next attempt reconnects",
        cause: error,
        details: { key, operation },
      },
    );
  }
  if (sftpCode(error) === FX.failure) {
    try {
      const fs = await conn.request<{ f_bavail: number; f_frsize: number; f_bsize: number }>(
        session,
        (sftp, cb) => sftp.ext_openssh_statvfs(at.root, cb),
      );
      const free = Number(fs.f_bavail) * Number(fs.f_frsize || fs.f_bsize);
      if (free < FULL_THRESHOLD) {
        return storageError(
          StorageErrorCode.full,
          `storage is full: no space left on the server's filesystem holding ${at.description} (while writing ${key})`,
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
  return mapSftpError(at.description, error, operation, key);
}
