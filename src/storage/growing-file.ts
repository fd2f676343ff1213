// A file read while another process still writes it: the native sealer's part in the spool, read
// by its upload as it grows (spool.ts), so that a part is sent while it is sealed instead of after.
// The writer only appends, and every byte below the file's current size is final. The stream ends
// at the size the writer reports once the file is complete, and fails if the file holds another
// number of bytes, or if that report is replaced by an error: an upload never completes from part
// of a file.
import { access, type FileHandle, open, stat } from "node:fs/promises";
import { Readable } from "node:stream";
import { setTimeout as sleep } from "node:timers/promises";
import { StrongboxError } from "../errors.ts";

const CHUNK = 1 << 20;
/** How long a reader that caught up with the writer waits before it looks again. */
const POLL_MS = 4;

/**
 * Whether the writer created `path`, waiting for it until `complete` settles: false when it
 * rejects first (the writer failed, or the stream ended before this file was started).
 */
export async function created(path: string, complete: Promise<number>): Promise<boolean> {
  let settled: "resolved" | "rejected" | undefined;
  complete.then(
    () => {
      settled = "resolved";
    },
    () => {
      settled = "rejected";
    },
  );
  for (;;) {
    try {
      await access(path);
      return true;
    } catch {
      // Reported finished but not there: the upload reports the missing file.
      if (settled === "resolved") return true;
      if (settled === "rejected") return false;
    }
    await sleep(POLL_MS);
  }
}

/**
 * The size of `path` (which exists) once it holds at least `atLeast` bytes, or, once the writer
 * reported it complete, its final size (`final`). Rejects with the writer's failure, and when the
 * complete file does not hold the reported number of bytes.
 */
export async function grown(
  path: string,
  complete: Promise<number>,
  atLeast: number,
): Promise<{ size: number; final: boolean }> {
  let final: number | undefined;
  let failure: { error: unknown } | undefined;
  complete.then(
    (n) => {
      final = n;
    },
    (error: unknown) => {
      failure = { error };
    },
  );
  for (;;) {
    if (failure) throw failure.error;
    // Looked at before the size: once reported, the file is complete.
    const reported = final;
    const { size } = await stat(path);
    if (reported !== undefined) {
      if (size !== reported) throw wrongSize(path, reported);
      return { size, final: true };
    }
    if (size >= atLeast) return { size, final: false };
    await sleep(POLL_MS);
  }
}

function wrongSize(path: string, size: number | undefined): StrongboxError {
  return new StrongboxError(
    "SPOOL_DAMAGED",
    `the spooled part ${path} does not hold the ${size} bytes its writer reported`,
    {
      stage: "upload",
      hint: "nothing was committed; keep other writers out of TMPDIR and run the backup again",
    },
  );
}

/**
 * Reads `path` (which exists) from its start as it grows, up to the size `complete` resolves to
 * (the writer's report that the file is finished).
 */
export function followFile(path: string, complete: Promise<number>): Readable {
  let size: number | undefined;
  let failure: { error: unknown } | undefined;
  let wake: (() => void) | undefined;
  complete.then(
    (n) => {
      size = n;
      wake?.();
    },
    (error: unknown) => {
      failure = { error };
      wake?.();
    },
  );
  const idle = () =>
    new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, POLL_MS);
      wake = done;
    });
  let handle: FileHandle | undefined;
  let position = 0;
  return new Readable({
    highWaterMark: CHUNK,
    async read() {
      try {
        for (;;) {
          if (this.destroyed) return;
          if (failure) throw failure.error;
          handle ??= await open(path, "r");
          const want = size === undefined ? CHUNK : Math.min(CHUNK, size - position);
          if (want < 0) throw wrongSize(path, size);
          if (want === 0) {
            // Anything past the reported size is not part of the part.
            const { bytesRead } = await handle.read(Buffer.alloc(1), 0, 1, position);
            if (bytesRead > 0) throw wrongSize(path, size);
            this.push(null);
            return;
          }
          const buffer = Buffer.allocUnsafe(want);
          const { bytesRead } = await handle.read(buffer, 0, want, position);
          if (bytesRead > 0) {
            position += bytesRead;
            this.push(bytesRead === want ? buffer : buffer.subarray(0, bytesRead));
            return;
          }
          // The writer reports a part only once it is closed: a shorter file is not the part.
          if (size !== undefined) throw wrongSize(path, size);
          await idle();
        }
      } catch (error) {
        this.destroy(error as Error);
      }
    },
    destroy(error, callback) {
      const h = handle;
      handle = undefined;
      if (!h) return callback(error);
      h.close().then(
        () => callback(error),
        () => callback(error),
      );
    },
  });
}
