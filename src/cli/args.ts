// Shared argument helpers for the command registrations, and the session that carries a command's
// output in and its exit status out.
import type { Command } from "commander";
import { UsageError } from "../errors.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";

export type { GlobalOptions } from "../terminal/options.ts";

export interface Session {
  readonly out: Output;
  /** The exit status of the command that ran (0 until one returns). */
  exitCode: number;
  /** Awaits a command function's result and keeps its exit status for the process. */
  run(result: Promise<CommandResult>): Promise<void>;
}

export function newSession(out: Output): Session {
  const s: Session = {
    out,
    exitCode: 0,
    run: async (result) => {
      s.exitCode = (await result).exitCode;
    },
  };
  return s;
}

export function globals(cmd: Command): GlobalOptions {
  const o = cmd.optsWithGlobals() as { config?: string; json?: boolean; verbose?: boolean };
  return { config: o.config, json: o.json ?? false, verbose: o.verbose ?? false };
}

export function intArg(name: string): (v: string) => number {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n)) throw new UsageError(`${name} must be a whole number (got "${v}")`);
    return n;
  };
}

/** A TCP port: a whole number from 0 (any free port) to 65535. */
export function portArg(name: string): (v: string) => number {
  const int = intArg(name);
  return (v: string) => {
    const n = int(v);
    if (n < 0 || n > 65535) throw new UsageError(`${name} must be a TCP port, 0 to 65535 (got ${n})`);
    return n;
  };
}
