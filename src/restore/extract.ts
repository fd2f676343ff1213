// A backup's plaintext → zstd -d → (xbstream check) → mbstream -x, or → a scan that only checks.
import { spawn } from "node:child_process";
import { Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AgeIdentity } from "../crypto/age.ts";
import { StrongboxError } from "../errors.ts";
import { zstdDecompress } from "../pipeline/compress.ts";
import { allOrFirstError } from "../pipeline/failfast.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { TailBuffer, terminate } from "../util/proc.ts";
import { backupPlaintext } from "./read.ts";
import { type XbstreamSummary, XbstreamValidator } from "./xbstream.ts";

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

function supervisedChild(cmd: string, args: string[], label: string) {
  const child = spawn(cmd, args, { stdio: ["pipe", "pipe", "pipe"] });
  const stderr = new TailBuffer();
  child.stderr!.on("data", (c: Buffer) => stderr.push(c));
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", (e) =>
      reject(new StrongboxError("CHILD_NOT_FOUND", `${label}: ${e.message}`, { cause: e })),
    );
    child.once("close", (code, sig) =>
      code === 0
        ? resolve()
        : reject(
            new StrongboxError(
              "CHILD_FAILED",
              `${label} ${code === null ? `killed by ${sig}` : `exited with code ${code}`}: ${stderr.lastLines() || "(no output)"}`,
              { stage: label },
            ),
          ),
    );
  });
  done.catch(() => {});
  return { child, done };
}

/**
 * Decrypts and decompresses a backup and sends it to `sink`: "extract" unpacks an xbstream into
 * `dir` with mbstream; "scan" reads it to its end and checks its structure; "stdout" gives the raw
 * stream to `consumer` (a logical restore feeding `mariadb`).
 */
export async function decodeBackup(
  repo: Repository,
  m: Manifest,
  identities: AgeIdentity[],
  o:
    | { sink: "extract"; dir: string; signal?: AbortSignal }
    | { sink: "scan"; signal?: AbortSignal }
    | { sink: "consumer"; consumer: NodeJS.WritableStream; signal?: AbortSignal },
): Promise<DecodeResult> {
  const physical = m.type !== "logical";
  const plaintext = backupPlaintext(repo, m, identities, { signal: o.signal });
  const zstd = zstdDecompress();
  let rawBytes = 0;
  const counter = new Transform({
    highWaterMark: 1 << 20,
    transform(chunk: Buffer, _e, cb) {
      rawBytes += chunk.length;
      cb(null, chunk);
    },
  });
  const check = physical ? new XbstreamValidator() : new DumpTrailerCheck();
  const mb = o.sink === "extract" ? supervisedChild("mbstream", ["-x", "-C", o.dir], "mbstream") : undefined;
  const sink: NodeJS.WritableStream =
    o.sink === "extract"
      ? mb!.child.stdin!
      : o.sink === "consumer"
        ? o.consumer
        : new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });
  const stop = async () => {
    plaintext.destroy();
    await Promise.all([terminate(zstd.child, 2000), mb ? terminate(mb.child, 2000) : Promise.resolve()]);
  };
  await allOrFirstError(
    [
      pipeline(plaintext, zstd.child.stdin!),
      pipeline(zstd.child.stdout!, counter, check, sink),
      zstd.done,
      mb?.done ?? Promise.resolve(),
    ],
    stop,
    o.signal,
  );
  return { rawBytes, xbstream: physical ? (check as XbstreamValidator).summary : undefined };
}
