// Error codes of the command line and the configuration.
import { type ErrorSpec, ExitCode, FAIL } from "./spec.ts";

export const GENERAL_ERRORS = {
  title: "The command line and the configuration",
  codes: {
    USAGE: {
      exit: ExitCode.usage,
      meaning: "the command line is wrong: an unknown option, a missing or invalid argument",
      hint: "see strongbox help COMMAND",
    },
    CONFIG_INVALID: {
      exit: ExitCode.config,
      meaning: "strongbox.yaml is not valid YAML or does not match the schema; every problem is listed",
      hint: "fix the listed fields; docs/configuration.md describes each one",
    },
    CONFIG_NOT_FOUND: {
      exit: ExitCode.config,
      meaning: "the configuration file does not exist or cannot be read",
      hint: "pass --config FILE or set STRONGBOX_CONFIG",
    },
    CONFIG_TOO_OPEN: {
      exit: ExitCode.config,
      meaning: "the configuration file is readable or writable by group or others (it points at secrets)",
      hint: "chmod 600 FILE",
    },
    INTERNAL: {
      exit: ExitCode.internal,
      meaning: "an unexpected error: a bug in strongbox",
      hint: "rerun with --verbose and report the stack trace",
    },
    ABORTED: {
      exit: ExitCode.aborted,
      meaning: "the command was interrupted (SIGINT or SIGTERM); nothing half-done was committed",
      hint: "run it again; leftovers are cleaned up by the next writer",
    },
    BAD_DURATION: {
      exit: FAIL,
      meaning: "a duration is negative or not a number",
      hint: "give a duration such as 30s, 15m, 7d",
    },
    BAD_RATE: { exit: FAIL, meaning: "a rate is not a positive number", hint: "" },
    BAD_SIZE: {
      exit: FAIL,
      meaning: "a size is outside the allowed range or not a size",
      hint: "give a size such as 64MiB or 1GB",
    },
    FILE_MISSING: {
      exit: FAIL,
      meaning: "a file the configuration names cannot be read",
      hint: "check the path (relative paths start at the config file's directory)",
    },
    FILE_TOO_OPEN: {
      exit: FAIL,
      meaning: "a file that holds or points at secrets is readable or writable by group or others",
      hint: "chmod 600 FILE",
    },
    SECRET_EMPTY: {
      exit: FAIL,
      meaning: "a secret file (token, password) is empty",
      hint: "write the secret into the file",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
