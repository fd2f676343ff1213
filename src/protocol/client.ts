// The backup host's side of a node agent: an SSH connection (key auth, pinned host key) whose exec
// channel runs the agent, the version handshake, and a physical backup whose age-encrypted parts
// arrive as frames. Each part is hashed here, on the backup host, as it is stored: the node is
// not trusted to report its own hashes.
import { createHash } from "node:crypto";
import { once } from "node:events";
import { PassThrough, type Readable } from "node:stream";
import { setTimeout as delay } from "node:timers/promises";
import type { Client, ClientChannel } from "ssh2";
import { StrongboxError } from "../errors.ts";
import type { NodeAgent } from "../galera/connection.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { Manifest } from "../repository/manifest.ts";
import { loadSshIdentity, type SshErrorCodes, type SshOptions, sshConnect } from "../ssh/client.ts";
import type { Storage } from "../storage/types.ts";
import { messageOf } from "../util/error-kinds.ts";
import { streamed } from "../util/gc.ts";
import { TailBuffer } from "../util/proc.ts";
import { type Frame, FrameType, FrameWriter, parseJson, readFrames } from "./frames.ts";
import {
  AGENT_PROTOCOL,
  type AgentError,
  type AgentRequest,
  agentErrorOf,
  type BackupRequest,
  type BackupResult,
  type Hello,
  type LogLine,
  type PartEnd,
  type PartStart,
} from "./messages.ts";

export interface AgentOptions extends SshOptions {
  /** The command sent to sshd; a forced command in authorized_keys takes its place. */
  command: string;
}

/** Parts of a backup being made durable while the next one streams in. */
const PARTS_COMMITTING = 1;

/** Upload frames are cut at this size, well below the agent's limit for a data frame. */
const MAX_UPLOAD_FRAME = 256 * 1024;

const SSH_CODES: SshErrorCodes = {
  stage: "agent",
  hostKey: "AGENT_HOST_KEY",
  auth: "AGENT_AUTH",
  unavailable: "AGENT_UNREACHABLE",
  config: "AGENT_CONFIG",
  io: "AGENT_UNREACHABLE",
};

/** Opens a session with the agent of a node that has one (cluster.nodes[].agent). */
export function openAgent(node: { name: string; agent: NodeAgent }, version: string): Promise<AgentSession> {
  const a = node.agent;
  return AgentSession.open(
    node.name,
    {
      host: a.host,
      port: a.port,
      user: a.user,
      ...(a.privateKeyFile ? { privateKeyFile: a.privateKeyFile } : {}),
      ...(a.agentSocket ? { agentSocket: a.agentSocket } : {}),
      ...(a.passphraseFile ? { passphraseFile: a.passphraseFile } : {}),
      ...(a.hostKey !== undefined ? { hostKey: a.hostKey } : {}),
      ...(a.knownHostsFile ? { knownHostsFile: a.knownHostsFile } : {}),
      connectTimeoutMs: a.connectTimeoutMs,
      command: a.command,
    },
    version,
  );
}

/**
 * One operation on a node's agent that takes a chain's streams (a restore, a restore-test): a
 * session opened for it, each backup's stream sent in chain order, the agent's progress lines
 * passed on, the session closed whatever happens.
 */
export async function callWithChain<T>(
  node: { name: string; agent: NodeAgent },
  version: string,
  request: AgentRequest,
  o: {
    chain: Manifest[];
    open: (m: Manifest, signal?: AbortSignal) => Readable;
    signal?: AbortSignal | undefined;
    log?: ((message: string) => void) | undefined;
  },
): Promise<T> {
  const session = await openAgent(node, version);
  try {
    return await session.call<T>(request, {
      streams: o.chain.map((m) => () => o.open(m, o.signal)),
      onLog: (m) => o.log?.(`${node.name}: ${m}`),
      signal: o.signal,
    });
  } finally {
    session.close();
  }
}

/** How long an agent may take to clean up after the backup host's upload failed. */
const CLEANUP_WAIT_MS = 30_000;

/** One agent session: connected, handshake done. */
export class AgentSession {
  readonly node: string;
  readonly hello: Hello;
  private readonly client: Client;
  private readonly channel: ClientChannel;
  private readonly frames: AsyncGenerator<Frame>;
  private readonly out: FrameWriter;
  private readonly stderr: TailBuffer;

  private constructor(
    node: string,
    parts: { client: Client; channel: ClientChannel; frames: AsyncGenerator<Frame>; stderr: TailBuffer },
    hello: Hello,
  ) {
    this.node = node;
    this.client = parts.client;
    this.channel = parts.channel;
    this.frames = parts.frames;
    this.out = new FrameWriter(parts.channel);
    this.stderr = parts.stderr;
    this.hello = hello;
  }

