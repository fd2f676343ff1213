// Reading a file another process still appends to (src/storage/growing-file.ts): the reader gets every
// byte up to the size the writer reports, waits for bytes not yet written, and fails, never ends,
// when the file holds another number of bytes or the writer's report is an error.
import assert from "node:assert/strict";
import { randomBytes } from "node:crypto";
import { appendFileSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { created, followFile, grown } from "../../src/storage/growing-file.ts";

let work: string;
let files = 0;
before(async () => {
  work = await mkdtemp(join(tmpdir(), "sb-follow-"));
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

const newPath = () => join(work, `f${files++}`);

async function drain(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of stream) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

describe("followFile", () => {
  it("reads a file as it grows and ends at the reported size", async () => {
    const path = newPath();
    const data = randomBytes(3 * (1 << 20) + 777);
    writeFileSync(path, data.subarray(0, 100));
    const done = Promise.withResolvers<number>();
    const reading = drain(followFile(path, done.promise));
    // Appended in pieces, with pauses the reader has to wait through.
    for (let at = 100; at < data.length; at += 700_000) {
      await sleep(15);
      appendFileSync(path, data.subarray(at, Math.min(at + 700_000, data.length)));
    }
    await sleep(15);
    done.resolve(data.length);
    assert.ok((await reading).equals(data));
  });

  it("a file longer than reported fails with SPOOL_DAMAGED", async () => {
    const path = newPath();
    writeFileSync(path, randomBytes(5000));
    await assert.rejects(drain(followFile(path, Promise.resolve(4000))), (e: Error & { code?: string }) => {
      assert.equal(e.code, "SPOOL_DAMAGED");
      assert.match(e.message, /^the spooled part .* does not hold the 4000 bytes its writer reported$/);
      return true;
    });
  });

  it("a file shorter than reported fails with SPOOL_DAMAGED", async () => {
    const path = newPath();
    writeFileSync(path, randomBytes(3000));
    await assert.rejects(drain(followFile(path, Promise.resolve(4000))), { code: "SPOOL_DAMAGED" });
  });

  it("the writer's failure, reported while the reader waits, is the stream's error", async () => {
    const path = newPath();
    writeFileSync(path, randomBytes(2000));
    const done = Promise.withResolvers<number>();
    const reading = drain(followFile(path, done.promise));
    await sleep(50);
    done.reject(new Error("sealer died"));
    await assert.rejects(reading, /sealer died/);
  });
});

describe("grown", () => {
  it("waits until the file holds enough, then gives its size; once reported, the final size", async () => {
    const path = newPath();
    writeFileSync(path, randomBytes(1000));
    const done = Promise.withResolvers<number>();
    const waiting = grown(path, done.promise, 3000);
    await sleep(30);
    appendFileSync(path, randomBytes(2500));
    assert.deepEqual(await waiting, { size: 3500, final: false });
    done.resolve(3500);
    assert.deepEqual(await grown(path, done.promise, 10_000), { size: 3500, final: true });
  });

  it("a complete file of another size than reported is SPOOL_DAMAGED; the writer's failure is its error", async () => {
    const path = newPath();
    writeFileSync(path, randomBytes(1000));
    await assert.rejects(grown(path, Promise.resolve(999), 5000), { code: "SPOOL_DAMAGED" });
    await assert.rejects(grown(path, Promise.resolve(1001), 5000), { code: "SPOOL_DAMAGED" });
    const done = Promise.withResolvers<number>();
    const waiting = grown(path, done.promise, 5000);
    await sleep(30);
    done.reject(new Error("sealer died"));
    await assert.rejects(waiting, /sealer died/);
  });
});

describe("created", () => {
  it("waits for the file to appear", async () => {
    const path = newPath();
    const waiting = created(path, new Promise<number>(() => {}));
    await sleep(30);
    writeFileSync(path, "x");
    assert.equal(await waiting, true);
  });

  it("is false when the writer's report fails before the file appears", async () => {
    const path = newPath();
    const done = Promise.withResolvers<number>();
    const waiting = created(path, done.promise);
    await sleep(30);
    done.reject(new Error("no such part"));
    assert.equal(await waiting, false);
  });
});
