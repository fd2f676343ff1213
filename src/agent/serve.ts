// The agent: `strongbox agent`, started on a node by sshd's forced command, talking frames on
// stdin/stdout. It runs mariabackup as the node's own OS account with the node's my.cnf, compresses
// with zstd, cuts the stream into parts and encrypts each with age to the recipients the backup
// host sent. Only ciphertext leaves the node; the backup host hashes, stores and commits.
// When the backup host goes away (stdin ends, the channel closes), everything stops.
import { hostname, userInfo } from "node:os";
import type { Readable, Writable } from "node:stream";
import { parseRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import { readPhysicalPosition, startMariabackup } from "../mariadb/backup-tools.ts";
import { zstdCompress } from "../pipeline/compress.ts";
import { allOrFirstError } from "../pipeline/failfast.ts";
import { writeParts } from "../pipeline/parts.ts";
import { FrameType, FrameWriter, parseJson, readFrames } from "../protocol/frames.ts";
import {
  AGENT_PROTOCOL,
  type AgentError,
  type AgentRequest,
  type BackupRequest,
  type BackupResult,
  type Hello,
} from "../protocol/messages.ts";
import type { Storage } from "../storage/types.ts";
import { messageOf } from "../util/error-kinds.ts";
import { privateTempDir } from "../util/optionfile.ts";
import { terminate } from "../util/proc.ts";

export interface AgentIo {
  input: Readable;
  output: Writable;
  version: string;
  log?: (message: string) => void;
}

function errorFrame(e: unknown): AgentError {
  if (e instanceof StrongboxError) return { code: e.code, message: e.message, hint: e.hint };
  return { code: "INTERNAL", message: messageOf(e) };
}

/** Serves one session: the handshake, then one operation. Resolves when it is over. */
export async function serveAgent(io: AgentIo): Promise<void> {
  const out = new FrameWriter(io.output);
  const frames = readFrames(io.input);
  const abort = new AbortController();
  // The backup host is gone: stop whatever runs.
  io.input.once("end", () => abort.abort(new StrongboxError("AGENT_LOST", "the backup host went away")));
  io.input.once("close", () => abort.abort(new StrongboxError("AGENT_LOST", "the backup host went away")));
  try {
    const first = await frames.next();
    if (first.done || first.value.type !== FrameType.hello) {
      throw new StrongboxError("AGENT_PROTOCOL", "expected the handshake first");
    }
    const hello = parseJson<Hello>(first.value);
    const mine: Hello = {
      protocol: AGENT_PROTOCOL,
      version: io.version,
      host: hostname(),
      user: userInfo().username,
    };
    await out.json(FrameType.hello, mine);
    if (hello.protocol !== AGENT_PROTOCOL) {
      throw new StrongboxError(
        "AGENT_VERSION",
        `this agent speaks protocol ${AGENT_PROTOCOL} (strongbox ${io.version}); the backup host speaks ${hello.protocol} (strongbox ${hello.version})`,
        { hint: "install the same strongbox version on the backup host and the nodes" },
      );
    }
    const next = await frames.next();
    if (next.done) return; // a handshake alone: the backup host only checked the agent
    if (next.value.type !== FrameType.request)
      throw new StrongboxError("AGENT_PROTOCOL", "expected a request");
    const request = parseJson<AgentRequest>(next.value);
    if (request.op !== "backup") {
      throw new StrongboxError(
        "AGENT_PROTOCOL",
        `unknown operation ${JSON.stringify((request as { op?: unknown }).op)}`,
      );
    }
    const result = await backup(request, out, abort.signal, io.log);
    await out.json(FrameType.result, result);
  } catch (e) {
    io.log?.(`agent: ${messageOf(e)}`);
    await out.json(FrameType.error, errorFrame(e)).catch(() => {});
  } finally {
    io.output.end();
  }
}

/** A Storage whose puts go out as frames, one part after the other. */
function frameSink(out: FrameWriter): Pick<Storage, "put"> {
  let index = 0;
  return {
    async put(_key, data) {
      const n = index++;
      await out.json(FrameType.partStart, { index: n });
      let size = 0;
      for await (const chunk of data as AsyncIterable<Buffer>) {
        size += chunk.length;
        await out.write(FrameType.data, chunk);
      }
      return { size };
    },
  };
}

async function backup(
  r: BackupRequest,
  out: FrameWriter,
  signal: AbortSignal,
  log?: (message: string) => void,
): Promise<BackupResult> {
  const recipients = r.recipients.map((text) => parseRecipient(text));
  if (recipients.length === 0)
    throw new StrongboxError("NO_RECIPIENTS", "the backup host sent no recipients");
  const work = await privateTempDir("strongbox-agent-");
  try {
    const tool = await startMariabackup({
      path: r.mariabackupPath,
      node: r.node,
      creds: r.creds,
      ...(r.tls ? { tls: r.tls } : {}),
      workDir: work.path,
      parallel: r.parallel,
      ...(r.incrementalLsn !== undefined ? { incrementalLsn: r.incrementalLsn } : {}),
      ...(r.account ? { account: r.account } : {}),
    });
    log?.(`agent: mariabackup started on ${r.node.name}`);
    const zstd = zstdCompress(r.compressionLevel, r.compressionThreads, tool.child.stdout!);
    tool.child.stdout!.destroy();
    const sink = frameSink(out);
    const parts = writeParts(zstd.child.stdout!, {
      storage: sink,
      keyFor: (i) => `part-${i}`,
      partSize: r.partSize,
      recipients,
      maxInFlight: 1,
      signal,
      onPart: (p) => void out.json(FrameType.partEnd, { index: p.index, plainSize: p.plainSize }),
    });
    const stop = async () => {
      await Promise.all([terminate(tool.child, 3000), terminate(zstd.child, 3000)]);
    };
    const onAbort = () => void stop();
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await allOrFirstError([tool.done, zstd.done, parts], stop, signal);
    } finally {
      signal.removeEventListener("abort", onAbort);
    }
    const position = await readPhysicalPosition(tool.lsnDir, tool.stderr.text());
    return { rawBytes: await zstd.totalIn, position };
  } finally {
    await work.remove().catch(() => {});
  }
}
