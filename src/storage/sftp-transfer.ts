// Moving bytes over SFTP: writes pipelined up to a window of unacknowledged bytes, reads with a few
// requests in flight, in order.
import { open } from "node:fs/promises";
import { Readable } from "node:stream";
import { WriteFailure } from "../util/error-kinds.ts";
import { streamed } from "../util/gc.ts";
import { abortError, type Session, type SftpConnection } from "./sftp-connection.ts";

/** One write or read request: OpenSSH's limit (ssh2 splits it for servers that announce less). */
export const CHUNK = 255 * 1024;
/** Unacknowledged write bytes per put: bounds memory while keeping the link busy. */
const WRITE_WINDOW = 8 * 1024 * 1024;
/** Read requests in flight per get. */
const READ_AHEAD = 8;

/** Paced writer: issues write requests at increasing offsets, at most WRITE_WINDOW bytes unacknowledged. */
export class PipelinedWriter {
  position = 0;
  private inFlight = 0;
  private failure: unknown;
  private waiters: (() => void)[] = [];
  private readonly send: (piece: Buffer, position: number) => Promise<void>;

  constructor(send: (piece: Buffer, position: number) => Promise<void>) {
    this.send = send;
  }

  async write(buffer: Buffer, signal?: AbortSignal): Promise<void> {
    for (let offset = 0; offset < buffer.length; offset += CHUNK) {
      while (this.inFlight >= WRITE_WINDOW && this.failure === undefined) await this.wait();
      if (this.failure !== undefined) throw new WriteFailure(this.failure);
      if (signal?.aborted) throw abortError(signal);
      const piece = buffer.subarray(offset, offset + CHUNK);
      const position = this.position;
      this.position += piece.length;
      this.inFlight += piece.length;
      this.send(piece, position).then(
        () => this.settle(piece.length),
        (error: unknown) => {
          this.failure ??= error;
          this.settle(piece.length);
        },
      );
    }
  }

  /** Waits for every request; throws the first failure. */
  async flush(): Promise<void> {
    await this.idle();
    if (this.failure !== undefined) throw new WriteFailure(this.failure);
  }

  /** Waits for every request, ignoring failures (before closing the handle of a failed put). */
  async idle(): Promise<void> {
    while (this.inFlight > 0) await this.wait();
  }

  private settle(length: number): void {
    this.inFlight -= length;
    // The piece and ssh2's packet copies of it are garbage once the server answered (util/gc.ts).
    streamed(length);
    const waiters = this.waiters;
    this.waiters = [];
    for (const wake of waiters) wake();
  }

  private wait(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

/** Buffers per file upload: WRITE_WINDOW bytes of requests in flight, each from its own buffer. */
const FILE_BUFFERS = WRITE_WINDOW / CHUNK;

/**
 * Sends a local file's bytes with write requests at increasing offsets, from a fixed set of
 * buffers: each is read into again only once the server acknowledged its write. A stream would
 * allocate a new buffer for every read; on a backup's spooled parts that garbage made V8 run a full
 * collection every 10 MB or so (19 per 190 MB, about 1 s of CPU with their marking threads).
 * Returns the bytes sent; throws a WriteFailure (of the first failed request) once none is in flight.
 */
export async function sendFile(
  path: string,
  send: (buffer: Buffer, length: number, position: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<number> {
  const file = await open(path, "r");
  const free: Buffer[] = Array.from({ length: FILE_BUFFERS }, () => Buffer.allocUnsafeSlow(CHUNK));
  let inFlight = 0;
  let failure: unknown;
  let wake: (() => void) | undefined;
  const settled = (buffer: Buffer) => {
    free.push(buffer);
    inFlight--;
    wake?.();
  };
  const changed = () => new Promise<void>((resolve) => (wake = resolve));
  let position = 0;
  try {
    for (;;) {
      while (free.length === 0 && failure === undefined) await changed();
      if (failure !== undefined || signal?.aborted) break;
      const buffer = free.pop()!;
      const { bytesRead } = await file.read(buffer, 0, CHUNK, position);
      if (bytesRead === 0) {
        free.push(buffer);
        break;
      }
      const at = position;
      position += bytesRead;
      inFlight++;
      send(buffer, bytesRead, at).then(
        () => settled(buffer),
        (error: unknown) => {
          failure ??= error;
          settled(buffer);
        },
      );
    }
    while (inFlight > 0) await changed();
  } finally {
    await file.close();
  }
  if (failure !== undefined) throw new WriteFailure(failure);
  if (signal?.aborted) throw abortError(signal);
  return position;
}

/** Reads [start, end] with a few requests in flight, in order; closes the handle at the end. */
export function readRange(
  conn: SftpConnection,
  session: Session,
  handle: Buffer,
  range: { start: number; end: number },
  mapError: (error: unknown) => Error,
): Readable {
  const { start, end } = range;
  let next = start;
  const queue: Promise<Buffer>[] = [];
  let closed = false;
  const readAt = async (position: number, length: number): Promise<Buffer> => {
    const buffer = Buffer.allocUnsafe(length);
    let filled = 0;
    while (filled < length) {
      const n = await conn.request<number>(session, (sftp, cb) =>
        sftp.read(handle, buffer, filled, length - filled, position + filled, cb),
      );
      if (!n) break; // end of file (the object shrank: it was replaced meanwhile)
      filled += n;
    }
    return buffer.subarray(0, filled);
  };
  const fill = () => {
    while (queue.length < READ_AHEAD && next <= end) {
      const length = Math.min(CHUNK, end - next + 1);
      const request = readAt(next, length);
      request.catch(() => {}); // handled when its turn comes
      queue.push(request);
      next += length;
    }
  };
  const closeHandle = async () => {
    if (closed) return;
    closed = true;
    if (session.alive)
      await conn.request<void>(session, (sftp, cb) => sftp.close(handle, cb)).catch(() => {});
  };
  const stream: Readable = new Readable({
    highWaterMark: CHUNK * 2,
    read: () => {
      fill();
      const head = queue.shift();
      if (!head) {
        void closeHandle().then(() => stream.push(null));
        return;
      }
      head.then(
        (buffer) => {
          if (buffer.length === 0) queue.length = 0;
          stream.push(buffer.length > 0 ? buffer : null);
          if (buffer.length === 0) void closeHandle();
        },
        (error: unknown) => stream.destroy(mapError(error)),
      );
    },
    destroy: (error, callback) => {
      queue.length = 0;
      next = end + 1;
      closeHandle().then(() => callback(error), callback);
    },
  });
  return stream;
}
