// Supervised child processes: timeouts, graceful-then-forced kill, stderr tail kept for errors.
import { type ChildProcess, type SpawnOptions, spawn } from "node:child_process";
import { closeSync } from "node:fs";
import { StrongboxError } from "../errors.ts";

export interface RunOptions {
  input?: string | Buffer;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Name used in error messages (defaults to the command's basename). */
  label?: string;
  /** Exit codes that count as success (default [0]). */
  okCodes?: number[];
  /** Run as this OS account (needs root; supplementary groups are dropped). */
  uid?: number;
  gid?: number;
  /** An option file descriptor (optionfile.ts) given to the child as fd 3; closed here once it started. */
  optionFd?: number;
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

const TAIL_BYTES = 4000;

/** Keeps only the last `limit` bytes of what a child writes: enough for an error message. */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private size = 0;
  private readonly limit: number;
  constructor(limit = TAIL_BYTES) {
    this.limit = limit;
  }
  push(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.size += chunk.length;
    while (this.size - (this.chunks[0]?.length ?? 0) >= this.limit && this.chunks.length > 1) {
      this.size -= this.chunks.shift()!.length;
    }
  }
  text(): string {
    const all = Buffer.concat(this.chunks);
    return all.subarray(Math.max(0, all.length - this.limit)).toString("utf8");
  }
  /** The last non-empty lines, joined for a one-line message. */
  lastLines(n = 3): string {
    return this.text()
      .split("\n")
      .map((l) => l.trim())
      .filter(Boolean)
      .slice(-n)
      .join(" | ");
  }
}

export function basename(cmd: string): string {
  return cmd.split("/").pop() ?? cmd;
}

/** Ends a child: SIGTERM first, SIGKILL after `graceMs`. Resolves when it has exited. */
export function terminate(child: ChildProcess, graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), graceMs);
    child.once("exit", () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill("SIGTERM");
  });
}

/** Runs a command to completion, collecting output. Throws CHILD_FAILED with the stderr tail. */
export async function run(cmd: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  const label = options.label ?? basename(cmd);
  const spawnOptions: SpawnOptions = {
    env: options.env ?? process.env,
    cwd: options.cwd,
    stdio:
      options.optionFd === undefined ? ["pipe", "pipe", "pipe"] : ["pipe", "pipe", "pipe", options.optionFd],
    ...(options.uid !== undefined ? { uid: options.uid } : {}),
    ...(options.gid !== undefined ? { gid: options.gid } : {}),
  };
  let child: ChildProcess;
  try {
    child = spawn(cmd, args, spawnOptions);
  } finally {
    if (options.optionFd !== undefined) closeSync(options.optionFd);
  }
  const out: Buffer[] = [];
  const err = new TailBuffer(64 * 1024);
  child.stdout?.on("data", (c: Buffer) => out.push(c));
  child.stderr?.on("data", (c: Buffer) => err.push(c));
  let reason: string | undefined;
  const timer = options.timeoutMs
    ? setTimeout(() => {
        reason = `timed out after ${Math.round(options.timeoutMs! / 1000)} s`;
        void terminate(child);
      }, options.timeoutMs)
    : undefined;
  const onAbort = () => {
    reason = "aborted";
    void terminate(child);
  };
  options.signal?.addEventListener("abort", onAbort, { once: true });
  child.stdin?.on("error", () => {});
  if (options.input !== undefined) child.stdin?.end(options.input);
  else child.stdin?.end();
  try {
    const [code, signal] = await new Promise<[number | null, NodeJS.Signals | null]>((resolve, reject) => {
      child.once("error", (e: NodeJS.ErrnoException) => {
        if (e.code === "ENOENT") {
          reject(
            new StrongboxError("CHILD_NOT_FOUND", `${label}: command not found (${cmd})`, {
              hint: "install the package that provides it",
              cause: e,
            }),
          );
        } else reject(e);
      });
      child.once("close", (c, s) => resolve([c, s]));
    });
    const result: RunResult = {
      code,
      signal,
      stdout: Buffer.concat(out).toString("utf8"),
      stderr: err.text(),
    };
    const okCodes = options.okCodes ?? [0];
    if (reason || code === null || !okCodes.includes(code)) {
      const how = reason ?? (code === null ? `was killed by ${signal}` : `exited with code ${code}`);
      const outTail = new TailBuffer();
      outTail.push(Buffer.from(result.stdout));
      throw new StrongboxError(
        "CHILD_FAILED",
        `${label} ${how}: ${err.lastLines() || outTail.lastLines() || "(no output)"}`,
        {
          stage: label,
          details: { code, signal, stderrTail: err.text().slice(-TAIL_BYTES) },
        },
      );
    }
    return result;
  } finally {
    if (timer) clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
}

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}
