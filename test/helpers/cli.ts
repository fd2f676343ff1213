// Runs the real CLI (bin/strongbox) as a child process, as an operator or a cron job would.
import { type ChildProcess, spawn } from "node:child_process";
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { parse, stringify } from "yaml";

export const BIN = new URL("../../bin/strongbox", import.meta.url).pathname;
export const FIXTURES = new URL("../fixtures/", import.meta.url).pathname;

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Another OS account to run as (its uid and gid), and where. */
export interface RunAs {
  uid: number;
  gid: number;
  cwd?: string;
}

export function startCli(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  as?: RunAs,
  /** Runs this program with the CLI's path and `args` after `prefix` (e.g. strace). */
  prefix: string[] = [],
): { child: ChildProcess; result: Promise<CliResult> } {
  const [cmd, ...rest] = [...prefix, BIN, ...args];
  const child = spawn(cmd!, rest, {
    env: { ...process.env, STRONGBOX_NODE: process.execPath, ...env },
    stdio: ["ignore", "pipe", "pipe"],
    ...(as ?? {}),
  });
  let stdout = "";
  let stderr = "";
  child.stdout!.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr!.on("data", (c: Buffer) => (stderr += c.toString()));
  const result = new Promise<CliResult>((resolve) =>
    child.once("close", (code) => resolve({ code, stdout, stderr })),
  );
  return { child, result };
}

export function cli(args: string[], env: NodeJS.ProcessEnv = {}, as?: RunAs): Promise<CliResult> {
  return startCli(args, env, as).result;
}

/** Writes a modified copy of a config file (mode 0600). */
// biome-ignore lint/suspicious/noExplicitAny: tests edit free-form YAML
type Loose = Record<string, any>;

export function editConfig(from: string, to: string, edit: (c: Loose) => void): string {
  const c = parse(readFileSync(from, "utf8")) as Loose;
  edit(c);
  writeFileSync(to, stringify(c), { mode: 0o600 });
  return to;
}

/**
 * Whether a thread of process `pid` is blocked opening a FIFO that has no other end yet (the
 * kernel's wait_for_partner): how tests stop a command at a chosen object, a FIFO put in its place.
 */
export function waitsOnFifo(pid: number): boolean {
  try {
    return readdirSync(`/proc/${pid}/task`).some((tid) => {
      try {
        return readFileSync(`/proc/${pid}/task/${tid}/wchan`, "utf8").trim() === "wait_for_partner";
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
