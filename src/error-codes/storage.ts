// Error codes of storage backends.
import { type ErrorSpec, FAIL } from "./spec.ts";

export const STORAGE_ERRORS = {
  title: "Storage backends",
  codes: {
    STORAGE_NOT_FOUND: {
      exit: FAIL,
      meaning: "the object, or the storage directory, does not exist",
      hint: "",
    },
    STORAGE_EXISTS: {
      exit: FAIL,
      meaning: "an object that must be new exists already (another writer got there first)",
      hint: "",
    },
    STORAGE_FULL: {
      exit: FAIL,
      meaning: "the storage is full (no space or quota exceeded)",
      hint: "free space, raise the quota, or prune",
    },
    STORAGE_PERMISSION: {
      exit: FAIL,
      meaning: "the storage refused the operation (permissions, append-only credentials, Object Lock)",
      hint: "check the account's rights on the storage",
    },
    STORAGE_UNAVAILABLE: {
      exit: FAIL,
      meaning: "the storage is unreachable or busy (retried before this is reported)",
      hint: "check the server, the network or the mount",
    },
    STORAGE_IO: {
      exit: FAIL,
      meaning: "the storage failed the operation for another reason; the message has its words",
      hint: "",
    },
    STORAGE_BAD_KEY: {
      exit: FAIL,
      meaning: "an object key is not valid (a bug), or collides with a folder",
      hint: "",
    },
    STORAGE_BAD_RANGE: {
      exit: FAIL,
      meaning: "a read asked for an invalid byte range (a bug)",
      hint: "report it",
    },
    STORAGE_APPEND_ONLY: {
      exit: FAIL,
      meaning: "a delete or overwrite was refused because the repository is append-only",
      hint: "",
    },
    STORAGE_HOST_KEY: {
      exit: FAIL,
      meaning: "the SSH server's host key is not the pinned one: possibly someone in the middle",
      hint: "compare fingerprints on the server itself before updating hostKey",
    },
    STORAGE_AUTH: {
      exit: FAIL,
      meaning: "the storage refused the credentials (SSH key, S3 access key or signature)",
      hint: "check the key or the credentials file",
    },
    STORAGE_BUCKET_MISSING: {
      exit: FAIL,
      meaning: "the configured S3 bucket does not exist",
      hint: "create it, or check bucket, region, endpoint and forcePathStyle",
    },
    STORAGE_INSECURE: {
      exit: FAIL,
      meaning: "a plain-text transport (http://) was configured without allowInsecureHttp",
      hint: "use https://",
    },
    STORAGE_TLS: {
      exit: FAIL,
      meaning: "the storage server's TLS certificate could not be verified",
      hint: "set caFile to the private CA's certificate",
    },
    STORAGE_CONFIG: {
      exit: FAIL,
      meaning: "the storage configuration cannot work (unreadable key file, bad option)",
      hint: "",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
