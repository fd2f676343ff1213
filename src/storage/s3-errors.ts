// S3 SDK and network errors as StrongboxErrors with a storage code, and the endpoint check.
import { StrongboxError } from "../errors.ts";
import { isAbortError, messageOf, NETWORK_ERRNO } from "../util/error-kinds.ts";
import { existsError, notFoundError, RemoteStorageErrorCode, storageError } from "./errors.ts";
import { StorageErrorCode } from "./types.ts";

/** What an error message names of the storage it happened on. */
export interface S3ErrorContext {
  description: string;
  bucket: string;
  endpoint?: string | undefined;
  /** The credentials file, or the default chain (credentialsSource). */
  credentials: string;
  objectLock: boolean;
}

export function httpStatus(error: unknown): number | undefined {
  return (error as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
}

export function errorName(error: unknown): string {
  const e = error as { name?: unknown; Code?: unknown } | undefined;
  return typeof e?.Code === "string" ? e.Code : typeof e?.name === "string" ? e.name : "";
}

/** Beyond the errno codes of a dropped connection: what the SDK's HTTP clients say of one. */
const NETWORK_CODES = new Set([
  ...NETWORK_ERRNO,
  "ENOTFOUND",
  "ERR_STREAM_PREMATURE_CLOSE",
  "UND_ERR_SOCKET",
]);

const TLS_CODES = new Set([
  "UNABLE_TO_VERIFY_LEAF_SIGNATURE",
  "UNABLE_TO_GET_ISSUER_CERT",
  "UNABLE_TO_GET_ISSUER_CERT_LOCALLY",
  "SELF_SIGNED_CERT_IN_CHAIN",
  "DEPTH_ZERO_SELF_SIGNED_CERT",
  "CERT_HAS_EXPIRED",
  "CERT_NOT_YET_VALID",
  "CERT_UNTRUSTED",
  "CERT_REJECTED",
  "ERR_TLS_CERT_ALTNAME_INVALID",
  "EPROTO",
]);

const AUTH_NAMES = new Set([
  "InvalidAccessKeyId",
  "SignatureDoesNotMatch",
  "ExpiredToken",
  "InvalidToken",
  "TokenRefreshRequired",
  "InvalidSecurity",
]);

const TRANSIENT_NAMES = new Set([
  "SlowDown",
  "ServiceUnavailable",
  "InternalError",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "TimeoutError",
  "RequestTimeoutException",
  "OperationAborted",
  "ConditionalRequestConflict",
]);

export function endpointProblem(endpoint: string, allowInsecureHttp: boolean): StrongboxError | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return storageError(
      RemoteStorageErrorCode.config,
      `S3 endpoint ${JSON.stringify(endpoint)} is not a URL`,
      {
        hint: 'write it as "https://host[:port]"',
      },
    );
  }
  if (url.protocol === "https:") return undefined;
  if (url.protocol === "http:") {
    if (allowInsecureHttp) return undefined;
    return storageError(
      RemoteStorageErrorCode.insecure,
      `refusing the plain http:// S3 endpoint ${endpoint}: request signatures, object names and backup data would cross the network unprotected and could be altered or dropped unnoticed`,
      {
        hint: "use https:// (with caFile for a private CA); only for a server on loopback or a trusted network, set allowInsecureHttp: true",
      },
    );
  }
  return storageError(RemoteStorageErrorCode.config, `S3 endpoint ${endpoint} must start with https://`);
}

/** Turns an SDK or network error into a StrongboxError with a storage code. */
export function mapS3Error(at: S3ErrorContext, error: unknown, operation: string, key: string): unknown {
  if (error instanceof StrongboxError || isAbortError(error)) return error;
  const name = errorName(error);
  const status = httpStatus(error);
  const code = (error as { code?: unknown }).code;
  const where = `${operation} ${key || "/"} in ${at.description}`;
  const reason = name && name !== "Error" ? name : messageOf(error);
  const options = { cause: error, details: { key, operation, s3Error: name, httpStatus: status } };
  if (typeof code === "string" && TLS_CODES.has(code)) {
    return storageError(
      RemoteStorageErrorCode.tls,
      `TLS verification of the S3 endpoint failed: ${messageOf(error)} (${code})`,
      {
        ...options,
        hint: "if the server uses a private CA, set caFile to that CA's certificate (PEM)",
      },
    );
  }
  if (
    (typeof code === "string" && NETWORK_CODES.has(code)) ||
    TRANSIENT_NAMES.has(name) ||
    (status !== undefined && status >= 500) ||
    status === 409
  ) {
    return storageError(StorageErrorCode.unavailable, `temporary failure: ${where} (${reason})`, {
      ...options,
      hint: "the S3 server is unreachable or busy; the request is retried",
    });
  }
  if (name === "NoSuchBucket") {
    return storageError(
      RemoteStorageErrorCode.bucketMissing,
      `bucket ${at.bucket} does not exist${at.endpoint ? ` at ${at.endpoint}` : ""}`,
      {
        ...options,
        hint: "create it (with Object Lock enabled if you use objectLock), or check bucket, region, endpoint and forcePathStyle",
      },
    );
  }
  if (AUTH_NAMES.has(name)) {
    return storageError(
      RemoteStorageErrorCode.auth,
      `the S3 server refused the credentials from ${at.credentials} (${name})`,
      {
        ...options,
        hint:
          name === "SignatureDoesNotMatch"
            ? "the secret access key is wrong"
            : "check the access key id, and that the key is active",
      },
    );
  }
  if (name === "PreconditionFailed" || status === 412) return existsError(at.description, key, error);
  if (name === "NoSuchKey" || name === "NotFound" || status === 404) {
    return notFoundError(at.description, key, error);
  }
  if (name === "QuotaExceeded" || name === "InsufficientStorage" || status === 507) {
    return storageError(StorageErrorCode.full, `storage is full: ${where} (${reason})`, {
      ...options,
      hint: "raise the bucket's or the account's quota, or prune",
    });
  }
  if (name === "AccessDenied" || name === "Forbidden" || status === 403) {
    return storageError(StorageErrorCode.permission, `permission denied: ${where}`, {
      ...options,
      hint: "the credentials may not do this here (append-only credentials refuse deletes by design; Object Lock refuses deleting locked versions)",
    });
  }
  if (name === "InvalidRequest" && at.objectLock) {
    return storageError(StorageErrorCode.io, `${where} failed: ${messageOf(error)}`, {
      ...options,
      hint: "is Object Lock enabled on the bucket?",
    });
  }
  return storageError(
    StorageErrorCode.io,
    `${where} failed: ${reason}${name && messageOf(error) !== name ? `: ${messageOf(error)}` : ""}`,
    options,
  );
}
