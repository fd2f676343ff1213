import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

export function registerBinlog(program: Command, s: Session): void {
  const binlog = program.command("binlog").description("binary log archiving for point-in-time recovery");
  binlog
    .command("archive")
    .description(
      "archive the closed binlogs of one Synced node (compressed, encrypted, signed index); with --follow receive events continuously, each transaction durable within binlog.maxDelay",
    )
    .option("--follow", "stream continuously (binlog dump) until SIGTERM")
    .option("--node <name>", "preferred node (default: binlog.node, else cluster.backupNode)")
    .option("--repo <name>", "repository (default: binlog.repository, else the default)")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/binlog.ts")).binlogArchive(globals(cmd), o, s.out)),
    );
}
