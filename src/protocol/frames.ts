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
  /** JSON: the start of a part {index}: a backup's part (agent → backup host), or a backup's stream to restore (backup host → agent). */
  partStart: 3,
  /** Bytes of the current part. */
  data: 4,
  /** JSON: the end of the current part {index, plainSize}. */
  partEnd: 5,
  /** JSON: the operation's result; the last frame of an operation. */
  result: 6,
  /** JSON: {code, message, hint?}; the last frame of a failed operation. */
  error: 7,
  /** JSON: {message}, a progress line (agent → backup host). */
  log: 8,
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

/**
 * The frames of a byte stream, in order; ends when the stream ends between two frames. A data
 * frame may come as several data frames, in order, each a piece of the chunks it arrived in (never
 * copied): data frames are only bytes of the current part, so their boundaries carry no meaning.
 */
export async function* readFrames(input: Readable): AsyncGenerator<Frame> {
  // Chunks are kept as they came; a control frame is copied at most once, into the frame that spans them.
  const chunks: Buffer[] = [];
  let have = 0;
  const take = (n: number): Buffer => {
    const first = chunks[0]!;
    have -= n;
    if (first.length >= n) {
      if (first.length === n) chunks.shift();
      else chunks[0] = first.subarray(n);
      return first.subarray(0, n);
    }
    const out = Buffer.allocUnsafe(n);
    for (let at = 0; at < n; ) {
      const c = chunks[0]!;
      const k = Math.min(c.length, n - at);
      c.copy(out, at, 0, k);
      at += k;
      if (k === c.length) chunks.shift();
      else chunks[0] = c.subarray(k);
    }
    return out;
  };
  let head: { type: FrameTypeValue; length: number } | undefined;
  /** The first of the chunks' bytes, at most `n`, as they are. */
  const piece = (n: number): Buffer => {
    const first = chunks[0]!;
    if (first.length <= n) {
      chunks.shift();
      have -= first.length;
      return first;
    }
    chunks[0] = first.subarray(n);
    have -= n;
    return first.subarray(0, n);
  };
  for await (const chunk of input) {
    chunks.push(chunk as Buffer);
    have += (chunk as Buffer).length;
    for (;;) {
      if (!head) {
        if (have < 5) break;
        const h = take(5);
        const type = h.readUInt8(0) as FrameTypeValue;
        const length = h.readUInt32BE(1);
        if (!Object.values(FrameType).includes(type)) {
          throw new StrongboxError("AGENT_PROTOCOL", `unknown frame type ${type}`, { stage: "agent" });
        }
        const max = type === FrameType.data ? MAX_DATA_BYTES : MAX_CONTROL_BYTES;
        if (length > max) {
          throw new StrongboxError("AGENT_PROTOCOL", `frame of ${length} bytes exceeds ${max}`, {
            stage: "agent",
          });
        }
        head = { type, length };
      }
      if (head.type === FrameType.data && head.length > 0) {
        while (head.length > 0 && have > 0) {
          const payload = piece(head.length);
          head.length -= payload.length;
          yield { type: FrameType.data, payload };
        }
        if (head.length > 0) break;
        head = undefined;
        continue;
      }
      if (have < head.length) break;
      yield { type: head.type, payload: head.length === 0 ? Buffer.alloc(0) : take(head.length) };
      head = undefined;
    }
  }
  if (head || have > 0) throw protocolLost("the stream ended inside a frame");
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
