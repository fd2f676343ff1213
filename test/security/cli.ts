// Runs the CLI (test/security/admin-cli.ts) as a child process.
import { spawn } from "node:child_process";
import type { CliResult } from "../helpers/cli.ts";

const SCRIPT = new URL("./admin-cli.ts", import.meta.url).pathname;

export function adminCli(args: string[]): Promise<CliResult> {
  const child = spawn(process.execPath, [SCRIPT, ...args], { stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
  child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
  return new Promise((resolve) => child.once("close", (code) => resolve({ code, stdout, stderr })));
}
