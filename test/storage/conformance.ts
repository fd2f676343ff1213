// The behaviour every storage backend must show. Each backend's test file calls
// storageConformance() with a factory that returns a fresh, empty storage (a new directory, a new
// bucket prefix...) and a cleanup; servers are started once by that file, not by the factory.
import assert from "node:assert/strict";
import { createHash, randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterEach, beforeEach, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import type { ObjectInfo, Storage } from "../../src/storage/types.ts";

export interface StorageFixture {
  storage: Storage;
  cleanup(): Promise<void>;
}

const MiB = 1024 * 1024;

/** Every file under `dir`, relative, including temp files (which list() hides). */
export async function filesUnder(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true });
  return entries
    .filter((e) => e.isFile())
    .map((e) => join(e.parentPath, e.name).slice(dir.length + 1))
    .sort();
}

export async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
  return Buffer.concat(chunks);
}

export async function getBytes(storage: Storage, key: string): Promise<Buffer> {
  return readAll(await storage.get(key));
}

export async function listAll(storage: Storage, prefix: string): Promise<ObjectInfo[]> {
  const items: ObjectInfo[] = [];
  for await (const info of storage.list(prefix)) items.push(info);
  return items.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
}

async function listKeys(storage: Storage, prefix: string): Promise<string[]> {
  return (await listAll(storage, prefix)).map((i) => i.key);
}

/** A stream of `total` pseudo-random bytes in chunks of `chunk`. */
export function byteStream(data: Buffer, chunk = 64 * 1024): Readable {
  return Readable.from(
    (function* () {
      for (let offset = 0; offset < data.length; offset += chunk) yield data.subarray(offset, offset + chunk);
    })(),
  );
}

/** Emits `first`, then waits until told to go on (or to fail). */
export function stallingStream(first: Buffer): {
  stream: Readable;
  firstRead: Promise<void>;
  fail(error: Error): void;
} {
  let onFirst!: () => void;
  const firstRead = new Promise<void>((resolve) => {
    onFirst = resolve;
  });
  let sent = false;
  const stream = new Readable({
    read() {
      if (!sent) {
        sent = true;
        this.push(first);
        onFirst();
      }
    },
  });
  return { stream, firstRead, fail: (error) => stream.destroy(error) };
}

