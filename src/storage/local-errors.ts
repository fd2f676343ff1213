// errno errors of the local backend as StrongboxErrors with a storage code.
import { StrongboxError } from "../errors.ts";
import { errnoOf, isAbortError } from "../util/error-kinds.ts";
import { existsError, notFoundError } from "./errors.ts";
import { StorageErrorCode } from "./types.ts";

export function disappearedError(root: string, cause: unknown): StrongboxError {
  return new StrongboxError(StorageErrorCode.unavailable, `storage directory ${root} has disappeared`, {
    stage: "storage",
    hint: "is the disk or network share holding the repository mounted?",
    cause,
  });
}

/** Turns an errno error into a StrongboxError with a storage code. */
export function mapLocalError(
  at: { root: string; description: string },
  error: unknown,
  operation: string,
  key: string,
): unknown {
  if (error instanceof StrongboxError || isAbortError(error)) return error;
  const code = errnoOf(error);
  if (code === undefined) return error; // not from the filesystem (an abort reason, a bug): as is
  const where = `${operation} ${key || "/"} in ${at.description}`;
  const options = { stage: "storage", cause: error, details: { key, operation, errno: code } };
  switch (code) {
    case "EEXIST":
      return existsError(at.description, key, error);
    case "ENOENT":
      return notFoundError(at.description, key, error);
    case "ENOSPC":
    case "EDQUOT":
      return new StrongboxError(
        StorageErrorCode.full,
        `storage is full: ${code === "EDQUOT" ? "disk quota exceeded on" : "no space left on"} the device holding ${at.root} (while writing ${key})`,
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
