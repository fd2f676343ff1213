// The streams the backup host uploads after a restore or restore-test request: each backup of the
// chain as its decrypted, still compressed bytes, framed as part i (partStart, data…, partEnd).
// They are read in chain order, as the restore asks for them.
import { Readable } from "node:stream";
import { StrongboxError } from "../errors.ts";
import { type Frame, FrameType, parseJson } from "../protocol/frames.ts";
import type { PartEnd, PartStart } from "../protocol/messages.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { PlaintextSource } from "../restore/read.ts";

function protocol(message: string): StrongboxError {
  return new StrongboxError("AGENT_PROTOCOL", message, { stage: "agent" });
}

export function uploadedChain(frames: AsyncGenerator<Frame>, chain: Manifest[]): PlaintextSource {
  let expected = 0;
  return (m, signal) => {
    const index = expected++;
    if (chain[index]?.id !== m.id) throw protocol(`backup ${m.id} was asked for out of chain order`);
    async function* gen(): AsyncGenerator<Buffer> {
      const start = await frames.next();
      if (start.done)
        throw new StrongboxError("AGENT_LOST", "the backup host went away before sending a backup");
      if (start.value.type !== FrameType.partStart || parseJson<PartStart>(start.value).index !== index)
        throw protocol(`expected the stream of backup ${m.id} (part ${index})`);
      let size = 0;
      for (;;) {
        signal?.throwIfAborted();
        const f = await frames.next();
        if (f.done)
          throw new StrongboxError("AGENT_LOST", `the backup host went away in the stream of ${m.id}`);
        if (f.value.type === FrameType.data) {
          size += f.value.payload.length;
          yield f.value.payload;
        } else if (f.value.type === FrameType.partEnd) {
          const end = parseJson<PartEnd>(f.value);
          if (end.index !== index || end.plainSize !== size)
            throw protocol(
              `the stream of backup ${m.id} ended with ${end.plainSize} bytes announced, ${size} received`,
            );
          return;
        } else throw protocol(`unexpected frame type ${f.value.type} in the stream of ${m.id}`);
      }
    }
    return Readable.from(gen(), { objectMode: true, highWaterMark: 16 });
  };
}
