// Cuts a byte stream into parts, encrypts each part as its own age file, and stores it.
// Memory is bounded by the stream buffers of the parts in flight, never by the part size.
import { createHash } from "node:crypto";
import { once } from "node:events";
import type { Transform } from "node:stream";
import { createEncryptStream } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import type { Storage } from "../storage/types.ts";

export interface PartRecord {
  index: number;
  key: string;
  /** Bytes stored (the age file). */
  size: number;
  /** SHA-256 of the stored bytes, hex. */
  sha256: string;
  /** Bytes before encryption (compressed stream bytes in this part). */
  plainSize: number;
}

export interface PartWriterOptions {
  storage: Pick<Storage, "put">;
  keyFor: (index: number) => string;
  partSize: number;
  recipients: AgeRecipient[];
  /** Parts uploading at once (the next part is filled while earlier ones finish). */
  maxInFlight?: number;
  signal?: AbortSignal;
  onPart?: (part: PartRecord) => void;
  /** The first part is created only once this settles; a rejection fails the write. */
  ready?: Promise<unknown>;
}

interface OpenPart {
  index: number;
  key: string;
  plain: number;
  enc: Transform;
  stored: Promise<PartRecord>;
}

function openPart(o: PartWriterOptions, index: number): OpenPart {
  const key = o.keyFor(index);
  const hash = createHash("sha256");
  let size = 0;
  // The stored bytes are hashed as the encryptor produces them; the upload reads the encryptor.
  const enc = createEncryptStream(o.recipients, (c) => {
    hash.update(c);
    size += c.length;
  });
  // The upload reports failures through its promise; this keeps a late error from being unhandled.
  enc.on("error", () => {});
  const part: OpenPart = {
    index,
    key,
    plain: 0,
    enc,
    stored: Promise.resolve() as unknown as Promise<PartRecord>,
  };
  part.stored = o.storage.put(key, enc, { signal: o.signal }).then(() => {
    const record = { index, key, size, sha256: hash.digest("hex"), plainSize: part.plain };
    o.onPart?.(record);
    return record;
  });
  // Avoid an unhandled rejection before anyone awaits it; the error surfaces where it is awaited.
  part.stored.catch(() => {});
  return part;
}

async function writeInto(part: OpenPart, chunk: Buffer): Promise<void> {
  if (part.enc.write(chunk)) return;
  // Wait for the encryptor to drain, but give up as soon as the upload fails.
  await Promise.race([once(part.enc, "drain"), part.stored.then(() => undefined)]);
}

/** Consumes `source` to its end; returns the parts in order. On error, stops and rethrows. */
export async function writeParts(source: AsyncIterable<Buffer>, o: PartWriterOptions): Promise<PartRecord[]> {
  const maxInFlight = o.maxInFlight ?? 2;
  const done: PartRecord[] = [];
  const inFlight: OpenPart[] = [];
  let current: OpenPart | undefined;
  let next = 0;
  const close = async (part: OpenPart) => {
    part.enc.end();
    inFlight.push(part);
    while (inFlight.length >= maxInFlight) done.push(await inFlight.shift()!.stored);
  };
  try {
    await o.ready;
    for await (const chunk of source) {
      o.signal?.throwIfAborted();
      let off = 0;
      while (off < chunk.length) {
        current ??= openPart(o, next++);
        const take = Math.min(chunk.length - off, o.partSize - current.plain);
        current.plain += take;
        await writeInto(
          current,
          off === 0 && take === chunk.length ? chunk : chunk.subarray(off, off + take),
        );
        off += take;
        if (current.plain >= o.partSize) {
          await close(current);
          current = undefined;
        }
      }
    }
    // An empty stream still gets one (empty) part, so every backup has at least one object.
    if (current || next === 0) await close(current ?? openPart(o, next++));
    while (inFlight.length > 0) done.push(await inFlight.shift()!.stored);
    return done;
  } catch (e) {
    for (const p of [...inFlight, ...(current ? [current] : [])]) p.enc.destroy(e as Error);
    await Promise.allSettled([...inFlight, ...(current ? [current] : [])].map((p) => p.stored));
    throw e;
  }
}
