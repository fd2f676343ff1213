// Argument parsing only: each command's work lives in src/commands/, loaded when it is used.

import { Command, CommanderError, Option } from "commander";
import { ExitCode } from "../error-codes/spec.ts";
import { ERRORS } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { type Output, terminalOutput } from "../terminal/output.ts";
import { abortReason } from "../terminal/signals.ts";
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
    // Usage errors read like every other error: "strongbox: error: unknown option '--x'".
    .configureOutput({ outputError: (text, write) => write(`strongbox: ${text}`) })
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

function report(thrown: unknown, out: Output, verbose: boolean): number {
  const json = out.json;
  const error = abortReason(thrown);
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
    const unknown = unknownCommand(program, argv);
    if (unknown) unknown.parent.error(`error: unknown command '${unknown.name}'`, { code: "USAGE" });
    await program.parseAsync(argv, { from: "user" });
    return session.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      // --help, --version, and help asked for (exit 0); help shown for a missing command is an error.
      if (error.exitCode === 0) return 0;
      if (json) {
        const message = error.message.replace(/^error: /, "");
        process.stdout.write(`${JSON.stringify({ error: { code: "USAGE", message } })}\n`);
      }
      return ExitCode.usage;
    }
    return report(error, session.out, verbose);
  }
}

/**
 * The first word of argv that names no command where a command is expected (`strongbox nosuch
 * --help`, `strongbox help nosuch`). Commander shows the parent's help for those and exits 0, as if
 * the command existed; without a help flag it reports them itself.
 */
export function unknownCommand(
  program: Command,
  argv: string[],
): { parent: Command; name: string } | undefined {
  let cmd = program;
  const options = () => {
    const all: Option[] = [];
    for (let c: Command | null = cmd; c; c = c.parent) all.push(...c.options);
    return all;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "--") return undefined;
    if (arg.startsWith("-")) {
      const option = options().find((o) => o.long === arg || o.short === arg);
      // "--config FILE": the next word is the option's value, not a command.
      if (option?.required) i++;
      continue;
    }
    if (cmd.commands.length === 0) return undefined;
    const sub = cmd.commands.find((c) => c.name() === arg || c.aliases().includes(arg));
    if (sub) cmd = sub;
    else if (arg !== "help") return { parent: cmd, name: arg };
  }
  return undefined;
}
