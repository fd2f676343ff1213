// sandbox up/status/load/write/stop-node/start-node/down.
import { existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { StrongboxError } from "../errors.ts";
import { connectNode } from "../galera/connection.ts";
import {
  readSecret,
  readState,
  sandboxDown,
  sandboxNodes,
  sandboxStatus,
  startNode,
  stopNode,
} from "../sandbox/cluster.ts";
import { sandboxPaths } from "../sandbox/layout.ts";
import { createSandbox } from "../sandbox/setup.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { table } from "../terminal/table.ts";
import { formatBytes, parseSize } from "../util/size.ts";

export const DEFAULT_SANDBOX_DIR = ".sandbox";

/**
 * The sandbox directory: --dir; else the directory of --config; else $STRONGBOX_SANDBOX_DIR; else,
 * except for `up`, the directory of $STRONGBOX_CONFIG (sandbox up writes its strongbox.yaml there,
 * or into DIR/backup with --hosts, so the README's `export STRONGBOX_CONFIG=DIR/strongbox.yaml` is
 * enough); else ./.sandbox.
 */
function dirOf(g: GlobalOptions, o: { dir?: string }, creating = false): string {
  if (o.dir) return resolve(o.dir);
  if (g.config) return configDir(g.config, "--config", creating);
  if (process.env.STRONGBOX_SANDBOX_DIR) return resolve(process.env.STRONGBOX_SANDBOX_DIR);
  if (!creating && process.env.STRONGBOX_CONFIG) {
    return configDir(process.env.STRONGBOX_CONFIG, "$STRONGBOX_CONFIG", creating);
  }
  return resolve(DEFAULT_SANDBOX_DIR);
}

function configDir(config: string, how: string, creating: boolean): string {
  let dir = dirname(resolve(config));
  // With --hosts the config is in DIR/backup, the backup account's home.
  if (!existsSync(sandboxPaths(dir).state) && existsSync(sandboxPaths(dirname(dir)).state))
    dir = dirname(dir);
  if (!creating && !existsSync(sandboxPaths(dir).state)) {
    throw new StrongboxError(
      "SANDBOX_NOT_FOUND",
      `the configuration in use (${how} ${config}) is not a sandbox's: no sandbox in ${dir}`,
      { hint: "pass --dir DIR, the directory given to sandbox up" },
    );
  }
  return dir;
}

export async function up(
  g: GlobalOptions,
  o: { dir?: string; nodes: number; basePort?: number; bufferPool: string; tls?: boolean; hosts?: boolean },
  out: Output,
): Promise<CommandResult> {
  const dir = dirOf(g, o, true);
  const started = Date.now();
  const { state, configPath } = await createSandbox({
    dir,
    nodes: o.nodes,
    basePort: o.basePort,
    bufferPool: o.bufferPool,
    tls: o.tls,
    hosts: o.hosts,
    log: (m) => out.log(`sandbox: ${m}`),
  });
  const seconds = (Date.now() - started) / 1000;
  const backupUser = state.hosts?.backupUser;
  return reply(
    out,
    {
      dir,
      nodes: state.nodes,
      basePort: state.basePort,
      config: configPath,
      seconds,
      mode: backupUser ? "hosts" : "one-host",
      ...(backupUser ? { backupUser } : {}),
    },
    () =>
      [
        backupUser
          ? `sandbox: ${state.nodes} node(s) Synced in ${seconds.toFixed(1)} s, each a host of its own (addresses from 127.0.0.11, ports from ${state.basePort})`
          : `sandbox: ${state.nodes} node(s) Synced in ${seconds.toFixed(1)} s (ports from ${state.basePort})`,
        `config:  ${configPath}${backupUser ? ` (the backup host's account ${backupUser})` : ""}`,
        backupUser
          ? `next:    runuser -u ${backupUser} -- strongbox --config ${configPath} init`
          : `next:    export STRONGBOX_CONFIG=${configPath}; strongbox sandbox status`,
      ].join("\n"),
  );
}

export async function status(g: GlobalOptions, o: { dir?: string }, out: Output): Promise<CommandResult> {
  const { state, nodes } = await sandboxStatus(dirOf(g, o));
  const healthy = nodes.every(
    (n) => n.state === "Synced" && n.clusterStatus === "Primary" && (!n.agent || n.agent.listening),
  );
  return reply(
    out,
    {
      dir: state.dir,
      mode: state.hosts ? "hosts" : "one-host",
      healthy,
      nodes,
      ...(state.hosts
        ? {
            backupHost: {
              osUser: state.hosts.backupUser,
              home: join(state.dir, "backup"),
              config: join(state.dir, "backup", "strongbox.yaml"),
            },
          }
        : {}),
    },
    () =>
      table([
        ["node", "pid", "address", "port", "state", "cluster", "size", "account", "agent"],
        ...nodes.map((n) => [
          n.name,
          String(n.pid ?? "-"),
          n.address,
          String(n.port),
          n.state,
          n.clusterStatus || "-",
          String(n.clusterSize),
          n.osUser,
          n.agent
            ? `${n.agent.user}@${n.agent.host}:${n.agent.port}${n.agent.listening ? "" : " (down)"}`
            : "-",
        ]),
      ]) +
      (state.hosts
        ? `\nbackup host: account ${state.hosts.backupUser}, home ${join(state.dir, "backup")}`
        : ""),
    healthy ? 0 : 1,
  );
}

async function writerConnection(dir: string) {
  const state = await readState(dir);
  const admin = await readSecret(dir, "admin");
  const nodes = sandboxNodes(state);
  // The first node that accepts a connection; node1 is the writer in the demo.
  let lastError: unknown;
  for (const n of nodes) {
    try {
      return await connectNode({ name: n.name, host: n.address, port: n.port, socket: n.socket }, admin);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

export async function loadData(
  g: GlobalOptions,
  o: { dir?: string; size: string; seed: string },
  out: Output,
): Promise<CommandResult> {
  const { loadDataset } = await import("../sandbox/dataset.ts");
  const sizeBytes = parseSize(o.size);
  const conn = await writerConnection(dirOf(g, o));
  const started = Date.now();
  const progress = out.progress();
  try {
    const summary = await loadDataset(conn, {
      sizeBytes,
      seed: o.seed,
      onProgress: (done, total) => {
        progress.total = total;
        progress.update(done);
      },
    });
    progress.done();
    const seconds = (Date.now() - started) / 1000;
    return reply(
      out,
      { ...summary, seconds },
      () =>
        `loaded ~${formatBytes(summary.bytesApprox)} into ${summary.tables.length} tables of ${summary.schemas.length} schemas in ${seconds.toFixed(1)} s (seed ${o.seed})`,
    );
  } finally {
    await conn.end();
  }
}

export async function write(
  g: GlobalOptions,
  o: { dir?: string; seconds: number; rate: number },
  out: Output,
): Promise<CommandResult> {
  const { runWriteLoad } = await import("../sandbox/writer.ts");
  const conn = await writerConnection(dirOf(g, o));
  try {
    const r = await runWriteLoad(conn, { seconds: o.seconds, ratePerSecond: o.rate });
    return reply(
      out,
      r,
      () => `wrote for ${o.seconds} s: ${r.inserts} inserts, ${r.updates} updates, ${r.deletes} deletes`,
    );
  } finally {
    await conn.end();
  }
}

export async function stopNodeCmd(
  g: GlobalOptions,
  o: { dir?: string; k: number },
  out: Output,
): Promise<CommandResult> {
  await stopNode(dirOf(g, o), o.k);
  return reply(out, { stopped: o.k }, () => `node${o.k} stopped`);
}

export async function startNodeCmd(
  g: GlobalOptions,
  o: { dir?: string; k: number },
  out: Output,
): Promise<CommandResult> {
  await startNode(dirOf(g, o), o.k);
  return reply(out, { started: o.k }, () => `node${o.k} is Synced again`);
}

export async function down(
  g: GlobalOptions,
  o: { dir?: string; purge: boolean },
  out: Output,
): Promise<CommandResult> {
  const dir = dirOf(g, o);
  const stopped = await sandboxDown(dir, { purge: o.purge });
  return reply(
    out,
    { dir, stopped, purged: o.purge },
    () => `sandbox: stopped ${stopped} node(s)${o.purge ? `, removed ${dir}` : ""}`,
  );
}
