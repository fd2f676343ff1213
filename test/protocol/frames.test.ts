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
    // A data frame comes in the pieces it arrived in; control frames come whole.
    const types = frames.map((f) => f.type);
    assert.deepEqual(types, [FrameType.hello, ...Array(10).fill(FrameType.data), FrameType.result]);
    assert.deepEqual(JSON.parse(frames[0]!.text), { protocol: 1 });
    assert.equal(
      frames
        .filter((f) => f.type === FrameType.data)
        .map((f) => f.text)
        .join(""),
      "ciphertext",
    );
    assert.deepEqual(JSON.parse(frames.at(-1)!.text), { ok: true });
  });

  it("a data frame spanning chunks is handed on as views of them, and ends where its length says", async () => {
    const data = Buffer.from("0123456789abcdef");
    const bytes = Buffer.concat([frame(FrameType.data, data), frame(FrameType.partEnd, '{"index":0}')]);
    // Cut inside the data frame's head, twice inside its payload, and inside the next frame.
    const cuts = [3, 9, 15, 24, bytes.length];
    const input = cuts.map((end, i) => bytes.subarray(i === 0 ? 0 : cuts[i - 1], end));
    const pieces: Buffer[] = [];
    const types: number[] = [];
    for await (const f of readFrames(Readable.from(input))) {
      types.push(f.type);
      if (f.type === FrameType.data) pieces.push(f.payload);
    }
    assert.deepEqual(types, [FrameType.data, FrameType.data, FrameType.data, FrameType.partEnd]);
    assert.deepEqual(
      pieces.map((p) => p.length),
      [4, 6, 6],
    );
    assert.equal(Buffer.concat(pieces).toString(), data.toString());
    // Views of the chunks as they came: no copy.
    assert.equal(pieces[1]!.buffer, input[2]!.buffer);
    assert.equal(pieces[1]!.byteOffset, input[2]!.byteOffset);
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
