// A backup's plaintext → zstd -d → xbstream unpacked into a directory (or only checked), or a
// logical dump to its consumer.
import { type Readable, Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrongboxError } from "../errors.ts";
import { type Codec, zstdDecompress } from "../pipeline/compress.ts";
import { allOrFirstError } from "../pipeline/failfast.ts";
import type { Manifest } from "../repository/manifest.ts";
import { closeQuietly, openFifo } from "../util/fifo.ts";
import { terminate } from "../util/proc.ts";
import type { PlaintextSource } from "./read.ts";
import { type UnpackResult, unpackOnWorker } from "./unpack.ts";
import type { XbstreamSummary } from "./xbstream.ts";

export interface DecodeResult {
  rawBytes: number;
  xbstream?: XbstreamSummary;
}

/** Checks that a mariadb-dump stream is complete: it must end with "-- Dump completed". */
class DumpTrailerCheck extends Transform {
  private tail = Buffer.alloc(0);
  override _transform(chunk: Buffer, _e: BufferEncoding, cb: (e?: Error | null, d?: Buffer) => void): void {
    this.tail = Buffer.concat([this.tail, chunk]).subarray(-512);
    cb(null, chunk);
  }
  override _flush(cb: (e?: Error | null) => void): void {
    if (!/-- Dump completed/.test(this.tail.toString("utf8"))) {
      cb(
        new StrongboxError(
          "STREAM_CORRUPT",
          "the logical dump is incomplete: it lacks mariadb-dump's '-- Dump completed' trailer",
        ),
      );
      return;
    }
    cb();
  }
}

/**
 * Decrypts and decompresses a backup and sends it to `sink`: "extract" unpacks an xbstream into
 * `dir` (as `mbstream -x` would); "scan" reads it to its end and checks its structure; "stdout" gives the raw
 * stream to `consumer` (a logical restore feeding `mariadb`).
 */
export async function decodeBackup(
  source: PlaintextSource,
  m: Manifest,
  o:
    | { sink: "extract"; dir: string; signal?: AbortSignal }
    | { sink: "scan"; signal?: AbortSignal }
    | { sink: "consumer"; consumer: NodeJS.WritableStream; signal?: AbortSignal },
): Promise<DecodeResult> {
  if (m.type === "logical") return decodeDump(source, m, o);
  if (o.sink === "consumer") throw new Error("a physical backup is extracted or scanned, not consumed");
  // The decompressed xbstream, the largest stream of all, goes through a FIFO to a worker thread
  // that unpacks it into the directory, or only checks it. Where the source can write the
  // plaintext itself (the native opener), zstd reads it from a second FIFO.
  const into = source.into;
  const fifo = await openFifo();
  const input = into
    ? await openFifo().catch((e: unknown) => {
        closeQuietly(fifo.readFd);
        closeQuietly(fifo.writeFd);
        throw e;
      })
    : undefined;
  let zstd: Codec;
  let unpacked: Promise<UnpackResult>;
  try {
    unpacked = unpackOnWorker({ fd: fifo.readFd, ...(o.sink === "extract" ? { dir: o.dir } : {}) });
    // If zstd cannot be started, the worker reads the end of the FIFO and fails; that failure is
    // not the one to report.
    unpacked.catch(() => {});
    zstd = zstdDecompress(fifo.writeFd, input?.readFd);
  } finally {
    // zstd has its own copies; the worker sees the end of the stream when zstd closes it.
    closeQuietly(fifo.writeFd);
    closeQuietly(input?.readFd);
  }
  const stopped = new AbortController();
  const signal = o.signal ? AbortSignal.any([o.signal, stopped.signal]) : stopped.signal;
  let plaintext: Readable | undefined;
  let feeding: Promise<void>;
  if (into && input) {
    // zstd sees the end of its input once the last opener and this copy are closed.
    feeding = into(m, input.writeFd, signal).finally(() => closeQuietly(input.writeFd));
  } else {
    plaintext = source(m, o.signal);
    feeding = pipeline(plaintext, zstd.child.stdin!);
  }
  const stop = async () => {
    stopped.abort();
    plaintext?.destroy();
    await terminate(zstd.child, 2000);
    // With zstd gone the worker reads the end of the FIFO and stops.
    await unpacked.catch(() => {});
  };
  const [, result] = await allOrFirstError([feeding, unpacked, zstd.done], stop, o.signal);
  return { rawBytes: result.bytesRead, xbstream: result.summary };
}

/** A logical dump to its consumer (or nowhere, for a scan), with its trailer checked. */
async function decodeDump(
  source: PlaintextSource,
  m: Manifest,
  o: { sink: "extract" | "scan" | "consumer"; consumer?: NodeJS.WritableStream; signal?: AbortSignal },
): Promise<DecodeResult> {
  if (o.sink === "extract") throw new Error("a logical backup is consumed or scanned, not extracted");
  const plaintext = source(m, o.signal);
  const zstd = zstdDecompress();
  const stop = async () => {
    plaintext.destroy();
    await terminate(zstd.child, 2000);
  };
  let rawBytes = 0;
  const counter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _e, cb) {
      rawBytes += chunk.length;
      cb(null, chunk);
    },
  });
  const sink = o.consumer ?? new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });
  await allOrFirstError(
    [
      pipeline(plaintext, zstd.child.stdin!),
      pipeline(zstd.child.stdout!, counter, new DumpTrailerCheck(), sink),
      zstd.done,
    ],
    stop,
    o.signal,
  );
  return { rawBytes };
}
