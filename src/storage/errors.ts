// Errors of the storage backends: the codes only remote backends (SFTP, S3) produce, next to the
// common ones in types.ts (none of them transient: retrying a refused host key, refused credentials
// or a missing bucket cannot help), and the errors every backend makes alike.
import type { ErrorCode } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { StorageErrorCode } from "./types.ts";

export const RemoteStorageErrorCode = {
  /** The SSH server presented a host key that is not the pinned one (or is unknown). */
  hostKey: "STORAGE_HOST_KEY",
  /** The server refused our credentials (SSH user key, S3 access key or signature). */
  auth: "STORAGE_AUTH",
  /** The configured S3 bucket does not exist. */
  bucketMissing: "STORAGE_BUCKET_MISSING",
  /** A plain-text transport was configured but not explicitly allowed. */
  insecure: "STORAGE_INSECURE",
  /** The TLS certificate of the server could not be verified. */
  tls: "STORAGE_TLS",
  /** The backend configuration cannot work (unreadable key file, bad option). */
  config: "STORAGE_CONFIG",
} as const;

export function storageError(
  code: ErrorCode,
  message: string,
  options: { hint?: string; cause?: unknown; details?: Record<string, unknown> } = {},
): StrongboxError {
  return new StrongboxError(code, message, { stage: "storage", ...options });
}

export function existsError(description: string, key: string, cause?: unknown): StrongboxError {
  return storageError(StorageErrorCode.exists, `${key} already exists in ${description}`, {
    cause,
    details: { key },
  });
}

export function notFoundError(description: string, key: string, cause?: unknown): StrongboxError {
  return storageError(StorageErrorCode.notFound, `${key} not found in ${description}`, {
    cause,
    details: { key },
  });
}
