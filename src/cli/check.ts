// Checking a deployment: check (end to end) and alert test (every channel).
import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

export function registerCheck(program: Command, s: Session): void {
  program
    .command("check")
    .description(
      "check the deployment end to end: keys, nodes, grants, mariabackup vs server, binlog settings, agents, repositories, alerts",
    )
    .option("--no-connect", "skip the nodes (and their grants, versions and agents)")
    .option("--no-alert", "send no test message through the alert channels")
    .addHelpText("after", "\nOne line per item. Exit 0: all passed; 1: a warning; 2: a failure.")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/check.ts")).check(globals(cmd), o, s.out)),
    );

  const alert = program.command("alert").description("alert channels");
  alert
    .command("test")
    .description(
      "send a test message through every configured channel (webhook, e-mail); exit 2 if one fails",
    )
    .action(async (_o, cmd: Command) =>
      s.run((await import("../commands/alert.ts")).alertTest(globals(cmd), s.out)),
    );
}
