// Error codes of taking a backup.
import { type ErrorSpec, FAIL } from "./spec.ts";

export const BACKUP_ERRORS = {
  title: "Taking a backup",
  codes: {
    BACKUP_PRIVILEGES: {
      exit: FAIL,
      meaning: "the backup account lacks a privilege the backup needs; the message names the GRANT",
      hint: "run the GRANT shown, or strongbox user create",
    },
    BACKUP_STALLED: {
      exit: FAIL,
      meaning:
        "the backup tool sent no output for backup.stallTimeout and was stopped; nothing was committed",
      hint: "look at the donor (locks, I/O, a stopped process); raise backup.stallTimeout if it is legitimately slow",
    },
    BACKUP_TOOL_FAILED: {
      exit: FAIL,
      meaning: "mariabackup or mariadb-dump failed; the message has the end of its output",
      hint: "",
    },
    INCREMENTAL_NODE: {
      exit: FAIL,
      meaning: "an incremental must be taken on the node of its parent (InnoDB LSNs are per node)",
      hint: "omit --node, or take a --full backup",
    },
    NO_PARENT: {
      exit: FAIL,
      meaning: "an incremental was asked for but there is no full backup to base it on",
      hint: "take one with strongbox backup --full",
    },
    STREAM_CORRUPT: {
      exit: FAIL,
      meaning:
        "a backup stream is incomplete or malformed (a logical dump without its trailer, a bad archive)",
      hint: "take a new backup; restore from another",
    },
    STREAM_UNSAFE_PATH: {
      exit: FAIL,
      meaning: "a backup stream names a path outside the target directory: it was crafted or corrupted",
      hint: "it is not restored; use another backup",
    },
    SEALER_PROTOCOL: {
      exit: FAIL,
      meaning: "the native part sealer said something unexpected (a bug or a damaged install)",
      hint: "reinstall strongbox; report it",
    },
    ZSTD_REPORT: {
      exit: FAIL,
      meaning: "zstd did not report how many bytes it read",
      hint: "check the installed zstd (1.4 or later)",
    },
    CHILD_FAILED: {
      exit: FAIL,
      meaning:
        "a program strongbox runs (zstd, mariadb, mariabackup…) failed; the message has the end of its output",
      hint: "",
    },
    CHILD_NOT_FOUND: {
      exit: FAIL,
      meaning: "a program strongbox needs is not installed",
      hint: "install the package that provides it",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
