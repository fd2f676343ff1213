import type { Command } from "commander";
import { globals, type Session } from "./args.ts";

export function registerOffsite(program: Command, s: Session): void {
  program
    .command("copy")
    .description("replicate backups to another repository: parts checked on arrival, manifest last")
    .argument(
      "[id]",
      "one backup (with its chain); default with --missing: every backup the destination lacks",
    )
    .requiredOption("--to <repo>", "destination repository")
    .option("--from <repo>", "source repository (default: the default repository)")
    .option("--missing", "every backup the destination does not have (the default without an ID)")
    .action(async (id: string | undefined, o, cmd: Command) =>
      s.run((await import("../commands/offsite.ts")).copy(globals(cmd), { ...o, id }, s.out)),
    );

  program
    .command("prune")
    .description("apply the repository's retention policy without breaking incremental chains")
    .option("--repo <name>", "repository (default: the default repository)")
    .option("--dry-run", "list what would go and why; delete nothing")
    .action(async (o, cmd: Command) =>
      s.run((await import("../commands/offsite.ts")).prune(globals(cmd), o, s.out)),
    );

  program
    .command("forget")
    .description("remove one backup now; one that incrementals depend on only with --with-dependents")
    .argument("<id>", "backup id")
    .option("--repo <name>", "repository (default: the default repository)")
    .option("--with-dependents", "also remove the incremental backups that chain onto it")
    .option("--dry-run", "list what would go; delete nothing")
    .addHelpText(
      "after",
      "\nA pinned backup (or one a pinned backup needs) is refused: strongbox backup unpin ID first.",
    )
    .action(async (id: string, o, cmd: Command) =>
      s.run((await import("../commands/pin.ts")).forget(globals(cmd), { ...o, id }, s.out)),
    );
}
