import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

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
}
