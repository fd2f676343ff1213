import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function registerAdmin(program: Command, s: Session): void {
  const user = program.command("user").description("the least-privilege backup account");
  user
    .command("grants")
    .description("print the exact minimal GRANT statements of the backup account, with why each is needed")
    .option(
      "--method <method>",
      "physical, logical, both or binlog (archiving), or a list: both,binlog (default: security.backupMethods, else both)",
    )
    .option("--user <name>", "account name (default: cluster.credentials.backup.user)")
    .option("--host <host>", "account host; repeat for several (default: from the nodes' addresses)", collect)
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/user.ts")).userGrants(globals(cmd), o, s.out)),
    );
  user
    .command("create")
    .description(
      "create the backup account through the admin connection, with a random password in a 0600 file; re-runs add missing grants",
    )
    .option(
      "--method <method>",
      "physical, logical, both or binlog (archiving), or a list: both,binlog (default: security.backupMethods, else both)",
    )
    .option("--user <name>", "account name (default: cluster.credentials.backup.user)")
    .option("--host <host>", "account host; repeat for several (default: from the nodes' addresses)", collect)
    .option("--socket-auth", "IDENTIFIED VIA unix_socket instead of a password (the OS user must match)")
    .option(
      "--password-file <file>",
      "where to write the new password (default: cluster.credentials.backup.passwordFile); never overwritten",
    )
    .addHelpText(
      "after",
      "\nThe admin connection is cluster.credentials.admin, else unix_socket as this OS user over a node's socket.",
    )
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/user.ts")).userCreate(globals(cmd), o, s.out)),
    );

  program
    .command("audit")
    .description(
      "check the deployment against the five practices; exit 0 (none/info), 1 (low/medium), 2 (high/critical)",
    )
    .option("--no-connect", "skip the checks that connect to the nodes")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/audit.ts")).audit(globals(cmd), o, s.out)),
    );
}
