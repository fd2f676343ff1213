// mariabackup's xbstream, read in one pass: every chunk's magic, type and CRC-32 checked, and paths
// that would escape the extraction directory refused. `XbstreamReader` is the parser; the unpack
// worker (unpack-worker.ts) runs it for restore (writing the files) and verify --read-data.
//
// Chunk: "XBSTCK01" | flags u8 | type u8 ('P' payload, 'E' end of file) | path length u32le | path
//        | (P only) payload length u64le | payload offset u64le | crc32 u32le | payload
import { crc32 } from "node:zlib";
import { StrongboxError } from "../errors.ts";

const MAGIC = Buffer.from("XBSTCK01");
const FIXED = 8 + 1 + 1 + 4;
const MAX_PATH = 4096;
const EMPTY = Buffer.alloc(0);

export interface XbstreamSummary {
  files: number;
  chunks: number;
  payloadBytes: number;
  ended: boolean;
}

/** What a reader reports as it parses: payload bytes of a file at their offset, and ends of files. */
export interface XbstreamSink {
  /** `bytes` is a view of the input buffer, valid only during the call (copy what you keep). */
  payload(path: string, offset: number, bytes: Buffer): void;
  fileEnd(path: string): void;
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

export class XbstreamReader {
  readonly summary: XbstreamSummary = { files: 0, chunks: 0, payloadBytes: 0, ended: false };
  private readonly sink: XbstreamSink | undefined;
  /** Bytes of an incomplete header, kept until the rest arrives. */
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private offset = 0;
  /** The current payload: its file, where the next byte goes, bytes still to come, running CRC. */
  private path = "";
  private fileOffset = 0;
  private payloadLeft = 0;
  private payloadCrc = 0;
  private expectedCrc = 0;
  private readonly seen = new Set<string>();
  private readonly open = new Set<string>();

  constructor(sink?: XbstreamSink) {
    this.sink = sink;
  }

  /** Bytes of the stream parsed so far, headers included. */
  get bytesRead(): number {
    return this.offset + this.pendingBytes;
  }

  /** Parses the next bytes of the stream; throws a StrongboxError at the first problem. */
  push(chunk: Buffer): void {
    let buf = chunk;
    while (buf.length > 0) {
      if (this.payloadLeft > 0) {
        const n = Math.min(this.payloadLeft, buf.length);
        const bytes = n === buf.length ? buf : buf.subarray(0, n);
        this.payloadCrc = crc32(bytes, this.payloadCrc);
        this.payloadLeft -= n;
        if (this.payloadLeft === 0 && this.payloadCrc !== this.expectedCrc) {
          throw corrupt("payload checksum mismatch", this.offset + n);
        }
        this.sink?.payload(this.path, this.fileOffset, bytes);
        this.fileOffset += n;
        this.offset += n;
        this.summary.payloadBytes += n;
        buf = buf.subarray(n);
        continue;
      }
      // A header: parse it in place when it is whole in `buf`, else gather it from several buffers.
      const used = this.header(buf);
      buf = buf.subarray(used);
    }
  }

  /** Consumes one header from `buf` (or keeps its beginning for later); returns bytes used. */
  private header(buf: Buffer): number {
    const had = this.pendingBytes;
    const all = had === 0 ? buf : Buffer.concat([...this.pending, buf]);
    if (all.length < FIXED) return this.keep(buf);
    if (!all.subarray(0, 8).equals(MAGIC)) throw corrupt("bad chunk magic", this.offset);
    const type = String.fromCharCode(all[9]!);
    const pathLen = all.readUInt32LE(10);
    if (pathLen === 0 || pathLen > MAX_PATH) throw corrupt(`path length ${pathLen}`, this.offset);
    if (type !== "P" && type !== "E")
      throw corrupt(`unknown chunk type ${JSON.stringify(type)}`, this.offset);
    const headerLen = FIXED + pathLen + (type === "P" ? 20 : 0);
    if (all.length < headerLen) return this.keep(buf);
    const path = all.subarray(FIXED, FIXED + pathLen).toString("utf8");
    assertSafePath(path);
    this.pending = [];
    this.pendingBytes = 0;
    this.summary.chunks++;
    this.offset += headerLen;
    if (type === "E") {
      this.open.delete(path);
      if (!this.seen.has(path)) {
        this.seen.add(path);
        this.summary.files++;
      }
      this.sink?.fileEnd(path);
      return headerLen - had;
    }
    if (!this.seen.has(path)) {
      this.seen.add(path);
      this.summary.files++;
    }
    this.open.add(path);
    const len = Number(all.readBigUInt64LE(FIXED + pathLen));
    this.path = path;
    this.fileOffset = Number(all.readBigUInt64LE(FIXED + pathLen + 8));
    this.expectedCrc = all.readUInt32LE(FIXED + pathLen + 16);
    this.payloadCrc = 0;
    this.payloadLeft = len;
    if (len === 0) {
      if (this.expectedCrc !== 0) throw corrupt("checksum of an empty payload", this.offset);
      this.sink?.payload(path, this.fileOffset, EMPTY);
    }
    return headerLen - had;
  }

  private keep(buf: Buffer): number {
    // A copy: the caller may reuse its buffer once push returns.
    this.pending.push(Buffer.from(buf));
    this.pendingBytes += buf.length;
    return buf.length;
  }

  /** The stream has ended: throws unless it ended cleanly, after the end of every file. */
  finish(): void {
    if (this.payloadLeft > 0 || this.pendingBytes > 0) {
      throw corrupt("the stream ends inside a chunk (truncated)", this.offset);
    }
    if (this.summary.chunks === 0) throw corrupt("the stream is empty", 0);
    if (this.open.size > 0) {
      throw corrupt(`the stream ends before the end of ${[...this.open][0]} (truncated)`, this.offset);
    }
    this.summary.ended = true;
  }
}
