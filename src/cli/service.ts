// Long-running commands: the dashboard server and the scheduler.
import type { Command } from "commander";
import { globals, intArg, type Session } from "./args.ts";

export function registerService(program: Command, s: Session): void {
  program
    .command("serve")
    .description("dashboard, JSON API and /metrics over HTTP (127.0.0.1:8484 unless serve.* says otherwise)")
    .option("--bind <address>", "listen address (a non-loopback address needs serve.tokenFile)")
    .option("--port <n>", "TCP port", intArg("--port"))
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/serve.ts")).serve(globals(cmd), o, s.out)),
    );

  program
    .command("daemon")
    .description("run the jobs of the schedule section (backups, verify, restore-test, copy, prune) on time")
    .option("--check-interval <seconds>", "how often alert rules are evaluated", intArg("--check-interval"))
    .addHelpText(
      "after",
      "\nLogs one JSON line per event (readable text on a terminal). SIGTERM waits for running jobs, then exits 0.",
    )
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/daemon.ts")).daemon(globals(cmd), o, s.out)),
    );
}
