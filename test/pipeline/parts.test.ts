// The part writer: parts cut at the part size decrypt back to the input, their hashes are those of
// the stored bytes, an empty stream makes one empty part, a slow storage gets backpressure with at
// most maxInFlight uploads at once, and a failed upload fails the whole write.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, describe, it } from "node:test";
import { decryptBuffer } from "../../src/crypto/age.ts";
import { generateX25519Identity, parseIdentities, parseRecipient } from "../../src/crypto/age-keys.ts";
import { type PartRecord, writeParts } from "../../src/pipeline/parts.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import type { Storage } from "../../src/storage/types.ts";

const { identity, recipient } = generateX25519Identity();
const recipients = [parseRecipient(recipient)];
const identities = parseIdentities(identity);
const dirs: string[] = [];
after(async () => {
  for (const d of dirs) await rm(d, { recursive: true, force: true });
});

async function localStorage(): Promise<LocalStorage> {
  const dir = await mkdtemp(join(tmpdir(), "sb-parts-"));
  dirs.push(dir);
  return LocalStorage.open(dir);
}

async function readBack(storage: Storage, parts: PartRecord[]): Promise<Buffer> {
  const plain: Buffer[] = [];
  for (const p of parts) {
    const chunks: Buffer[] = [];
    for await (const c of await storage.get(p.key)) chunks.push(c as Buffer);
    const stored = Buffer.concat(chunks);
    assert.equal(stored.length, p.size, `size of part ${p.index}`);
    assert.equal(createHash("sha256").update(stored).digest("hex"), p.sha256, `hash of part ${p.index}`);
    const data = await decryptBuffer(stored, identities);
    assert.equal(data.length, p.plainSize);
    plain.push(data);
  }
  return Buffer.concat(plain);
}

/** A source of `total` random bytes in uneven chunks. */
function source(total: number): { stream: Readable; data: Buffer } {
  const data = randomBytes(total);
  const chunks: Buffer[] = [];
  for (let off = 0, i = 0; off < total; i++) {
    const n = Math.min(total - off, [65_536, 1, 100_000, 7_777, 300_000][i % 5]!);
    chunks.push(data.subarray(off, off + n));
    off += n;
  }
  return { stream: Readable.from(chunks, { objectMode: false }), data };
}

describe("part writer", () => {
  it("cuts the stream into parts that decrypt back to it, with the stored bytes' hashes", async () => {
    const storage = await localStorage();
    const { stream, data } = source(2_500_000);
    const parts = await writeParts(stream, {
      storage,
      keyFor: (i) => `b/part-${i}.age`,
      partSize: 1 << 20,
      recipients,
    });
    assert.deepEqual(
      parts.map((p) => [p.index, p.plainSize]),
      [
        [0, 1 << 20],
        [1, 1 << 20],
        [2, 2_500_000 - 2 * (1 << 20)],
      ],
    );
    assert.ok((await readBack(storage, parts)).equals(data));
  });

  it("an empty stream is one empty part", async () => {
    const storage = await localStorage();
    const parts = await writeParts(Readable.from([], { objectMode: false }), {
      storage,
      keyFor: (i) => `e/part-${i}.age`,
      partSize: 1 << 20,
      recipients,
    });
    assert.equal(parts.length, 1);
    assert.equal(parts[0]!.plainSize, 0);
    assert.equal((await readBack(storage, parts)).length, 0);
  });

  it("a slow storage holds the stream back, with at most maxInFlight uploads at once", async () => {
    const local = await localStorage();
    let active = 0;
    let most = 0;
    const slow: Storage = Object.create(local, {
      put: {
        value: async (key: string, data: Readable) => {
          active++;
          most = Math.max(most, active);
          // Read slowly: 64 KiB every 2 ms.
          const chunks: Buffer[] = [];
          for await (const c of data) {
            chunks.push(c as Buffer);
            await new Promise((r) => setTimeout(r, 2));
          }
          active--;
          return local.put(key, Buffer.concat(chunks));
        },
      },
    });
    const { stream, data } = source(3_000_000);
    const parts = await writeParts(stream, {
      storage: slow,
      keyFor: (i) => `s/part-${i}.age`,
      partSize: 512 * 1024,
      recipients,
      maxInFlight: 2,
    });
    assert.equal(parts.length, 6);
    assert.equal(most, 2, "uploads at once");
    assert.ok((await readBack(local, parts)).equals(data));
  });

  it("stores nothing before `ready` settles, and fails with its rejection", async () => {
    const storage = await localStorage();
    let release!: () => void;
    const ready = new Promise<void>((r) => {
      release = r;
    });
    const { stream, data } = source(300_000);
    const writing = writeParts(stream, {
      storage,
      keyFor: (i) => `r/part-${i}.age`,
      partSize: 1 << 20,
      recipients,
      ready,
    });
    await new Promise((r) => setTimeout(r, 200));
    const early: string[] = [];
    for await (const o of storage.list("")) early.push(o.key);
    assert.deepEqual(early, [], "nothing stored while the housekeeping runs");
    release();
    assert.ok((await readBack(storage, await writing)).equals(data));

    await assert.rejects(
      writeParts(source(1000).stream, {
        storage,
        keyFor: (i) => `r2/part-${i}.age`,
        partSize: 1 << 20,
        recipients,
        ready: Promise.reject(new Error("scan failed")),
      }),
      /scan failed/,
    );
    assert.equal(await storage.stat("r2/part-0.age"), undefined);
  });

  it("a failed upload fails the write with that error", async () => {
    const local = await localStorage();
    const failing: Storage = Object.create(local, {
      put: {
        value: async (key: string, data: Readable) => {
          if (key.endsWith("part-1.age")) {
            data.resume();
            throw Object.assign(new Error("disk on fire"), { code: "STORAGE_IO" });
          }
          return local.put(key, data);
        },
      },
    });
    const { stream } = source(3_000_000);
    await assert.rejects(
      writeParts(stream, {
        storage: failing,
        keyFor: (i) => `f/part-${i}.age`,
        partSize: 1 << 20,
        recipients,
      }),
      /disk on fire/,
    );
  });

  it("an abort stops an endless write with the abort's reason", async () => {
    const storage = await localStorage();
    const ac = new AbortController();
    const endless = new Readable({
      read() {
        this.push(randomBytes(65_536));
      },
    });
    const reason = new Error("stop now");
    setTimeout(() => ac.abort(reason), 50);
    await assert.rejects(
      writeParts(endless, {
        storage,
        keyFor: (i) => `a/part-${i}.age`,
        partSize: 1 << 20,
        recipients,
        signal: ac.signal,
      }),
      // The reason itself, or (when the abort lands inside an upload's pipeline) Node's
      // AbortError carrying it as its cause.
      (e: Error) => e === reason || (e.name === "AbortError" && e.cause === reason),
    );
    endless.destroy();
  });
});
