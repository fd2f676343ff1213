// A named pipe between a child process and a thread of ours. A child's stdout pipe (as Node opens
// it) can only be read on the event loop, a new Buffer for every read; a FIFO opened in blocking
// mode can be read by a worker thread with readSync into one reused buffer.
import { execFile } from "node:child_process";
import { closeSync, constants, openSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

export interface Fifo {
  /** Both ends in blocking mode. */
  readFd: number;
  writeFd: number;
}

export async function openFifo(): Promise<Fifo> {
  const dir = await mkdtemp(join(tmpdir(), "strongbox-fifo-"));
  try {
    const path = join(dir, "pipe");
    await promisify(execFile)("mkfifo", ["-m", "600", path]);
    // Opening one end blocks until the other is open: open a non-blocking reader first, then the
    // writer, then the blocking reader we keep (the non-blocking flag would be shared with a child).
    const probe = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
    try {
      const writeFd = openSync(path, constants.O_WRONLY);
      const readFd = openSync(path, constants.O_RDONLY);
      return { readFd, writeFd };
    } finally {
      closeSync(probe);
    }
  } finally {
    // Open descriptors keep the FIFO working; its name is no longer needed.
    await rm(dir, { recursive: true, force: true });
  }
}

export function closeQuietly(fd: number | undefined): void {
  if (fd === undefined) return;
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}