  /** Connects to the node's sshd, starts the agent and checks its protocol version. */
  static async open(node: string, o: AgentOptions, version: string): Promise<AgentSession> {
    const identity = await loadSshIdentity(o, SSH_CODES);
    const client = await sshConnect(o, identity, SSH_CODES);
    client.on("error", () => {}); // reported through the channel's end
    try {
      const channel = await new Promise<ClientChannel>((resolve, reject) =>
        client.exec(o.command, (error, ch) => (error ? reject(error) : resolve(ch))),
      );
      const stderr = new TailBuffer(8 * 1024);
      channel.stderr.on("data", (c: Buffer) => stderr.push(c));
      const exit = new Promise<number | null>((resolve) =>
        channel.once("exit", (code: number | null) => resolve(code)),
      );
      const frames = readFrames(channel);
      await new FrameWriter(channel).json(FrameType.hello, {
        protocol: AGENT_PROTOCOL,
        version,
      } satisfies Hello);
      let first: IteratorResult<Frame>;
      try {
        first = await frames.next();
      } catch (e) {
        throw await notAnAgent(node, o, stderr, exit, e);
      }
      if (first.done) throw await notAnAgent(node, o, stderr, exit);
      if (first.value.type === FrameType.error) throw agentErrorOf(parseJson<AgentError>(first.value), node);
      if (first.value.type !== FrameType.hello) throw await notAnAgent(node, o, stderr, exit);
      const hello = parseJson<Hello>(first.value);
      if (hello.protocol !== AGENT_PROTOCOL) {
        // The agent answers with its own hello, then refuses; this side says it first.
        throw new StrongboxError(
          "AGENT_VERSION",
          `${node}: the agent speaks protocol ${hello.protocol} (strongbox ${hello.version}); this backup host speaks ${AGENT_PROTOCOL} (strongbox ${version})`,
          { stage: "agent", hint: "install the same strongbox version on the backup host and the nodes" },
        );
      }
      return new AgentSession(node, { client, channel, frames, stderr }, hello);
    } catch (e) {
      client.end();
      throw e;
    }
  }

