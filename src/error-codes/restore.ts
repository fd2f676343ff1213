// Error codes of restoring.
import { type ErrorSpec, FAIL } from "./spec.ts";

export const RESTORE_ERRORS = {
  title: "Restoring",
  codes: {
    TARGET_NOT_DIRECTORY: {
      exit: FAIL,
      meaning: "--target-dir (or a directory above it) exists and is not a directory",
      hint: "choose a path to an empty directory, or to one that does not exist yet",
    },
    TARGET_NOT_EMPTY: {
      exit: FAIL,
      meaning: "the restore target directory is not empty",
      hint: "choose an empty directory, or pass --force",
    },
    TARGET_NO_SPACE: {
      exit: FAIL,
      meaning: "the restore target has less free space than the restore needs",
      hint: "free space or choose a larger filesystem",
    },
    TARGET_FULL: {
      exit: FAIL,
      meaning: "the restore target filled up while writing",
      hint: "free space or choose a larger filesystem",
    },
    TARGET_WRITE: { exit: FAIL, meaning: "a file of the restore could not be written", hint: "" },
    UNPACK_FAILED: { exit: FAIL, meaning: "unpacking the decrypted, decompressed stream failed", hint: "" },
    SCRATCH_START_FAILED: {
      exit: FAIL,
      meaning: "the scratch mariadbd (for prepare, restore-test or PITR) did not start",
      hint: "the message has the end of its error log",
    },
    RESTORE_TEST_FAILED: {
      exit: FAIL,
      meaning: "the test restore did not come up, or its data did not match the backup's inventory",
      hint: "the message names the first problem; the backup is not proven restorable",
    },
    LOAD_FAILED: { exit: FAIL, meaning: "loading a logical dump into the target server failed", hint: "" },
    RESTORE_TABLE_MISSING: {
      exit: FAIL,
      meaning: "restore-table: a chosen table or schema did not exist at the target point",
      hint: "check the name, or choose a target when it existed",
    },
    RESTORE_TABLE_EXISTS: {
      exit: FAIL,
      meaning: "restore-table: a table, trigger or schema of the restored name already exists in the cluster",
      hint: "choose another --rename suffix, or pass --replace",
    },
    RESTORE_TABLE_REPLACE: {
      exit: FAIL,
      meaning: "restore-table --replace: the existing table cannot take the restored rows safely",
      hint: "the message says why (its triggers, other columns); restore under a new name instead",
    },
    RESTORE_TABLE_ENGINE: {
      exit: FAIL,
      meaning: "restore-table: a restored table's engine is not replicated by Galera (only InnoDB is)",
      hint: "write it to a file with --out, convert it, and load it yourself",
    },
    RESTORE_TABLE_MISMATCH: {
      exit: FAIL,
      meaning: "restore-table: the loaded table's row count or checksum differs from the restored one",
      hint: "the table was loaded under its new name; compare it, drop it and run again",
    },
    RESTORE_OUT_EXISTS: {
      exit: FAIL,
      meaning: "restore-table --out: the file already exists",
      hint: "choose a new file name; an existing file is never overwritten",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
