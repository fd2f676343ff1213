import type { Command } from "commander";
import { globals, intArg, type Session } from "./args.ts";

export function registerMonitor(program: Command, s: Session): void {
  program
    .command("status")
    .description(
      "last backup, verify, restore-test and copy per repository with their ages; OK/WARNING/CRITICAL",
    )
    .addHelpText(
      "after",
      "\nExit codes (Nagios): 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN (run history unreadable).",
    )
    .action(async (_o, cmd: Command) =>
      s.run((await import("../commands/status.ts")).status(globals(cmd), s.out)),
    );

  program
    .command("history")
    .description(
      "the run catalog, newest first: every backup, verify, restore-test, restore, copy, prune, key rotate, binlog archive pass",
    )
    .option("--command <name>", 'only runs of this command (e.g. backup, "binlog archive", restore-test)')
    .option("--repo <name>", "only runs of this repository")
    .option("--result <result>", "only runs with this result: ok, failed, aborted, killed, running")
    .option("--since <time>", "only runs started since a time (ISO 8601) or an age (90m, 12h, 7d)")
    .option("--limit <n>", "at most this many runs (default 50)", intArg("--limit"))
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/history.ts")).history(globals(cmd), o, s.out)),
    );
}