  /**
   * Runs a physical backup on the node; its parts are stored under `keyFor(i)` as they arrive.
   * On any failure the parts already stored are the caller's to remove (nothing is committed).
   */
  async backup(
    request: Omit<BackupRequest, "op">,
    o: {
      storage: Pick<Storage, "put">;
      keyFor: (index: number) => string;
      signal?: AbortSignal | undefined;
      onProgress?: (bytes: number) => void;
    },
  ): Promise<{ parts: PartRecord[]; result: BackupResult }> {
    const onAbort = () => this.close();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    const parts: PartRecord[] = [];
    let current:
      | {
          index: number;
          key: string;
          sink: PassThrough;
          stored: Promise<unknown>;
          size: number;
          hash: ReturnType<typeof createHash>;
        }
      | undefined;
    let received = 0;
    const committing: Promise<unknown>[] = [];
    try {
      await this.out.json(FrameType.request, { op: "backup", ...request } satisfies BackupRequest);
      for (;;) {
        let step: IteratorResult<Frame>;
        try {
          step = await this.frames.next();
        } catch (e) {
          throw this.lost(e);
        }
        if (step.done) throw this.lost();
        const f = step.value;
        switch (f.type) {
          case FrameType.partStart: {
            const { index } = parseJson<PartStart>(f);
            if (current || index !== parts.length) throw this.protocol(`part ${index} out of order`);
            const key = o.keyFor(index);
            const sink = new PassThrough({ highWaterMark: 1 << 20 });
            const hash = createHash("sha256");
            const stored = o.storage.put(key, sink, { signal: o.signal });
            stored.catch(() => {});
            current = { index, key, sink, stored, size: 0, hash };
            break;
          }
          case FrameType.data: {
            if (!current) throw this.protocol("data outside a part");
            current.hash.update(f.payload);
            current.size += f.payload.length;
            received += f.payload.length;
            // Every frame is a new Buffer (and ssh2's packets before it): collected as they stream.
            streamed(f.payload.length);
            o.onProgress?.(received);
            // The channel is read no faster than the storage takes the bytes: SSH's window does the rest.
            if (!current.sink.write(f.payload)) {
              await Promise.race([once(current.sink, "drain"), current.stored]);
            }
            break;
          }
          case FrameType.partEnd: {
            const end = parseJson<PartEnd>(f);
            if (!current || end.index !== current.index)
              throw this.protocol("a part ended that was not open");
            current.sink.end();
            parts.push({
              index: current.index,
              key: current.key,
              size: current.size,
              sha256: current.hash.digest("hex"),
              plainSize: end.plainSize,
            });
            // The next part streams in while this one is made durable (its fsync): reading the
            // channel only after each commit would stall the node for every part.
            committing.push(current.stored);
            current = undefined;
            if (committing.length > PARTS_COMMITTING) await committing.shift();
            break;
          }
          case FrameType.result: {
            if (current) throw this.protocol("the result came inside a part");
            await Promise.all(committing);
            return { parts, result: parseJson<BackupResult>(f) };
          }
          case FrameType.error:
            throw agentErrorOf(parseJson<AgentError>(f), this.node);
          case FrameType.log:
            break;
          default:
            throw this.protocol(`unexpected frame type ${f.type}`);
        }
      }
    } catch (e) {
      if (current) {
        // Without an error: the put sees a premature close and fails; nobody listens for ours.
        current.sink.destroy();
        await current.stored.catch(() => {});
      }
      await Promise.allSettled(committing);
      if (o.signal?.aborted) throw o.signal.reason;
      throw e;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  /**
   * Sends `request`, then each of `streams` in order (framed as parts 0, 1, …), while it reads the
   * agent's progress lines; resolves with the operation's result. An error frame from the agent
   * stops the upload at once: it is the error reported.
   */
  async call<T>(
    request: AgentRequest,
    o: {
      streams?: (() => Readable)[];
      onLog?: (message: string) => void;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<T> {
    const onAbort = () => this.close();
    o.signal?.addEventListener("abort", onAbort, { once: true });
    let finished = false;
    let uploading: Readable | undefined;
    const upload = async () => {
      await this.out.json(FrameType.request, request);
      for (const [index, open] of (o.streams ?? []).entries()) {
        if (finished) return;
        await this.out.json(FrameType.partStart, { index } satisfies PartStart);
        let size = 0;
        uploading = open();
        for await (const chunk of uploading as AsyncIterable<Buffer>) {
          if (finished) return;
          for (let at = 0; at < chunk.length; at += MAX_UPLOAD_FRAME) {
            const piece = chunk.subarray(at, at + MAX_UPLOAD_FRAME);
            await this.out.write(FrameType.data, piece);
            size += piece.length;
            streamed(piece.length);
          }
        }
        await this.out.json(FrameType.partEnd, { index, plainSize: size } satisfies PartEnd);
      }
    };
    // A failed upload (a part that fails its hash, say) ends our side of the channel, on a frame
    // boundary: the agent sees its input end, stops, empties its target and answers, so that the
    // node is clean when this command returns. That failure, not the agent's answer, is reported.
    // An agent that does not answer in time is cut off.
    let uploadError: unknown;
    let cutOff: NodeJS.Timeout | undefined;
    const sent = upload().catch((e: unknown) => {
      uploadError = e;
      this.channel.end();
      cutOff = setTimeout(() => this.close(), CLEANUP_WAIT_MS);
    });
    const lostOrUpload = (cause?: unknown) =>
      finished || uploadError === undefined ? this.lost(cause) : uploadError;
    try {
      for (;;) {
        let step: IteratorResult<Frame>;
        try {
          step = await this.frames.next();
        } catch (e) {
          await Promise.race([sent, delay(100)]);
          throw lostOrUpload(e);
        }
        if (step.done) {
          await Promise.race([sent, delay(100)]);
          throw lostOrUpload();
        }
        const f = step.value;
        if (f.type === FrameType.log) o.onLog?.(parseJson<LogLine>(f).message);
        else if (f.type === FrameType.result) {
          // The agent may answer before it read every stream (a restore-test whose restore failed
          // reports that as its result); what was not sent is not needed.
          if (uploadError !== undefined) throw uploadError;
          return parseJson<T>(f);
        } else if (f.type === FrameType.error) {
          // Our own upload failing closes the session; the agent may still say it saw us go.
          if (uploadError !== undefined) throw uploadError;
          throw agentErrorOf(parseJson<AgentError>(f), this.node);
        } else throw this.protocol(`unexpected frame type ${f.type}`);
      }
    } catch (e) {
      if (o.signal?.aborted) throw o.signal.reason;
      throw e;
    } finally {
      finished = true;
      clearTimeout(cutOff);
      uploading?.destroy();
      o.signal?.removeEventListener("abort", onAbort);
    }
  }

  close(): void {
    this.channel.destroy();
    this.client.end();
  }

  private lost(cause?: unknown): StrongboxError {
    const said = this.stderr.lastLines(2);
    return new StrongboxError(
      "AGENT_LOST",
      `${this.node}: the agent or its connection went away mid-stream${cause ? ` (${messageOf(cause)})` : ""}${said ? `: ${said}` : ""}`,
      { stage: "agent", cause },
    );
  }

  private protocol(message: string): StrongboxError {
    return new StrongboxError("AGENT_PROTOCOL", `${this.node}: ${message}`, { stage: "agent" });
  }
}

async function notAnAgent(
  node: string,
  o: AgentOptions,
  stderr: TailBuffer,
  exit: Promise<number | null>,
  cause?: unknown,
): Promise<StrongboxError> {
  const code = await Promise.race([
    exit,
    new Promise<undefined>((r) => setTimeout(() => r(undefined), 2000)),
  ]);
  const said = stderr.lastLines(2);
  return new StrongboxError(
    "AGENT_MISSING",
    `${node}: no strongbox agent answered at ${o.user}@${o.host}:${o.port ?? 22}${code !== undefined && code !== null ? ` (the command exited with ${code})` : ""}${said ? `: ${said}` : ""}`,
    {
      stage: "agent",
      hint: "install strongbox on the node and check the command in the agent account's authorized_keys",
      cause,
    },
  );
}
