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

  program
    .command("restore-table")
    .description(
      "restore tables (or a schema) as they were at a point in time, through a scratch server, into a node under new names or to an encrypted file",
    )
    .argument("[tables]", "DB.TABLE[,DB.TABLE…] (with --schema: the backup ID)")
    .argument("[id]", "backup ID: the tables as that backup holds them (instead of --to-time/--to-gtid)")
    .option("--schema <db>", "every table of this schema (restored into DB<suffix> with --into-node)")
    .option("--to-time <time>", "as of this time (ISO 8601): the newest backup before it, rolled forward")
    .option("--to-gtid <gtid>", "as of this GTID (inclusive)")
    .option("--into-node <name>", "load into the cluster through this Synced node (admin account)")
    .option("--out <file>", "write an age-encrypted SQL dump to the recipients instead")
    .option("--rename <suffix>", "suffix of the restored names (default with --into-node: _restored_<time>)")
    .option("--replace", "load into an existing table of the restored name: DELETE + rows in one transaction")
    .option("--identity <file>", "age identity (default: keys.identity)")
    .option("--repo <name>", "repository")
    .action(async (a: string | undefined, b: string | undefined, o, cmd: Command) => {
      // With --schema the one positional is the backup ID; two are tables and an ID (refused).
      const names = o.schema === undefined || b !== undefined ? { tables: a, id: b } : { id: a };
      await s.run(
        (await import("../commands/restore-table.ts")).restoreTableCommand(
          globals(cmd),
          { ...o, ...names },
          s.out,
        ),
      );
    });
}
