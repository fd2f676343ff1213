// Long-running commands: the dashboard server, the scheduler and the node agent.
import type { Command } from "commander";
import { globals, intArg, portArg, type Session } from "./args.ts";

export function registerService(program: Command, s: Session): void {
  program
    .command("serve")
    .description("dashboard, JSON API and /metrics over HTTP (127.0.0.1:8484 unless serve.* says otherwise)")
    .option("--bind <address>", "listen address (a non-loopback address needs serve.tokenFile)")
    .option("--port <n>", "TCP port", portArg("--port"))
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/serve.ts")).serve(globals(cmd), o, s.out)),
    );

  program
    .command("daemon")
    .description(
      "run the jobs of the schedule section (backups, verify, restore-test, copy, prune, binlog archive) on time",
    )
    .option("--check-interval <seconds>", "how often alert rules are evaluated", intArg("--check-interval"))
    .addHelpText(
      "after",
      "\nLogs one JSON line per event (readable text on a terminal). SIGTERM waits for running jobs, then exits 0.",
    )
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/daemon.ts")).daemon(globals(cmd), o, s.out)),
    );

  program
    .command("agent")
    .description("serve the backup host's requests on stdin/stdout (run by sshd's forced command on a node)")
    .option(
      "--restore-root <dir>",
      "accept restores and restore-tests, only into directories below this one (none without it)",
    )
    .addHelpText(
      "after",
      '\nOn each node, in the agent account\'s ~/.ssh/authorized_keys:\n  restrict,command="strongbox agent --restore-root /var/lib/strongbox-restore" ssh-ed25519 AAAA… backup-host\nSee docs/deployment.md.',
    )
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/agent.ts")).agent(globals(cmd), o, s.out)),
    );
}
