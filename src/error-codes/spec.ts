// What the registry says of each error code, and the exit statuses it may give.

export const ExitCode = {
  ok: 0,
  /** status: a warning is open. */
  warning: 1,
  failure: 2,
  /** EX_USAGE: the command line (or a value given on it) is wrong. */
  usage: 64,
  /** EX_SOFTWARE: a bug; please report it. */
  internal: 70,
  /** EX_CONFIG: the configuration file is wrong. */
  config: 78,
  /** 128 + SIGINT: interrupted. */
  aborted: 130,
} as const;

export interface ErrorSpec {
  /** The process exit status when this error ends a command. */
  exit: number;
  /** One line: what happened. */
  meaning: string;
  /** One line: what usually fixes it (empty when the message says all). */
  hint: string;
}

export const FAIL = ExitCode.failure;
