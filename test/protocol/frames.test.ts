// The agent protocol's framing on bad input: whatever a broken or hostile peer sends is one clear
// error, never a huge allocation or a hang.
import assert from "node:assert/strict";
import { PassThrough, Readable } from "node:stream";
import { describe, it } from "node:test";
import { FrameType, FrameWriter, parseJson, readFrames } from "../../src/protocol/frames.ts";

async function all(input: Buffer[]): Promise<{ type: number; text: string }[]> {
  const out: { type: number; text: string }[] = [];
  for await (const f of readFrames(Readable.from(input)))
    out.push({ type: f.type, text: f.payload.toString() });
  return out;
}

function frame(type: number, payload: Buffer | string, length?: number): Buffer {
  const p = Buffer.from(payload);
  const head = Buffer.alloc(5);
  head.writeUInt8(type, 0);
  head.writeUInt32BE(length ?? p.length, 1);
  return Buffer.concat([head, p]);
}

describe("agent frames", () => {
  it("round-trips frames split at any byte boundary", async () => {
    const sink = new PassThrough();
    const chunks: Buffer[] = [];
    sink.on("data", (c: Buffer) => chunks.push(c));
    const w = new FrameWriter(sink);
    await w.json(FrameType.hello, { protocol: 1 });
    await w.write(FrameType.data, Buffer.from("ciphertext"));
    await w.json(FrameType.result, { ok: true });
    const bytes = Buffer.concat(chunks);
    const oneByOne = [...bytes].map((b) => Buffer.from([b]));
    const frames = await all(oneByOne);
    assert.deepEqual(
      frames.map((f) => f.type),
      [FrameType.hello, FrameType.data, FrameType.result],
    );
    assert.equal(frames[1]!.text, "ciphertext");
  });

  it("an unknown frame type, an oversized length or a cut frame is an error", async () => {
    await assert.rejects(all([frame(42, "x")]), { code: "AGENT_PROTOCOL", message: /unknown frame type 42/ });
    await assert.rejects(all([frame(FrameType.hello, "", 2 ** 31)]), {
      code: "AGENT_PROTOCOL",
      message: /exceeds/,
    });
    await assert.rejects(all([frame(FrameType.hello, "{}").subarray(0, 6)]), {
      code: "AGENT_LOST",
      message: /ended inside a frame/,
    });
  });

  it("a control frame that is not JSON is an error, not a crash", () => {
    assert.throws(
      () => parseJson({ type: FrameType.hello, payload: Buffer.from("bash: agent: not found") }),
      {
        code: "AGENT_PROTOCOL",
      },
    );
  });
});
