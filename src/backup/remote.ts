// A physical backup taken by the node's agent: mariabackup, zstd and age run on the node, the
// encrypted parts come back over SSH and are hashed and stored here. The result has the same shape
// as a local stream's, so the manifest is built the same way.
import { readFile } from "node:fs/promises";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode, Credentials, NodeAgent, TlsOptions } from "../galera/connection.ts";
import type { PhysicalPosition } from "../mariadb/backup-tools.ts";
import { type StreamResult, stallError } from "../pipeline/stream.ts";
import type { AgentSession } from "../protocol/client.ts";
import type { Hello } from "../protocol/messages.ts";
import type { Storage } from "../storage/types.ts";
import { watchStall } from "../util/stall.ts";

export interface RemoteBackup {
  node: ClusterNode & { agent: NodeAgent };
  creds: Credentials;
  tls?: TlsOptions | undefined;
  recipients: { names: string[]; passphrase: boolean };
  mariabackupPath: string;
  parallel: number;
  incrementalLsn?: number | undefined;
  partSize: number;
  compressionLevel: number;
  compressionThreads: number;
  account: string;
  storage: Storage;
  keyFor: (index: number) => string;
  /** The first part is stored only once this settles (the writer's housekeeping). */
  ready?: Promise<unknown>;
  signal?: AbortSignal | undefined;
  onProgress?: ((bytes: number) => void) | undefined;
  /** Stop when no data came from the agent for this long (ms). */
  stallTimeoutMs?: number | undefined;
  version: string;
  /** A session opened beforehand (while the grants were checked), else one is opened here. */
  session?: Promise<AgentSession> | undefined;
}

/**
 * Starts connecting to a node's agent (SSH handshake, the agent's start, the version handshake)
 * so that it overlaps the backup host's own checks; the caller hands it to streamViaAgent or
 * closes it with abandonSession.
 */
export function openAgentEarly(
  node: { name: string; agent: NodeAgent },
  version: string,
): Promise<AgentSession> {
  const opening = openAgentLazily(node, version);
  opening.catch(() => {}); // reported when streamViaAgent awaits it
  return opening;
}

/**
 * The protocol client, and ssh2 with it, load only when a node has an agent: importing them costs
 * about 50 ms of every backup's start on the benchmark machine (docs/benchmarks.md).
 */
function openAgentLazily(node: { name: string; agent: NodeAgent }, version: string): Promise<AgentSession> {
  return import("../protocol/client.ts").then((m) => m.openAgent(node, version));
}

/**
 * The node most likely to be the donor, when it is known before the probes answer (asked for, the
 * configured backup node, or the only node) and it has an agent: its SSH session can open while
 * the nodes are probed and the plan is made.
 */
export function likelyAgentDonor(
  nodes: readonly ClusterNode[],
  preferred: string | undefined,
): (ClusterNode & { agent: NodeAgent }) | undefined {
  const name = preferred ?? (nodes.length === 1 ? nodes[0]?.name : undefined);
  const node = nodes.find((n) => n.name === name);
  return node?.agent ? { ...node, agent: node.agent } : undefined;
}

/** Closes a session opened early and not used (the backup failed before streaming). */
export function abandonSession(opening: Promise<AgentSession> | undefined): void {
  opening?.then(
    (s) => s.close(),
    () => {},
  );
}

export async function streamViaAgent(
  o: RemoteBackup,
): Promise<{ streamed: StreamResult; position: PhysicalPosition }> {
  if (o.recipients.passphrase) {
    throw new StrongboxError(
      "AGENT_PASSPHRASE",
      `node ${o.node.name} has an agent, and the repository is encrypted with a passphrase: the node would need it`,
      { hint: "use age recipients (keys.recipients) with agents; nodes never hold secrets" },
    );
  }
  const session = await (o.session ?? openAgentLazily(o.node, o.version));
  const storage: Pick<Storage, "put"> = {
    put: async (key, data, options) => {
      await o.ready;
      return o.storage.put(key, data, options);
    },
  };
  // The watchdog on this side: no data from the agent for stallTimeout ends the session, and the
  // agent stops mariabackup when its channel closes.
  const stall = new AbortController();
  const watch = o.stallTimeoutMs
    ? watchStall({
        timeoutMs: o.stallTimeoutMs,
        onStall: (idle) => stallError(`mariabackup on ${o.node.name}`, idle),
      })
    : undefined;
  watch?.stalled.catch((e: unknown) => stall.abort(e));
  const signal = o.signal ? AbortSignal.any([o.signal, stall.signal]) : stall.signal;
  try {
    const { parts, result } = await session
      .backup(
        {
          mariabackupPath: o.mariabackupPath,
          node: {
            name: o.node.name,
            host: o.node.host,
            port: o.node.port,
            socket: o.node.agent.onNode?.socket,
            datadir: o.node.agent.onNode?.datadir,
            defaultsFile: o.node.agent.onNode?.defaultsFile,
          },
          creds: o.creds,
          tlsCaPem: o.tls?.ca ? await readFile(o.tls.ca, "utf8") : undefined,
          parallel: o.parallel,
          incrementalLsn: o.incrementalLsn,
          partSize: o.partSize,
          compressionLevel: o.compressionLevel,
          compressionThreads: o.compressionThreads,
          recipients: o.recipients.names,
          account: o.account,
        },
        {
          storage,
          keyFor: o.keyFor,
          signal,
          onProgress: (bytes) => {
            watch?.touch();
            o.onProgress?.(bytes);
          },
        },
      )
      .catch((e: unknown) => {
        throw stall.signal.aborted ? stall.signal.reason : e;
      });
    if (parts.length === 0)
      throw new StrongboxError("AGENT_PROTOCOL", `${o.node.name}: the agent sent no part`);
    return {
      streamed: {
        parts,
        head: Buffer.alloc(0),
        tail: Buffer.alloc(0),
        rawBytes: result.rawBytes,
        compressedBytes: parts.reduce((s, p) => s + p.plainSize, 0),
        storedBytes: parts.reduce((s, p) => s + p.size, 0),
      },
      position: result.position,
    };
  } finally {
    watch?.stop();
    session.close();
  }
}

/** Connects to a node's agent for the handshake only, and hangs up (strongbox check). */
export async function greetAgent(node: { name: string; agent: NodeAgent }, version: string): Promise<Hello> {
  const session = await openAgentLazily(node, version);
  session.close();
  return session.hello;
}
