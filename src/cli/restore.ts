import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

export function registerRestore(program: Command, s: Session): void {
  program
    .command("verify")
    .description(
      "check backups: signatures, chains, every part's size and SHA-256; with --read-data also decrypt and parse",
    )
    .argument("[id]", "one backup (default: all)")
    .option("--all", "every backup (the default)")
    .option("--read-data", "decrypt, decompress and parse every stream to its end (needs the identity)")
    .option(
      "--sample <percent>",
      "read only this share of parts (backups with --read-data), rotating between runs",
    )
    .option("--identity <file>", "age identity for --read-data")
    .option("--repo <name>", "repository")
    .action(async (id: string | undefined, o, cmd: Command) =>
      s.run((await import("../commands/verify.ts")).verify(globals(cmd), { ...o, id }, s.out)),
    );

  program
    .command("restore")
    .description(
      "rebuild a data directory from a backup chain (full + incrementals, prepared, grastate.dat written)",
    )
    .argument("[id]", "backup id (an incremental brings its whole chain); optional with --to-time/--to-gtid")
    .option("--target-dir <dir>", "empty directory to restore into")
    .option("--to-time <time>", "point-in-time recovery: replay archived binlogs up to this time (ISO 8601)")
    .option("--to-gtid <gtid>", "point-in-time recovery: replay archived binlogs up to this GTID (inclusive)")
    .option("--force", "replace the contents of a non-empty target")
    .option("--prepare", "run mariabackup --prepare", true)
    .option("--no-prepare", "only extract")
    .option("--into-node <name>", "logical backups: load into this configured node (admin account)")
    .option(
      "--onto <node>",
      "physical backups: restore into --target-dir on this node, through its agent (below its --restore-root)",
    )
    .option("--identity <file>", "age identity (default: keys.identity)")
    .option("--repo <name>", "repository")
    .action(async (id: string | undefined, o, cmd: Command) =>
      s.run((await import("../commands/restore.ts")).restore(globals(cmd), { ...o, id }, s.out)),
    );

  program
    .command("restore-test")
    .description(
      "restore into scratch space, start a throw-away mariadbd, CHECK TABLE, compare the inventory, run assertions",
    )
    .argument("[id]", "backup id (default: the newest, or the newest before --to-time/--to-gtid)")
    .option("--to-time <time>", "also replay archived binlogs up to this time (point-in-time recovery test)")
    .option("--to-gtid <gtid>", "also replay archived binlogs up to this GTID")
    .option("--on <node>", "run the scratch restore and server on this node's host, through its agent")
    .option("--identity <file>", "age identity (default: keys.identity)")
    .option("--repo <name>", "repository")
    .action(async (id: string | undefined, o, cmd: Command) =>
      s.run(
        (await import("../commands/restore-test.ts")).restoreTestCommand(globals(cmd), { ...o, id }, s.out),
      ),
    );
}
