// Every error code Strongbox reports, declared once (in the group files of src/error-codes/): its exit status, what it means, and what
// usually fixes it. A StrongboxError's code is one of these keys (the type checker rejects any
// other); docs/errors.md is generated from this table (npm run docs:errors), and a test fails
// when a code is declared but never raised, or the document drifts.
//
// The hint here is the general remedy for the operator's reference; the error raised at a site
// carries its own, more precise hint (the file, the node, the command to run).

import { AGENT_ERRORS } from "./error-codes/agent.ts";
import { BACKUP_ERRORS } from "./error-codes/backup.ts";
import { BINLOG_ERRORS } from "./error-codes/binlog.ts";
import { CLUSTER_ERRORS } from "./error-codes/cluster.ts";
import { GENERAL_ERRORS } from "./error-codes/general.ts";
import { KEY_ERRORS } from "./error-codes/keys.ts";
import { MONITOR_ERRORS } from "./error-codes/monitor.ts";
import { REPOSITORY_ERRORS } from "./error-codes/repository.ts";
import { RESTORE_ERRORS } from "./error-codes/restore.ts";
import { SANDBOX_ERRORS } from "./error-codes/sandbox.ts";
import type { ErrorSpec } from "./error-codes/spec.ts";
import { STORAGE_ERRORS } from "./error-codes/storage.ts";

/** The groups, in the order docs/errors.md lists them. */
export const ERROR_GROUPS = [
  GENERAL_ERRORS,
  KEY_ERRORS,
  CLUSTER_ERRORS,
  BACKUP_ERRORS,
  AGENT_ERRORS,
  REPOSITORY_ERRORS,
  STORAGE_ERRORS,
  RESTORE_ERRORS,
  BINLOG_ERRORS,
  MONITOR_ERRORS,
  SANDBOX_ERRORS,
] as const;

export const ERRORS = {
  ...GENERAL_ERRORS.codes,
  ...KEY_ERRORS.codes,
  ...CLUSTER_ERRORS.codes,
  ...BACKUP_ERRORS.codes,
  ...AGENT_ERRORS.codes,
  ...REPOSITORY_ERRORS.codes,
  ...STORAGE_ERRORS.codes,
  ...RESTORE_ERRORS.codes,
  ...BINLOG_ERRORS.codes,
  ...MONITOR_ERRORS.codes,
  ...SANDBOX_ERRORS.codes,
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

export function isErrorCode(code: string): code is ErrorCode {
  return Object.hasOwn(ERRORS, code);
}
