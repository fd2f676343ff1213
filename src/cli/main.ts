// Argument parsing only: each command's work lives in src/commands/, loaded when it is used.

import { Command, CommanderError, Option } from "commander";
import { ExitCode } from "../error-codes/spec.ts";
import { ERRORS } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { type Output, terminalOutput } from "../terminal/output.ts";
import { VERSION } from "../version.ts";
import { registerAdmin } from "./admin.ts";
import { newSession, type Session } from "./args.ts";
import { registerBackup } from "./backup.ts";
import { registerBinlog } from "./binlog.ts";
import { registerCheck } from "./check.ts";
import { registerMonitor } from "./monitor.ts";
import { registerOffsite } from "./offsite.ts";
import { registerRestore } from "./restore.ts";
import { registerSandbox } from "./sandbox.ts";
import { registerService } from "./service.ts";

export function buildProgram(session: Session): Command {
  const program = new Command("strongbox")
    .description("Secure, verified, offsite backups of MariaDB Galera clusters")
    .version(VERSION)
    .addOption(
      new Option(
        "-c, --config <file>",
        "configuration file (default: $STRONGBOX_CONFIG, else ./strongbox.yaml if present, else /etc/strongbox/strongbox.yaml)",
      ),
    )
    .option("--json", "machine-readable output", false)
    .option("-v, --verbose", "more detail, including stack traces of internal errors", false)
    .showHelpAfterError()
    .exitOverride();
  registerSandbox(program, session);
  registerBackup(program, session);
  registerRestore(program, session);
  registerMonitor(program, session);
  registerOffsite(program, session);
  registerService(program, session);
  registerAdmin(program, session);
  registerBinlog(program, session);
  registerCheck(program, session);
  return program;
}

function report(error: unknown, out: Output, verbose: boolean): number {
  const json = out.json;
  if (error instanceof StrongboxError) {
    if (json && !out.emitted) {
      process.stdout.write(
        `${JSON.stringify({ error: { code: error.code, message: error.oneLine(), stage: error.stage, details: error.details } })}\n`,
      );
    }
    process.stderr.write(`strongbox: error: ${error.oneLine()}\n`);
    if (verbose && error.cause)
      process.stderr.write(`${String((error.cause as Error).stack ?? error.cause)}\n`);
    return error.exitCode;
  }
  const e = error as Error;
  process.stderr.write(
    `strongbox: internal error (this is a bug, please report it): ${e?.message ?? String(e)}\n`,
  );
  if (verbose) process.stderr.write(`${e?.stack ?? ""}\n`);
  if (json && !out.emitted) {
    process.stdout.write(`${JSON.stringify({ error: { code: "INTERNAL", message: e?.message } })}\n`);
  }
  return ERRORS.INTERNAL.exit;
}

export async function main(argv: string[]): Promise<number> {
  process.umask(0o077);
  const json = argv.includes("--json");
  const session = newSession(terminalOutput(json));
  const program = buildProgram(session);
  const verbose = argv.includes("--verbose") || argv.includes("-v");
  try {
    await program.parseAsync(argv, { from: "user" });
    return session.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === "commander.helpDisplayed" ||
        error.code === "commander.version" ||
        error.code === "commander.help"
      ) {
        return 0;
      }
      return ExitCode.usage;
    }
    return report(error, session.out, verbose);
  }
}
