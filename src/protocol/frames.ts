// The agent protocol's framing over a byte stream (the SSH channel's stdin/stdout): each frame is a
// 1-byte type, a 4-byte big-endian length and that many bytes. Control frames carry JSON, data
// frames carry age ciphertext. Writing waits for the stream to drain, so the SSH window is the
// backpressure between the node and the backup host.
import type { Readable, Writable } from "node:stream";
import { StrongboxError } from "../errors.ts";

export const FrameType = {
  /** JSON: the version handshake, both ways. */
  hello: 1,
  /** JSON: an operation and its arguments (backup host → agent). */
  request: 2,
  /** JSON: the start of a part {index} (agent → backup host). */
  partStart: 3,
  /** Bytes of the current part. */
  data: 4,
  /** JSON: the end of the current part {index, plainSize}. */
  partEnd: 5,
  /** JSON: the operation's result; the last frame of an operation. */
  result: 6,
  /** JSON: {code, message, hint?}; the last frame of a failed operation. */
  error: 7,
} as const;
export type FrameTypeValue = (typeof FrameType)[keyof typeof FrameType];

/** Control frames are small; a larger one is not from a well-behaved peer. */
const MAX_CONTROL_BYTES = 1024 * 1024;
/** Data frames are chunks of the age stream (64 KiB + tag); a bit of room above that. */
const MAX_DATA_BYTES = 4 * 1024 * 1024;

export interface Frame {
  type: FrameTypeValue;
  payload: Buffer;
}

export class FrameWriter {
  private readonly out: Writable;
  constructor(out: Writable) {
    this.out = out;
  }

  async write(type: FrameTypeValue, payload: Buffer): Promise<void> {
    const head = Buffer.allocUnsafe(5);
    head.writeUInt8(type, 0);
    head.writeUInt32BE(payload.length, 1);
    const a = this.out.write(head);
    const b = payload.length > 0 ? this.out.write(payload) : true;
    if (!a || !b) await drainedOrClosed(this.out);
    if (this.out.destroyed || this.out.writableEnded)
      throw protocolLost("the connection closed while writing");
  }

  json(type: FrameTypeValue, value: unknown): Promise<void> {
    return this.write(type, Buffer.from(JSON.stringify(value), "utf8"));
  }
}

/** Waits for 'drain' or 'close', leaving no listener behind (writes wait here thousands of times). */
function drainedOrClosed(out: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      out.off("drain", done);
      out.off("close", done);
      resolve();
    };
    out.on("drain", done);
    out.on("close", done);
  });
}

function protocolLost(message: string): StrongboxError {
  return new StrongboxError("AGENT_LOST", message, { stage: "agent" });
}

/** The frames of a byte stream, in order; ends when the stream ends between two frames. */
export async function* readFrames(input: Readable): AsyncGenerator<Frame> {
  let buffered: Buffer = Buffer.alloc(0);
  for await (const chunk of input) {
    buffered = buffered.length === 0 ? (chunk as Buffer) : Buffer.concat([buffered, chunk as Buffer]);
    while (buffered.length >= 5) {
      const type = buffered.readUInt8(0) as FrameTypeValue;
      const length = buffered.readUInt32BE(1);
      if (!Object.values(FrameType).includes(type)) {
        throw new StrongboxError("AGENT_PROTOCOL", `unknown frame type ${type}`, { stage: "agent" });
      }
      const max = type === FrameType.data ? MAX_DATA_BYTES : MAX_CONTROL_BYTES;
      if (length > max) {
        throw new StrongboxError("AGENT_PROTOCOL", `frame of ${length} bytes exceeds ${max}`, {
          stage: "agent",
        });
      }
      if (buffered.length < 5 + length) break;
      yield { type, payload: buffered.subarray(5, 5 + length) };
      buffered = buffered.subarray(5 + length);
    }
  }
  if (buffered.length > 0) throw protocolLost("the stream ended inside a frame");
}

export function parseJson<T>(frame: Frame): T {
  try {
    return JSON.parse(frame.payload.toString("utf8")) as T;
  } catch {
    throw new StrongboxError("AGENT_PROTOCOL", `frame type ${frame.type} does not hold JSON`, {
      stage: "agent",
    });
  }
}