function sha256(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

function hasCode(code: string) {
  return (error: unknown) => {
    assert.equal((error as { code?: string }).code, code, `expected ${code}, got ${String(error)}`);
    return true;
  };
}

export function storageConformance(name: string, factory: () => Promise<StorageFixture>): void {
  describe(`storage conformance: ${name}`, () => {
    let fixture: StorageFixture;
    let storage: Storage;

    beforeEach(async () => {
      fixture = await factory();
      storage = fixture.storage;
    });
    afterEach(async () => {
      await storage.close();
      await fixture.cleanup();
    });

    test("describes itself and its capabilities", () => {
      assert.ok(storage.description.length > 0);
      for (const flag of ["atomicRename", "appendOnly", "conditionalCreate"] as const) {
        assert.equal(typeof storage.capabilities[flag], "boolean");
      }
    });

    test("put/get round trip of a buffer", async () => {
      const data = randomBytes(1000);
      assert.deepEqual(await storage.put("a/b/object.bin", data), { size: 1000 });
      assert.deepEqual(await getBytes(storage, "a/b/object.bin"), data);
    });

    test("put/get round trip of a stream of a few MiB", async () => {
      const data = randomBytes(5 * MiB + 123);
      assert.deepEqual(await storage.put("big/part-000001", byteStream(data, 100_000)), {
        size: data.length,
      });
      assert.equal(sha256(await getBytes(storage, "big/part-000001")), sha256(data));
      assert.equal((await storage.stat("big/part-000001"))?.size, data.length);
    });

    test("empty objects from a buffer and from a stream", async () => {
      assert.deepEqual(await storage.put("empty/buffer", new Uint8Array(0)), { size: 0 });
      assert.deepEqual(await storage.put("empty/stream", Readable.from([])), { size: 0 });
      for (const key of ["empty/buffer", "empty/stream"]) {
        assert.equal((await getBytes(storage, key)).length, 0);
        assert.equal((await storage.stat(key))?.size, 0);
      }
    });

    test("a Uint8Array view is stored with its own bytes only", async () => {
      const backing = Buffer.from("xxhelloxx");
      await storage.put("view", new Uint8Array(backing.buffer, backing.byteOffset + 2, 5));
      assert.equal((await getBytes(storage, "view")).toString(), "hello");
    });

    test("byte ranges (end inclusive, clipped at the end)", async () => {
      const data = Buffer.from("0123456789");
      await storage.put("range", data);
      const range = async (start?: number, end?: number) =>
        (
          await readAll(
            await storage.get("range", {
              ...(start !== undefined ? { start } : {}),
              ...(end !== undefined ? { end } : {}),
            }),
          )
        ).toString();
      assert.equal(await range(2, 5), "2345");
      assert.equal(await range(3), "3456789");
      assert.equal(await range(undefined, 2), "012");
      assert.equal(await range(7, 100), "789");
      assert.equal(await range(4, 4), "4");
      assert.equal(await range(9, 9), "9");
      assert.equal(await range(10), "");
      await assert.rejects(storage.get("range", { start: 5, end: 4 }), hasCode("STORAGE_BAD_RANGE"));
      await assert.rejects(storage.get("range", { start: -1 }), hasCode("STORAGE_BAD_RANGE"));
      await assert.rejects(storage.get("range", { start: 1.5 }), hasCode("STORAGE_BAD_RANGE"));
    });

    test("stat of objects, missing keys and folders", async () => {
      const before = Date.now();
      await storage.put("dir/file", Buffer.from("abc"));
      const info = await storage.stat("dir/file");
      assert.ok(info);
      assert.equal(info.key, "dir/file");
      assert.equal(info.size, 3);
      assert.ok(info.modified instanceof Date);
      // Generous: object stores round times to seconds and clocks drift a little.
      assert.ok(Math.abs(info.modified.getTime() - before) < 120_000);
      assert.equal(await storage.stat("dir/missing"), undefined);
      assert.equal(await storage.stat("nowhere/at/all"), undefined);
      assert.equal(await storage.stat("dir"), undefined, "a folder is not an object");
    });

    test("list is recursive, relative to the root, filtered by a string prefix", async () => {
      const keys = ["a/1", "a/b/2", "a/b/c/3", "ab/4", "b/5", "top"];
      for (const key of keys) await storage.put(key, Buffer.from(key));
      assert.deepEqual(await listKeys(storage, ""), keys);
      assert.deepEqual(await listKeys(storage, "a/"), ["a/1", "a/b/2", "a/b/c/3"]);
      assert.deepEqual(await listKeys(storage, "a/b/"), ["a/b/2", "a/b/c/3"]);
      assert.deepEqual(await listKeys(storage, "a"), ["a/1", "a/b/2", "a/b/c/3", "ab/4"]);
      assert.deepEqual(await listKeys(storage, "a/b/c/3"), ["a/b/c/3"]);
      assert.deepEqual(await listKeys(storage, "t"), ["top"]);
      assert.deepEqual(await listKeys(storage, "nope/"), []);
      const sizes = await listAll(storage, "b/");
      assert.equal(sizes[0]?.size, 3);
      assert.ok(sizes[0]?.modified instanceof Date);
    });

    test("list of an empty storage is empty", async () => {
      assert.deepEqual(await listKeys(storage, ""), []);
    });

    test("delete removes the object and is idempotent", async () => {
      await storage.put("x/y/z", Buffer.from("1"));
      await storage.put("x/keep", Buffer.from("2"));
      await storage.delete("x/y/z");
      assert.equal(await storage.stat("x/y/z"), undefined);
      await assert.rejects(storage.get("x/y/z"), hasCode("STORAGE_NOT_FOUND"));
      await storage.delete("x/y/z");
      await storage.delete("never/existed");
      assert.deepEqual(await listKeys(storage, ""), ["x/keep"]);
      // The same key can be written again after a delete.
      await storage.put("x/y/z", Buffer.from("3"));
      assert.equal((await getBytes(storage, "x/y/z")).toString(), "3");
    });

    test("put replaces an existing object", async () => {
      await storage.put("over", Buffer.from("first version, longer"));
      await storage.put("over", byteStream(Buffer.from("second")));
      assert.equal((await getBytes(storage, "over")).toString(), "second");
      assert.equal((await storage.stat("over"))?.size, 6);
      assert.deepEqual(await listKeys(storage, ""), ["over"]);
    });

    test("ifAbsent creates once, then fails with STORAGE_EXISTS", async () => {
      await storage.put("locks/one", Buffer.from("mine"), { ifAbsent: true });
      await assert.rejects(
        storage.put("locks/one", Buffer.from("theirs"), { ifAbsent: true }),
        hasCode("STORAGE_EXISTS"),
      );
      await assert.rejects(
        storage.put("locks/one", byteStream(Buffer.from("theirs")), { ifAbsent: true }),
        hasCode("STORAGE_EXISTS"),
      );
      assert.equal((await getBytes(storage, "locks/one")).toString(), "mine");
      assert.deepEqual(await listKeys(storage, ""), ["locks/one"]);
    });

    test("ifAbsent race: of concurrent writers exactly one wins", async () => {
      for (let round = 0; round < 10; round++) {
        const key = `race/${round}`;
        const contenders = ["a", "b", "c", "d"].map((who) => `${who}-${round}`);
        const results = await Promise.allSettled(
          contenders.map((value, i) =>
            storage.put(key, i % 2 ? byteStream(Buffer.from(value)) : Buffer.from(value), { ifAbsent: true }),
          ),
        );
        const winners = results.flatMap((r, i) => (r.status === "fulfilled" ? [contenders[i]] : []));
        assert.equal(winners.length, 1, `round ${round}: ${winners.length} winners`);
        for (const r of results) if (r.status === "rejected") hasCode("STORAGE_EXISTS")(r.reason);
        assert.equal((await getBytes(storage, key)).toString(), winners[0]);
      }
      assert.equal((await listKeys(storage, "race/")).length, 10);
    });

    test("bad keys are rejected with STORAGE_BAD_KEY", async () => {
      const bad = [
        "",
        "/abs",
        "a/",
        "a//b",
        "..",
        "../x",
        "a/../b",
        "./a",
        "a/./b",
        "a\0b",
        ".hidden",
        "a/.tmp-x",
      ];
      for (const key of bad) {
        await assert.rejects(storage.put(key, Buffer.from("x")), hasCode("STORAGE_BAD_KEY"), `put ${key}`);
        await assert.rejects(storage.get(key), hasCode("STORAGE_BAD_KEY"), `get ${key}`);
        await assert.rejects(storage.stat(key), hasCode("STORAGE_BAD_KEY"), `stat ${key}`);
        await assert.rejects(storage.delete(key), hasCode("STORAGE_BAD_KEY"), `delete ${key}`);
      }
      for (const prefix of ["/", "/a", "../", "a//", "a/../", "x\0"]) {
        await assert.rejects(listKeys(storage, prefix), hasCode("STORAGE_BAD_KEY"), `list ${prefix}`);
      }
      assert.deepEqual(await listKeys(storage, ""), []);
    });

    test("get of a missing key fails with STORAGE_NOT_FOUND", async () => {
      await assert.rejects(storage.get("missing"), hasCode("STORAGE_NOT_FOUND"));
      await assert.rejects(storage.get("no/such/dir/key"), hasCode("STORAGE_NOT_FOUND"));
    });

    test("abort in the middle of a put leaves nothing visible", async () => {
      const controller = new AbortController();
      const source = stallingStream(randomBytes(256 * 1024));
      const put = storage.put("aborted/part", source.stream, { signal: controller.signal });
      await source.firstRead;
      await delay(50); // let the backend write what it has
      controller.abort();
      await assert.rejects(put, (error: Error) => error.name === "AbortError");
      assert.equal(await storage.stat("aborted/part"), undefined);
      assert.deepEqual(await listKeys(storage, ""), []);
    });

    test("an already aborted signal stores nothing", async () => {
      const controller = new AbortController();
      controller.abort();
      await assert.rejects(storage.put("pre-aborted", Buffer.from("x"), { signal: controller.signal }));
      assert.equal(await storage.stat("pre-aborted"), undefined);
    });

    test("a failing source stream leaves nothing visible and its error is reported", async () => {
      const source = stallingStream(randomBytes(100_000));
      const put = storage.put("failed/part", source.stream);
      await source.firstRead;
      await delay(20);
      source.fail(new Error("mariabackup died"));
      await assert.rejects(put, /mariabackup died/);
      assert.equal(await storage.stat("failed/part"), undefined);
      assert.deepEqual(await listKeys(storage, ""), []);
    });

    test("a failed overwrite keeps the previous object whole", async () => {
      await storage.put("keep/me", Buffer.from("old content"));
      const source = stallingStream(Buffer.from("new partial content"));
      const put = storage.put("keep/me", source.stream);
      await source.firstRead;
      await delay(20);
      source.fail(new Error("source broke"));
      await assert.rejects(put, /source broke/);
      assert.equal((await getBytes(storage, "keep/me")).toString(), "old content");
    });
  });
}
