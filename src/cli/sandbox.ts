import type { Command } from "commander";
import { globals, intArg, portArg, type Session } from "./args.ts";

const DIR_HELP =
  "sandbox directory (default: the directory of --config or $STRONGBOX_CONFIG, else ./.sandbox)";
const UP_DIR_HELP = "where to create it (default: the directory of --config, else ./.sandbox)";

export function registerSandbox(program: Command, s: Session): void {
  const sandbox = program
    .command("sandbox")
    .description("a real MariaDB Galera cluster on loopback ports, for trying Strongbox and for tests");
  const load = () => import("../commands/sandbox.ts");

  sandbox
    .command("up")
    .description(
      "start an N-node Galera cluster and write DIR/strongbox.yaml for it (with --hosts: DIR/backup/strongbox.yaml)",
    )
    .option("--nodes <n>", "number of nodes", intArg("--nodes"), 3)
    .option("--dir <dir>", UP_DIR_HELP)
    .option(
      "--base-port <port>",
      "first of the loopback ports (10 per node; with --hosts 5, the same on every address); default: a free range",
      portArg("--base-port"),
    )
    .option("--buffer-pool <size>", "innodb_buffer_pool_size of each node", "256M")
    .option(
      "--tls",
      "TLS everywhere (one cluster CA in DIR/tls): client connections (require_secure_transport=ON), Galera replication, IST and SST",
    )
    .option(
      "--hosts",
      "each node a host of its own: address 127.0.0.1N, OS account, sshd with the agent; a backup account (root only)",
    )
    .action(async (o, cmd: Command) => s.run((await load()).up(globals(cmd), o, s.out)));

  sandbox
    .command("status")
    .description("per node: pid, address, port, wsrep state, cluster size, OS account, agent")
    .option("--dir <dir>", DIR_HELP)
    .action(async (o, cmd: Command) => s.run((await load()).status(globals(cmd), o, s.out)));

  sandbox
    .command("load")
    .description(
      "write a deterministic dataset (several schemas, tables, indexes, a view, a trigger, a routine)",
    )
    .option("--dir <dir>", DIR_HELP)
    .option("--size <size>", "approximate data size, e.g. 200MB or 1GB", "200MB")
    .option("--seed <seed>", "the same seed gives the same data", "1")
    .action(async (o, cmd: Command) => s.run((await load()).loadData(globals(cmd), o, s.out)));

  sandbox
    .command("write")
    .description("steady write load for the given time (for incrementals and point-in-time recovery)")
    .option("--dir <dir>", DIR_HELP)
    .option("--seconds <t>", "how long", intArg("--seconds"), 10)
    .option("--rate <n>", "writes per second", intArg("--rate"), 50)
    .action(async (o, cmd: Command) => s.run((await load()).write(globals(cmd), o, s.out)));

  sandbox
    .command("stop-node")
    .description("stop node K (fault tests)")
    .argument("<k>", "node number, from 1", intArg("K"))
    .option("--dir <dir>", DIR_HELP)
    .action(async (k: number, o, cmd: Command) =>
      s.run((await load()).stopNodeCmd(globals(cmd), { ...o, k }, s.out)),
    );

  sandbox
    .command("start-node")
    .description("start node K again; it rejoins the cluster by IST")
    .argument("<k>", "node number, from 1", intArg("K"))
    .option("--dir <dir>", DIR_HELP)
    .action(async (k: number, o, cmd: Command) =>
      s.run((await load()).startNodeCmd(globals(cmd), { ...o, k }, s.out)),
    );

  sandbox
    .command("down")
    .description("stop every process of the sandbox (with --purge also its directory and OS accounts)")
    .option("--dir <dir>", DIR_HELP)
    .option("--purge", "also delete the sandbox directory and the OS accounts it made", false)
    .action(async (o, cmd: Command) => s.run((await load()).down(globals(cmd), o, s.out)));
}
