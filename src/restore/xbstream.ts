// A streaming validator for mariabackup's xbstream: checks every chunk's magic, type and CRC-32,
// and refuses paths that would escape the extraction directory. Bytes pass through unchanged, so
// it sits between decompression and `mbstream -x` at no extra copy.
//
// Chunk: "XBSTCK01" | flags u8 | type u8 ('P' payload, 'E' end of file) | path length u32le | path
//        | (P only) payload length u64le | payload offset u64le | crc32 u32le | payload
import { Transform, type TransformCallback } from "node:stream";
import { crc32 } from "node:zlib";
import { StrongboxError } from "../errors.ts";

const MAGIC = Buffer.from("XBSTCK01");
const FIXED = 8 + 1 + 1 + 4;
const MAX_PATH = 4096;

export interface XbstreamSummary {
  files: number;
  chunks: number;
  payloadBytes: number;
  ended: boolean;
}

/** Throws unless `path` is a relative path that stays inside the extraction directory. */
export function assertSafePath(path: string): void {
  const bad =
    path.length === 0 ||
    path.startsWith("/") ||
    path.includes("\0") ||
    path.includes("\\") ||
    path.split("/").some((s) => s === ".." || s === "");
  if (bad) {
    throw new StrongboxError(
      "STREAM_UNSAFE_PATH",
      `the backup stream contains an unsafe path ${JSON.stringify(path)}`,
      {
        hint: "this stream was crafted or corrupted; it is not restored",
      },
    );
  }
}

function corrupt(why: string, offset: number): StrongboxError {
  return new StrongboxError("STREAM_CORRUPT", `the xbstream is corrupt at byte ${offset}: ${why}`);
}

export class XbstreamValidator extends Transform {
  readonly summary: XbstreamSummary = { files: 0, chunks: 0, payloadBytes: 0, ended: false };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  /** Payload bytes of the current chunk still to come, and its running CRC. */
  private payloadLeft = 0;
  private payloadCrc = 0;
  private expectedCrc = 0;
  private readonly seen = new Set<string>();
  private readonly open = new Set<string>();

  constructor() {
    super({ highWaterMark: 1 << 20 });
  }

  private takeBytes(n: number): Buffer | undefined {
    if (this.pendingBytes < n) return undefined;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    const head = all.subarray(0, n);
    const rest = all.subarray(n);
    this.pending = rest.length ? [rest] : [];
    this.pendingBytes = rest.length;
    return head;
  }

  private peekBytes(n: number): Buffer | undefined {
    if (this.pendingBytes < n) return undefined;
    const all = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending);
    this.pending = [all];
    return all.subarray(0, n);
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, cb: TransformCallback): void {
    try {
      this.consume(chunk);
      cb(null, chunk);
    } catch (e) {
      cb(e as Error);
    }
  }

  private consume(chunk: Buffer): void {
    let buf = chunk;
    while (buf.length > 0) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, buf.length);
        this.payloadCrc = crc32(buf.subarray(0, n), this.payloadCrc);
        this.payloadLeft -= n;
        this.offset += n;
        this.summary.payloadBytes += n;
        buf = buf.subarray(n);
        if (this.payloadLeft === 0 && this.payloadCrc !== this.expectedCrc) {
          throw corrupt("payload checksum mismatch", this.offset);
        }
        continue;
      }
      this.pending.push(buf);
      this.pendingBytes += buf.length;
      buf = Buffer.alloc(0);
      this.parseHeaders();
      // Whatever follows a complete header is payload: feed it back through the loop.
      if (this.payloadLeft > 0 && this.pendingBytes > 0) {
        buf = this.takeBytes(this.pendingBytes)!;
      }
    }
  }

  private parseHeaders(): void {
    while (this.payloadLeft === 0) {
      const fixed = this.peekBytes(FIXED);
      if (!fixed) return;
      if (!fixed.subarray(0, 8).equals(MAGIC)) throw corrupt("bad chunk magic", this.offset);
      const type = String.fromCharCode(fixed[9]!);
      const pathLen = fixed.readUInt32LE(10);
      if (pathLen === 0 || pathLen > MAX_PATH) throw corrupt(`path length ${pathLen}`, this.offset);
      if (type !== "P" && type !== "E")
        throw corrupt(`unknown chunk type ${JSON.stringify(type)}`, this.offset);
      const headerLen = FIXED + pathLen + (type === "P" ? 20 : 0);
      const header = this.takeBytes(headerLen);
      if (!header) return;
      const path = header.subarray(FIXED, FIXED + pathLen).toString("utf8");
      assertSafePath(path);
      this.summary.chunks++;
      this.offset += headerLen;
      if (type === "E") {
        this.open.delete(path);
        continue;
      }
      if (!this.seen.has(path)) {
        this.seen.add(path);
        this.summary.files++;
      }
      this.open.add(path);
      const len = Number(header.readBigUInt64LE(FIXED + pathLen));
      this.expectedCrc = header.readUInt32LE(FIXED + pathLen + 16);
      this.payloadCrc = 0;
      this.payloadLeft = len;
      if (len === 0 && this.expectedCrc !== 0) throw corrupt("checksum of an empty payload", this.offset);
    }
  }

  override _flush(cb: TransformCallback): void {
    if (this.payloadLeft > 0 || this.pendingBytes > 0) {
      cb(corrupt("the stream ends inside a chunk (truncated)", this.offset));
      return;
    }
    if (this.summary.chunks === 0) {
      cb(corrupt("the stream is empty", 0));
      return;
    }
    if (this.open.size > 0) {
      cb(corrupt(`the stream ends before the end of ${[...this.open][0]} (truncated)`, this.offset));
      return;
    }
    this.summary.ended = true;
    cb();
  }
}
