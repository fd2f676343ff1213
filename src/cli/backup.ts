import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

export function registerBackup(program: Command, s: Session): void {
  const key = program.command("key").description("key management");
  key
    .command("generate")
    .description("write a new age X25519 identity (mode 0600) and print its recipient (age1…)")
    .requiredOption("--out <file>", "where to write the identity")
    .option("--force", "overwrite an existing file", false)
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/key.ts")).generate(globals(cmd), o, s.out)),
    );

  key
    .command("add-recipient")
    .description(
      "encrypt new backups also to this recipient (age1…); `key rotate` extends it to stored backups",
    )
    .argument("<recipient>", "age1… public key")
    .option("--repo <name>", "only this repository")
    .action(async (recipient: string, o, cmd: Command) =>
      s.run((await import("../commands/key.ts")).addRecipient(globals(cmd), { ...o, recipient }, s.out)),
    );
  key
    .command("remove-recipient")
    .description("stop encrypting new backups to this recipient; `key rotate` removes it from stored backups")
    .argument("<recipient>", "age1… public key")
    .option("--repo <name>", "only this repository")
    .action(async (recipient: string, o, cmd: Command) =>
      s.run((await import("../commands/key.ts")).removeRecipient(globals(cmd), { ...o, recipient }, s.out)),
    );
  key
    .command("rotate")
    .description(
      "re-wrap every stored backup's file keys for the current recipients (headers only), re-sign manifests",
    )
    .option("--identity <file>", "an identity of the current recipients (default: keys.identity)")
    .option("--signing", "also replace the manifest signing key and re-sign everything with the new one")
    .option(
      "--prepare",
      "with --signing: only make the next signing key and print its public key, to pin on readers first",
    )
    .option("--repo <name>", "only this repository")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/key.ts")).rotate(globals(cmd), o, s.out)),
    );

  program
    .command("init")
    .description("create the manifest signing key (if missing) and initialise the configured repositories")
    .option("--repo <name>", "only this repository")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/init.ts")).init(globals(cmd), o, s.out)),
    );

  const backup = program
    .command("backup")
    .description("Galera-aware backup: choose a Synced donor, desync it, stream, encrypt, store, commit")
    .option("--full", "a full physical backup (mariabackup)")
    .option("--incremental", "an incremental on top of the newest backup of the chain")
    .option("--logical", "a logical backup (mariadb-dump --single-transaction)")
    .option("--node <name>", "take it from this node")
    .option("--repo <name>", "repository (default: the first configured)")
    .addHelpText(
      "after",
      "\nWithout --full/--incremental/--logical the policy decides: a full when the last one is older than backup.fullEvery, else an incremental.",
    )
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/backup.ts")).backup(globals(cmd), o, s.out)),
    );
  registerPins(backup, s);

  program
    .command("list")
    .description("backups in the repository")
    .option("--repo <name>", "repository")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/list.ts")).list(globals(cmd), o, s.out)),
    );

  program
    .command("show")
    .description("one backup's manifest; with the identity also the encrypted details (hosts, inventory)")
    .argument("<id>", "backup id")
    .option("--repo <name>", "repository")
    .option("--identity <file>", "age identity to decrypt the details")
    .action(async (id: string, o, cmd: Command) =>
      s.run((await import("../commands/list.ts")).show(globals(cmd), { ...o, id }, s.out)),
    );
}

/**
 * backup pin / unpin: subcommands of backup, which runs a backup when none is named. backup's own
 * --repo is recognised after the subcommand too, so the options are read with the parent's.
 */
function registerPins(backup: Command, s: Session): void {
  backup
    .command("pin")
    .description("keep this backup (and its chain) whatever the retention policy says")
    .argument("<id>", "backup id")
    .option("--repo <name>", "repository (default: the default repository)")
    .option("--note <text>", "why it is kept, recorded in the signed pin")
    .action(async (id: string, _o, cmd: Command) =>
      s.run((await import("../commands/pin.ts")).pin(globals(cmd), { ...cmd.optsWithGlobals(), id }, s.out)),
    );
  backup
    .command("unpin")
    .description("let the retention policy decide about this backup again")
    .argument("<id>", "backup id")
    .option("--repo <name>", "repository (default: the default repository)")
    .action(async (id: string, _o, cmd: Command) =>
      s.run(
        (await import("../commands/pin.ts")).unpin(globals(cmd), { ...cmd.optsWithGlobals(), id }, s.out),
      ),
    );
}
