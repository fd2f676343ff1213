// Shared argument helpers for the command registrations.
import type { Command } from "commander";
import { UsageError } from "../errors.ts";

export interface GlobalOptions {
  config?: string;
  json: boolean;
  verbose: boolean;
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
