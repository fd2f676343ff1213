// Runs one step of a job as a child process of the real CLI, so a crash or a leak in a backup never
// takes the daemon down. Aborting forwards SIGTERM (the command then restores desync and leaves
// nothing half-committed) and waits; only a child that ignores it past the grace period is killed.
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

export interface StepOutcome {
  result: "ok" | "failed" | "aborted";
  exitCode: number | null;
  signal: string | null;
  durationMs: number;
  /** The command's one-line error, when it failed. */
  error?: string;
  /** The command's --json result, when it printed one. */
  output?: unknown;
}

export type StepRunner = (args: string[], signal: AbortSignal) => Promise<StepOutcome>;

export const CLI_ENTRY = fileURLToPath(new URL("../../bin/strongbox.js", import.meta.url));

function tail(text: string, max: number): string {
  return text.length > max ? text.slice(-max) : text;
}

export function childRunner(o: { configPath: string; graceMs?: number; entry?: string }): StepRunner {
  return (args, signal) =>
    new Promise<StepOutcome>((resolve) => {
      const started = Date.now();
      const child = spawn(
        process.execPath,
        [o.entry ?? CLI_ENTRY, "--config", o.configPath, "--json", ...args],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      let aborted = false;
      let killTimer: NodeJS.Timeout | undefined;
      child.stdout.on("data", (c: Buffer) => (stdout = tail(stdout + c.toString(), 256 * 1024)));
      child.stderr.on("data", (c: Buffer) => (stderr = tail(stderr + c.toString(), 16 * 1024)));
      const onAbort = () => {
        aborted = true;
        child.kill("SIGTERM");
        killTimer = setTimeout(() => child.kill("SIGKILL"), o.graceMs ?? 300_000);
      };
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
      child.once("error", (e) => {
        stderr += `strongbox: error: cannot start ${process.execPath}: ${e.message}\n`;
      });
      child.once("close", (code, sig) => {
        signal.removeEventListener("abort", onAbort);
        if (killTimer) clearTimeout(killTimer);
        let output: unknown;
        try {
          output = stdout.trim() ? JSON.parse(stdout) : undefined;
        } catch {
          output = undefined;
        }
        const errorLine = stderr
          .split("\n")
          .reverse()
          .find((l) => l.startsWith("strongbox: error:") || l.startsWith("strongbox: internal error"));
        const result = code === 0 ? "ok" : aborted ? "aborted" : "failed";
        resolve({
          result,
          exitCode: code,
          signal: sig,
          durationMs: Date.now() - started,
          ...(result === "ok"
            ? {}
            : { error: errorLine ?? (tail(stderr.trim(), 300) || `exit code ${code ?? sig}`) }),
          ...(output === undefined ? {} : { output }),
        });
      });
    });
}
