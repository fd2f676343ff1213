// mariadb-dump of chosen tables of one schema into a private file: the table definitions, the rows
// (one transaction per table when loaded: --no-autocommit) or the triggers, each on its own so a
// load can put a DELETE in front of the rows (--replace) or leave the definition out. Without
// --databases the dump names no schema: the loading session's default schema receives it.
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import type { Credentials, NodeEndpoint } from "../galera/connection.ts";
import { OPTION_FILE, optionFileFd } from "../util/optionfile.ts";
import { clientOptions, spawnTool } from "./backup-tools.ts";

export type DumpPart = "definition" | "rows" | "triggers";

const PART_OPTIONS: Record<DumpPart, string[]> = {
  definition: ["--no-data", "--skip-triggers"],
  rows: ["--no-create-info", "--skip-triggers", "--no-autocommit", "--skip-disable-keys", "--hex-blob"],
  triggers: ["--no-create-info", "--no-data", "--triggers"],
};

export async function dumpTables(o: {
  node: NodeEndpoint;
  creds: Credentials;
  db: string;
  tables: string[];
  part: DumpPart;
  /** Written with mode 0600; must not exist. */
  file: string;
  mariadbDump?: string | undefined;
  signal?: AbortSignal | undefined;
}): Promise<void> {
  const args = [
    `--defaults-file=${OPTION_FILE}`,
    // A consistent snapshot without locking; never DROP TABLE, never LOCK TABLES (Galera).
    "--single-transaction",
    "--skip-lock-tables",
    "--skip-add-locks",
    "--skip-add-drop-table",
    "--quick",
    ...PART_OPTIONS[o.part],
    "--",
    o.db,
    ...o.tables,
  ];
  const fd = optionFileFd({ client: clientOptions(o.node, o.creds) });
  const tool = spawnTool(o.mariadbDump ?? "mariadb-dump", args, "mariadb-dump", fd);
  const onAbort = () => tool.child.kill("SIGTERM");
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    await Promise.all([
      pipeline(tool.child.stdout!, createWriteStream(o.file, { mode: 0o600, flags: "wx" })),
      tool.done,
    ]);
  } finally {
    o.signal?.removeEventListener("abort", onAbort);
  }
}
