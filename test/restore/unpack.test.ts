// The in-process unpacker (what `mbstream -x` does) on crafted streams: files, offsets, empty files
// and nested directories come out right; unsafe, repeated and truncated streams and a full
// filesystem are refused with their own errors.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import {
  closeSync,
  existsSync,
  fstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  write,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { crc32 } from "node:zlib";
import { unpackOnWorker } from "../../src/restore/unpack.ts";
import { openFifo } from "../../src/util/fifo.ts";

function payload(path: string, offset: number, data: Buffer): Buffer {
  const p = Buffer.from(path);
  const head = Buffer.alloc(14);
  head.write("XBSTCK01", 0);
  head[9] = "P".charCodeAt(0);
  head.writeUInt32LE(p.length, 10);
  const meta = Buffer.alloc(20);
  meta.writeBigUInt64LE(BigInt(data.length), 0);
  meta.writeBigUInt64LE(BigInt(offset), 8);
  meta.writeUInt32LE(crc32(data), 16);
  return Buffer.concat([head, p, meta, data]);
}

function eof(path: string): Buffer {
  const p = Buffer.from(path);
  const head = Buffer.alloc(14);
  head.write("XBSTCK01", 0);
  head[9] = "E".charCodeAt(0);
  head.writeUInt32LE(p.length, 10);
  return Buffer.concat([head, p]);
}

/** Writes `stream` into a FIFO read by the unpack worker, like zstd does in a restore. */
async function unpack(stream: Buffer, dir?: string) {
  const fifo = await openFifo();
  const result = unpackOnWorker({ fd: fifo.readFd, ...(dir ? { dir } : {}) });
  result.catch(() => {});
  let off = 0;
  try {
    while (off < stream.length) {
      const n = Math.min(100_000, stream.length - off);
      off += await new Promise<number>((resolve, reject) =>
        write(fifo.writeFd, stream, off, n, null, (e, w) => (e ? reject(e) : resolve(w))),
      );
    }
  } catch (e) {
    // The worker stopped reading (EPIPE): its result says why.
    assert.equal((e as NodeJS.ErrnoException).code, "EPIPE");
  }
  closeSync(fifo.writeFd);
  return result;
}

const root = mkdtempSync(join(tmpdir(), "sb-unpack-"));
let n = 0;
const target = () => {
  const d = join(root, `t${n++}`, "data");
  mkdirSync(d, { recursive: true });
  return d;
};
after(() => {
  try {
    execFileSync("umount", [join(root, "tiny")], { stdio: "ignore" });
  } catch {
    // not mounted
  }
  execFileSync("rm", ["-rf", root]);
});

describe("unpacking an xbstream on the worker", () => {
  it("writes interleaved files at their offsets, empty files and nested directories", async () => {
    const a = Buffer.alloc(3_000_000, 1);
    a.fill(2, 1_000_000);
    const b = Buffer.from("second file, written in two chunks");
    const stream = Buffer.concat([
      payload("ibdata1", 0, a.subarray(0, 1_500_000)),
      payload("shop/orders.ibd", 0, b.subarray(0, 10)),
      payload("ibdata1", 1_500_000, a.subarray(1_500_000)),
      payload("shop/orders.ibd", 10, b.subarray(10)),
      eof("shop/orders.ibd"),
      eof("ibdata1"),
      eof("shop/empty.frm"),
      payload("deep/er/dir/file", 0, Buffer.from("x")),
      eof("deep/er/dir/file"),
    ]);
    const dir = target();
    const r = await unpack(stream, dir);
    assert.equal(r.bytesRead, stream.length);
    assert.equal(r.summary.files, 4);
    assert.equal(r.summary.payloadBytes, a.length + b.length + 1);
    assert.ok(readFileSync(join(dir, "ibdata1")).equals(a));
    assert.equal(readFileSync(join(dir, "shop/orders.ibd"), "utf8"), b.toString());
    assert.equal(readFileSync(join(dir, "shop/empty.frm")).length, 0);
    assert.equal(readFileSync(join(dir, "deep/er/dir/file"), "utf8"), "x");
  });

  it("without a directory it only checks, and writes nothing", async () => {
    const stream = Buffer.concat([payload("f", 0, Buffer.from("abc")), eof("f")]);
    const r = await unpack(stream);
    assert.deepEqual(r.summary, { files: 1, chunks: 2, payloadBytes: 3, ended: true });
  });

  it("refuses an escaping path before writing anything outside the target", async () => {
    const dir = target();
    const stream = Buffer.concat([payload("../escaped", 0, Buffer.from("boom")), eof("../escaped")]);
    await assert.rejects(unpack(stream, dir), (e: { code: string }) => e.code === "STREAM_UNSAFE_PATH");
    assert.equal(existsSync(join(dir, "..", "escaped")), false);
  });

  it("refuses a file that appears twice, a bad checksum and a truncated stream", async () => {
    const twice = Buffer.concat([
      payload("f", 0, Buffer.from("one")),
      eof("f"),
      payload("f", 0, Buffer.from("two")),
      eof("f"),
    ]);
    await assert.rejects(unpack(twice, target()), (e: { code: string; message: string }) => {
      assert.equal(e.code, "STREAM_CORRUPT");
      assert.match(e.message, /contains f twice/);
      return true;
    });
    const good = Buffer.concat([payload("f", 0, Buffer.from("payload")), eof("f")]);
    const flipped = Buffer.from(good);
    flipped[38] = flipped[38]! ^ 1; // inside the payload
    await assert.rejects(unpack(flipped, target()), /checksum mismatch/);
    await assert.rejects(unpack(good.subarray(0, good.length - 3), target()), /truncated/);
  });

  it("a stream that cannot be read is UNPACK_FAILED, named in one line", async () => {
    // A directory's descriptor: read(2) fails with EISDIR, as a broken pipe or I/O error would.
    const fd = openSync(root, "r");
    await assert.rejects(unpackOnWorker({ fd, dir: target() }), (e: { code: string; message: string }) => {
      assert.equal(e.code, "UNPACK_FAILED");
      assert.match(e.message, /^reading the decompressed stream failed: EISDIR/);
      return true;
    });
  });

  it("a worker that cannot be started is an error, and the FIFO's read end is closed", async () => {
    const fifo = await openFifo();
    try {
      // Fault injection: a request the Worker constructor cannot clone makes it throw, as it does
      // when no thread can be created.
      const bad = { fd: fifo.readFd, dir: (() => "not cloneable") as unknown as string };
      await assert.rejects(unpackOnWorker(bad), { name: "DataCloneError" });
      assert.throws(() => fstatSync(fifo.readFd), { code: "EBADF" });
    } finally {
      closeSync(fifo.writeFd);
    }
  });

  it("a full filesystem is TARGET_FULL, named in one line", async () => {
    const tiny = join(root, "tiny");
    mkdirSync(tiny);
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m", "tmpfs", tiny]);
    const stream = Buffer.concat([payload("big.ibd", 0, Buffer.alloc(3 << 20, 7)), eof("big.ibd")]);
    await assert.rejects(unpack(stream, tiny), (e: { code: string; message: string }) => {
      assert.equal(e.code, "TARGET_FULL");
      assert.equal(e.message, "the target filesystem is full while writing big.ibd");
      return true;
    });
    assert.deepEqual(readdirSync(tiny), ["big.ibd"]);
  });
});
