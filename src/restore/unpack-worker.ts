// The worker of unpack.ts: a synchronous loop over the FIFO, parsing and writing as it goes.
import { closeSync, constants, mkdirSync, openSync, readSync, writeSync } from "node:fs";
import { dirname, join } from "node:path";
import { parentPort, workerData } from "node:worker_threads";
import { StrongboxError } from "../errors.ts";
import type { UnpackReply, UnpackRequest } from "./unpack.ts";
import { XbstreamReader, type XbstreamSink } from "./xbstream.ts";

const FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function writeError(e: unknown, path: string): StrongboxError {
  const err = e as NodeJS.ErrnoException;
  if (err.code === "ENOSPC" || err.code === "EDQUOT") {
    return new StrongboxError("TARGET_FULL", `the target filesystem is full while writing ${path}`, {
      hint: "free space or restore into a larger filesystem",
    });
  }
  if (err.code === "EEXIST") {
    return new StrongboxError("STREAM_CORRUPT", `the backup stream contains ${path} twice`);
  }
  return new StrongboxError("TARGET_WRITE", `cannot write ${path}: ${err.message}`);
}

class Unpacker implements XbstreamSink {
  private readonly dir: string;
  private readonly files = new Map<string, number>();
  private readonly dirs = new Set<string>();

  constructor(dir: string) {
    this.dir = dir;
  }

  private fd(path: string): number {
    const open = this.files.get(path);
    if (open !== undefined) return open;
    const full = join(this.dir, path);
    try {
      const parent = dirname(full);
      if (!this.dirs.has(parent)) {
        mkdirSync(parent, { recursive: true, mode: 0o777 });
        this.dirs.add(parent);
      }
      const fd = openSync(full, FLAGS, 0o660);
      this.files.set(path, fd);
      return fd;
    } catch (e) {
      throw writeError(e, path);
    }
  }

  payload(path: string, offset: number, bytes: Buffer): void {
    const fd = this.fd(path);
    try {
      let done = 0;
      while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done, offset + done);
    } catch (e) {
      throw writeError(e, path);
    }
  }

  fileEnd(path: string): void {
    const fd = this.fd(path);
    this.files.delete(path);
    try {
      // Some filesystems (NFS, quotas) report a failed write only here.
      closeSync(fd);
    } catch (e) {
      throw writeError(e, path);
    }
  }

  /** After a failure: close what is still open; the caller empties the target. */
  closeAll(): void {
    for (const fd of this.files.values()) {
      try {
        closeSync(fd);
      } catch {
        // the first error is the one reported
      }
    }
    this.files.clear();
  }
}

function run(request: UnpackRequest): UnpackReply {
  const unpacker = request.dir ? new Unpacker(request.dir) : undefined;
  const reader = new XbstreamReader(unpacker);
  const buffer = Buffer.allocUnsafe(1 << 20);
  try {
    for (;;) {
      const n = readSync(request.fd, buffer, 0, buffer.length, null);
      if (n === 0) break;
      reader.push(buffer.subarray(0, n));
    }
    reader.finish();
    return { ok: true, bytesRead: reader.bytesRead, summary: reader.summary };
  } catch (e) {
    // Write errors are mapped where they happen; anything else failed reading zstd's output.
    const err =
      e instanceof StrongboxError
        ? e
        : new StrongboxError(
            "UNPACK_FAILED",
            `reading the decompressed stream failed: ${(e as Error).message}`,
          );
    return {
      ok: false,
      error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) },
    };
  } finally {
    unpacker?.closeAll();
  }
}

parentPort!.postMessage(run(workerData as UnpackRequest));
