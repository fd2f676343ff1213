// child stdout → count → zstd → parts (age) → storage, with backpressure end to end. To a local
// repository, zstd's output goes to the native sealer (seal.ts) instead of through this process.
// The first failure anywhere stops everything: children are terminated, parts in flight aborted.
import type { ChildProcess } from "node:child_process";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { Storage } from "../storage/types.ts";
import { terminate } from "../util/proc.ts";
import { watchStall } from "../util/stall.ts";
import { zstdCompress } from "./compress.ts";
import { allOrFirstError } from "./failfast.ts";
import { type PartRecord, writeParts } from "./parts.ts";
import { nativeSealer, sealParts } from "./seal.ts";
import { openSpool, type Spool } from "./spool.ts";

const HEAD_BYTES = 256 * 1024;

export interface StreamSource {
  child: ChildProcess;
  /** Resolves when the source exited successfully and its output is complete. */
  done: Promise<void>;
}

export interface StreamOptions {
  storage: Storage;
  keyFor: (index: number) => string;
  partSize: number;
  recipients: AgeRecipient[];
  compressionLevel: number;
  compressionThreads: number;
  maxInFlight?: number;
  signal?: AbortSignal;
  onProgress?: (rawBytes: number) => void;
  /** Pass the raw stream through this process to keep its first and last bytes (logical dumps). */
  keepEnds?: boolean;
  /** The first part is created only once this settles; a rejection fails the stream. */
  ready?: Promise<unknown>;
  /** Stop with BACKUP_STALLED when the tool's output does not move for this long (ms). */
  stallTimeoutMs?: number | undefined;
  /** The tool's name, for messages. */
  label?: string | undefined;
}

/** The one-line error of a tool whose output stopped moving. */
export function stallError(label: string, idleMs: number): StrongboxError {
  return new StrongboxError(
    "BACKUP_STALLED",
    `${label} stalled: no output for ${Math.round(idleMs / 1000)} s (backup.stallTimeout); stopped it, nothing was committed`,
    { stage: label },
  );
}

export interface StreamResult {
  parts: PartRecord[];
  /** The first and last bytes of the raw stream (mariadb-dump writes its positions there). */
  head: Buffer;
  tail: Buffer;
  rawBytes: number;
  compressedBytes: number;
  storedBytes: number;
}

