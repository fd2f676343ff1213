// Writing files of the local backend: every byte of a write, streams with backpressure, temp names
// beside their target, and the link that makes a finished file visible.
import { randomBytes } from "node:crypto";
import { type FileHandle, link, open, unlink } from "node:fs/promises";
import { type Readable, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { errnoOf, WriteFailure } from "../util/error-kinds.ts";
import { TEMP_PREFIX } from "./types.ts";

/** A put gathers up to this much of its stream into one writev. */
const WRITE_HIGH_WATER_MARK = 1024 * 1024;

/** Writes every byte of `buffers` (write(2) may write less than asked, e.g. just before ENOSPC). */
export async function writeAll(handle: FileHandle, buffers: Buffer[]): Promise<void> {
  let pending = buffers.filter((b) => b.length > 0);
  while (pending.length > 0) {
    const { bytesWritten } = await handle.writev(pending);
    if (bytesWritten === 0) {
      throw Object.assign(new Error("write made no progress"), { code: "EIO" });
    }
    let skip = bytesWritten;
    const rest: Buffer[] = [];
    for (const buffer of pending) {
      if (skip >= buffer.length) {
        skip -= buffer.length;
        continue;
      }
      rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
      skip = 0;
    }
    pending = rest;
  }
}

/** Copies a stream into an open file with backpressure; returns the byte count. */
export async function writeStream(
  handle: FileHandle,
  source: Readable,
  signal?: AbortSignal,
): Promise<number> {
  let size = 0;
  const sink = new Writable({
    highWaterMark: WRITE_HIGH_WATER_MARK,
    writev(chunks, callback) {
      const buffers = chunks.map((c) => c.chunk as Buffer);
      writeAll(handle, buffers).then(
        () => {
          for (const b of buffers) size += b.length;
          callback();
        },
        (error: unknown) => callback(new WriteFailure(error)),
      );
    },
  });
  await pipeline(source, sink, signal ? { signal } : {});
  return size;
}

/** A fresh temp file name for `name` (removed by cleanupTemp if its writer dies). */
export function tempName(name: string): string {
  return `${TEMP_PREFIX}${randomBytes(8).toString("hex")}-${name}`;
}

/**
 * Puts a finished temp file in place as `target`, never over an existing file: link() fails with
 * EEXIST when the target exists (an atomic create-if-absent). A temp name left behind when the
 * unlink fails is harmless and removed by cleanupTemp.
 */
export async function linkNew(temp: string, target: string): Promise<void> {
  await link(temp, target);
  await unlink(temp).catch(() => {});
}

export async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, "r");
  try {
    await handle.sync();
  } catch (error) {
    // Some filesystems (FUSE, some network mounts) cannot fsync a directory; the rename is done.
    if (errnoOf(error) !== "EINVAL" && errnoOf(error) !== "ENOTSUP") throw error;
  } finally {
    await handle.close();
  }
}
