// Unpacks (or only checks) the decompressed xbstream on a worker thread: what `mbstream -x` does,
// in this process. The worker reads zstd's output from a FIFO with readSync into one reused
// buffer and writes every payload with a positioned writeSync: no garbage per read, no promise per
// write, and the parsing, CRC-32 and file writes run beside the main thread, which meanwhile
// fetches, verifies and decrypts the parts.
//
// Files and directories are created the way mbstream creates them (mode 0660/0777 less the umask,
// O_EXCL, so a path that appears twice is an error) and never through a symlink.
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { ErrorCode } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { closeQuietly } from "../util/fifo.ts";
import type { XbstreamSummary } from "./xbstream.ts";

export interface UnpackRequest {
  /** Blocking read end of the FIFO zstd writes to; closed here once the worker is done. */
  fd: number;
  /** Where to unpack; without it the stream is only checked. */
  dir?: string;
}

export type UnpackReply =
  | { ok: true; bytesRead: number; summary: XbstreamSummary }
  | { ok: false; error: { code: ErrorCode; message: string; hint?: string } };

export interface UnpackResult {
  bytesRead: number;
  summary: XbstreamSummary;
}

// Same extension as this module: .ts when run from source, .js from the build. The path goes up
// and back into restore/ because the build puts this code in a chunk elsewhere one level below
// dist/ (scripts/build.ts), while the worker stays dist/restore/unpack-worker.js.
const WORKER = new URL(`../restore/unpack-worker${extname(fileURLToPath(import.meta.url))}`, import.meta.url);

/** Starts the worker; resolves when the stream ended cleanly (and every file is written and closed). */
export function unpackOnWorker(request: UnpackRequest): Promise<UnpackResult> {
  return new Promise((resolve, reject) => {
    let worker: Worker;
    try {
      worker = new Worker(WORKER, { workerData: request });
    } catch (e) {
      // No worker (out of threads or memory): nobody else will close the descriptor.
      closeQuietly(request.fd);
      reject(e);
      return;
    }
    // The descriptor was opened by this thread, so it is closed by this thread.
    worker.once("exit", () => closeQuietly(request.fd));
    let settled = false;
    worker.once("message", (reply: UnpackReply) => {
      settled = true;
      if (reply.ok) resolve({ bytesRead: reply.bytesRead, summary: reply.summary });
      else
        reject(
          new StrongboxError(reply.error.code, reply.error.message, {
            ...(reply.error.hint ? { hint: reply.error.hint } : {}),
            stage: "unpack",
          }),
        );
    });
    worker.once("error", (e) => {
      settled = true;
      reject(e);
    });
    worker.once("exit", (code) => {
      if (!settled) reject(new Error(`the unpack worker exited with code ${code} without a result`));
    });
  });
}