export async function streamToParts(source: StreamSource, o: StreamOptions): Promise<StreamResult> {
  // Without `keepEnds` the tool's stdout goes straight into zstd (fd to fd): the raw stream, the
  // largest of the pipeline, never crosses this process. A dump's positions are in its text, so
  // for logical backups the raw stream passes through here to keep its first and last bytes.
  const direct = !o.keepEnds;
  const zstd = zstdCompress(
    o.compressionLevel,
    o.compressionThreads,
    direct ? source.child.stdout! : undefined,
  );
  // zstd has its own copy of the pipe now; ours must be closed or the tool's 'close' never comes.
  if (direct) source.child.stdout!.destroy();
  const abort = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, abort.signal]) : abort.signal;
  let rawBytes = 0;
  const headChunks: Buffer[] = [];
  const tailChunks: Buffer[] = [];
  let tailBytes = 0;
  const counter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _enc, cb) {
      if (rawBytes < HEAD_BYTES) headChunks.push(Buffer.from(chunk.subarray(0, HEAD_BYTES - rawBytes)));
      rawBytes += chunk.length;
      tailChunks.push(chunk);
      tailBytes += chunk.length;
      // Keep just enough whole chunks to cover the last HEAD_BYTES (references, no copies).
      while (tailChunks.length > 1 && tailBytes - tailChunks[0]!.length >= HEAD_BYTES) {
        tailBytes -= tailChunks.shift()!.length;
      }
      o.onProgress?.(rawBytes);
      cb(null, chunk);
    },
  });
  const poll =
    direct && o.onProgress
      ? setInterval(() => {
          const n = zstd.bytesRead();
          if (n !== undefined) o.onProgress?.(n);
        }, 500)
      : undefined;
  // The native sealer reads zstd's output itself: into a local repository's files, or into a
  // spool of a few parts that are uploaded from there (spool.ts).
  const sealer = nativeSealer();
  const local = o.storage.localFiles?.();
  let spool: Spool | undefined;
  if (sealer && !local) {
    try {
      spool = await openSpool(o.storage);
    } catch {
      spool = undefined; // no usable TMPDIR: Node seals the parts
    }
  }
  const files = local ?? spool;
  const sealing =
    sealer && files
      ? sealParts(zstd.child.stdout!, {
          sealer,
          files,
          keyFor: o.keyFor,
          partSize: o.partSize,
          recipients: o.recipients,
          signal,
          ready: o.ready,
          keysAfterCommit: spool !== undefined,
          commitConcurrency: spool ? 2 : 1,
        })
      : undefined;
  if (sealing) zstd.child.stdout!.destroy();
  // The watchdog reads the bytes the tool wrote: zstd's input count when the tool feeds zstd
  // directly, else what passed through here.
  const watch = o.stallTimeoutMs
    ? watchStall({
        timeoutMs: o.stallTimeoutMs,
        progress: () => (direct ? (zstd.bytesRead() ?? rawBytes) : rawBytes),
        onStall: (idle) => stallError(o.label ?? "the backup tool", idle),
      })
    : undefined;
  const stop = async () => {
    watch?.stop();
    abort.abort(new Error("pipeline stopped"));
    await Promise.all([
      terminate(source.child, 3000),
      terminate(zstd.child, 3000),
      ...(sealing ? [terminate(sealing.child, 3000)] : []),
    ]);
  };
  const onAbort = () => void stop();
  o.signal?.addEventListener("abort", onAbort, { once: true });
  const feed = direct
    ? Promise.resolve()
    : pipeline(source.child.stdout!, counter, zstd.child.stdin!, { signal });
  // When the sealer fails (a full disk), zstd and then the tool fail writing into the closed pipe,
  // and their exits may be seen before the sealer's: its error is the one to report.
  const sealerFirst = (done: Promise<void>): Promise<void> =>
    sealing
      ? done.catch(async (error: unknown) => {
          const [sealed] = await Promise.allSettled([sealing.parts]);
          throw sealed.status === "rejected" ? sealed.reason : error;
        })
      : done;
  const tasks = [
    sealerFirst(source.done),
    sealerFirst(zstd.done),
    feed,
    sealing?.parts ??
      writeParts(zstd.child.stdout!, {
        storage: o.storage,
        keyFor: o.keyFor,
        partSize: o.partSize,
        recipients: o.recipients,
        maxInFlight: o.maxInFlight,
        signal,
        ready: o.ready,
      }),
  ] as [Promise<void>, Promise<void>, Promise<void>, Promise<PartRecord[]>];
  if (watch) void Promise.allSettled(tasks).then(() => watch.stop());
  try {
    const results = await allOrFirstError(
      [...tasks, watch?.stalled ?? Promise.resolve()] as [
        Promise<void>,
        Promise<void>,
        Promise<void>,
        Promise<PartRecord[]>,
        Promise<void>,
      ],
      stop,
      o.signal,
    );
    const parts = results[3];
    if (direct) rawBytes = await zstd.totalIn;
    return {
      parts,
      head: Buffer.concat(headChunks),
      tail: Buffer.concat(tailChunks).subarray(-HEAD_BYTES),
      rawBytes,
      compressedBytes: parts.reduce((s, p) => s + p.plainSize, 0),
      storedBytes: parts.reduce((s, p) => s + p.size, 0),
    };
  } finally {
    watch?.stop();
    if (poll) clearInterval(poll);
    o.signal?.removeEventListener("abort", onAbort);
    await spool?.close();
  }
}
