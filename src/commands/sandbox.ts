// sandbox up/status/load/write/stop-node/start-node/down.
import { dirname, resolve } from "node:path";
import type { GlobalOptions } from "../cli/args.ts";
import { emit, note, table } from "../cli/output.ts";
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
import { createSandbox } from "../sandbox/setup.ts";
import { formatBytes, parseSize } from "../util/size.ts";

export const DEFAULT_SANDBOX_DIR = ".sandbox";

let configDir: string | undefined;

/** --dir, else the directory of --config (sandbox up writes its config there), else the default. */
function dirOf(o: { dir?: string }): string {
  return resolve(o.dir ?? configDir ?? process.env.STRONGBOX_SANDBOX_DIR ?? DEFAULT_SANDBOX_DIR);
}

function useGlobals(g: GlobalOptions): void {
  configDir = g.config ? dirname(resolve(g.config)) : undefined;
}

export async function up(
  g: GlobalOptions,
  o: { dir?: string; nodes: number; basePort?: number; bufferPool: string; tls?: boolean },
): Promise<void> {
  useGlobals(g);
  const dir = dirOf(o);
  const started = Date.now();
  const { state, configPath } = await createSandbox({
    dir,
    nodes: o.nodes,
    basePort: o.basePort,
    bufferPool: o.bufferPool,
    tls: o.tls,
    log: g.json ? undefined : (m) => note(`sandbox: ${m}`),
  });
  const seconds = (Date.now() - started) / 1000;
  emit(g, { dir, nodes: state.nodes, basePort: state.basePort, config: configPath, seconds }, () =>
    [
      `sandbox: ${state.nodes} node(s) Synced in ${seconds.toFixed(1)} s (ports from ${state.basePort})`,
      `config:  ${configPath}`,
      `next:    strongbox --config ${configPath} sandbox status`,
    ].join("\n"),
  );
}

export async function status(g: GlobalOptions, o: { dir?: string }): Promise<void> {
  useGlobals(g);
  const { state, nodes } = await sandboxStatus(dirOf(o));
  const healthy = nodes.every((n) => n.state === "Synced" && n.clusterStatus === "Primary");
  emit(g, { dir: state.dir, healthy, nodes }, () =>
    table([
      ["node", "pid", "port", "state", "cluster", "size", "socket"],
      ...nodes.map((n) => [
        n.name,
        String(n.pid ?? "-"),
        String(n.port),
        n.state,
        n.clusterStatus || "-",
        String(n.clusterSize),
        n.socket,
      ]),
    ]),
  );
  if (!healthy) process.exitCode = 1;
}

async function writerConnection(dir: string) {
  const state = await readState(dir);
  const admin = await readSecret(dir, "admin");
  const nodes = sandboxNodes(state);
  // The first node that accepts a connection; node1 is the writer in the demo.
  let lastError: unknown;
  for (const n of nodes) {
    try {
      return await connectNode({ name: n.name, host: "127.0.0.1", port: n.port, socket: n.socket }, admin);
    } catch (e) {
      lastError = e;
    }
  }
  throw lastError;
}

export async function loadData(
  g: GlobalOptions,
  o: { dir?: string; size: string; seed: string },
): Promise<void> {
  useGlobals(g);
  const { loadDataset } = await import("../sandbox/dataset.ts");
  const sizeBytes = parseSize(o.size);
  const conn = await writerConnection(dirOf(o));
  const started = Date.now();
  let lastShown = 0;
  try {
    const summary = await loadDataset(conn, {
      sizeBytes,
      seed: o.seed,
      onProgress: (done, total) => {
        if (g.json || !process.stderr.isTTY || Date.now() - lastShown < 1000) return;
        lastShown = Date.now();
        process.stderr.write(`\rloading ${formatBytes(done)} / ${formatBytes(total)}   `);
      },
    });
    if (!g.json && process.stderr.isTTY) process.stderr.write("\n");
    const seconds = (Date.now() - started) / 1000;
    emit(
      g,
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
): Promise<void> {
  useGlobals(g);
  const { runWriteLoad } = await import("../sandbox/writer.ts");
  const conn = await writerConnection(dirOf(o));
  try {
    const r = await runWriteLoad(conn, { seconds: o.seconds, ratePerSecond: o.rate });
    emit(
      g,
      r,
      () => `wrote for ${o.seconds} s: ${r.inserts} inserts, ${r.updates} updates, ${r.deletes} deletes`,
    );
  } finally {
    await conn.end();
  }
}

export async function stopNodeCmd(g: GlobalOptions, o: { dir?: string; k: number }): Promise<void> {
  useGlobals(g);
  await stopNode(dirOf(o), o.k);
  emit(g, { stopped: o.k }, () => `node${o.k} stopped`);
}

export async function startNodeCmd(g: GlobalOptions, o: { dir?: string; k: number }): Promise<void> {
  useGlobals(g);
  await startNode(dirOf(o), o.k);
  emit(g, { started: o.k }, () => `node${o.k} is Synced again`);
}

export async function down(g: GlobalOptions, o: { dir?: string; purge: boolean }): Promise<void> {
  useGlobals(g);
  const dir = dirOf(o);
  const stopped = await sandboxDown(dir, { purge: o.purge });
  emit(
    g,
    { dir, stopped, purged: o.purge },
    () => `sandbox: stopped ${stopped} node(s)${o.purge ? `, removed ${dir}` : ""}`,
  );
}
