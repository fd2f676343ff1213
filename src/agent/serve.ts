// The agent: `strongbox agent`, started on a node by sshd's forced command, talking frames on
// stdin/stdout. It offers the protocol's operations and nothing else: a backup (backup.ts), a
// restore into a directory below its restore root, and a restore-test there (restore.ts).
// When the backup host goes away (stdin ends, the channel closes), everything stops and what was
// half made is removed.
import { hostname, userInfo } from "node:os";
import type { Readable, Writable } from "node:stream";
import { StrongboxError } from "../errors.ts";
import { FrameType, FrameWriter, parseJson, readFrames } from "../protocol/frames.ts";
import { AGENT_PROTOCOL, type AgentError, type AgentRequest, type Hello } from "../protocol/messages.ts";
import { messageOf } from "../util/error-kinds.ts";
import { backupOnNode } from "./backup.ts";
import { restoreOnNode, restoreTestOnNode } from "./restore.ts";

export interface AgentIo {
  input: Readable;
  output: Writable;
  /** The file descriptor under `output` (the agent's stdout): the native sealer writes to it directly. */
  outputFd?: number;
  version: string;
  /** Restores and restore-tests happen only below this directory (`--restore-root`); none without it. */
  restoreRoot?: string | undefined;
  log?: (message: string) => void;
}

function errorFrame(e: unknown): AgentError {
  if (e instanceof StrongboxError) return { code: e.code, message: e.message, hint: e.hint };
  return { code: "INTERNAL", message: messageOf(e) };
}

/** Serves one session: the handshake, then one operation. Resolves when it is over: true if it went well. */
export async function serveAgent(io: AgentIo): Promise<boolean> {
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
    if (next.done) return true; // a handshake alone: the backup host only checked the agent
    if (next.value.type !== FrameType.request)
      throw new StrongboxError("AGENT_PROTOCOL", "expected a request");
    const request = parseJson<AgentRequest>(next.value);
    const signal = abort.signal;
    const where = { root: io.restoreRoot, signal };
    let result: unknown;
    switch (request.op) {
      case "backup":
        result = await backupOnNode(
          request,
          { frames: out, stream: io.output, ...(io.outputFd !== undefined ? { fd: io.outputFd } : {}) },
          signal,
          io.log,
        );
        break;
      case "restore":
        io.log?.(`agent: restoring ${request.chain.map((m) => m.id).join(" + ")} into ${request.targetDir}`);
        result = await restoreOnNode(request, frames, out, where);
        break;
      case "restore-test":
        io.log?.(`agent: restore-test of ${request.chain.map((m) => m.id).join(" + ")}`);
        result = await restoreTestOnNode(request, frames, out, where);
        break;
      default:
        throw new StrongboxError(
          "AGENT_PROTOCOL",
          `unknown operation ${JSON.stringify((request as { op?: unknown }).op)}`,
        );
    }
    await out.json(FrameType.result, result);
    return true;
  } catch (e) {
    io.log?.(`agent: ${messageOf(e)}`);
    await out.json(FrameType.error, errorFrame(e)).catch(() => {});
    return false;
  } finally {
    io.output.end();
  }
}
