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
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
