// The options every command shares (commander's global flags), and what a command returns.

export interface GlobalOptions {
  config?: string | undefined;
  json: boolean;
  verbose: boolean;
}

/** What a command function returns: the process's exit status and the result it reported. */
export interface CommandResult<T = unknown> {
  exitCode: number;
  result?: T;
}
