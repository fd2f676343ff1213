import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdir, mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { LocalStorage } from "../../src/storage/local.ts";
import { TEMP_PREFIX } from "../../src/storage/types.ts";
import { wrapStorage } from "../../src/storage/wrap.ts";
import {
  byteStream,
  filesUnder,
  getBytes,
  listAll,
  stallingStream,
  storageConformance,
} from "./conformance.ts";

async function tempRoot(): Promise<string> {
  return mkdtemp(join(tmpdir(), "strongbox-local-"));
}

storageConformance("local", async () => {
  const dir = await tempRoot();
  return {
    storage: await LocalStorage.open(join(dir, "repo")),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

// Streams go through O_DIRECT above (direct.ts); this is the buffered path other filesystems get.
storageConformance("local, buffered writes", async () => {
  const dir = await tempRoot();
  return {
    storage: await LocalStorage.open(join(dir, "repo"), { direct: false }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

storageConformance("local, wrapped by the core", async () => {
  const dir = await tempRoot();
  return {
    storage: wrapStorage(await LocalStorage.open(join(dir, "repo")), { retry: { attempts: 3 } }),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describe("local storage", () => {
  let dir: string;
  before(async () => {
    dir = await tempRoot();
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test("lists a directory of more files than one stat batch in key order, with every size", async () => {
    const storage = await LocalStorage.open(join(dir, "listing"));
    await mkdir(join(dir, "listing", "many", "m-sub"), { recursive: true });
    const expected: { key: string; size: number }[] = [];
    for (let i = 0; i < 600; i++) {
      const name = `f-${String(i).padStart(4, "0")}`;
      await writeFile(join(dir, "listing", "many", name), Buffer.alloc(i % 97));
      expected.push({ key: `many/${name}`, size: i % 97 });
    }
    await writeFile(join(dir, "listing", "many", "m-sub", "x"), "12345");
    expected.push({ key: "many/m-sub/x", size: 5 });
    expected.sort((a, b) => (a.key < b.key ? -1 : 1));
    const seen: { key: string; size: number }[] = [];
    for await (const o of storage.list("many/")) seen.push({ key: o.key, size: o.size });
    assert.deepEqual(seen, expected, "in order as listed, not only as a set");
  });

  test("files are created 0600 and directories 0700 even with umask 000", async () => {
    const previous = process.umask(0);
    try {
      const root = join(dir, "modes", "repo");
      const storage = await LocalStorage.open(root);
      await storage.put("backups/2024/part-1", Buffer.from("secret"));
      await storage.put("backups/2024/part-2", byteStream(randomBytes(300_000)));
      await storage.put("locks/writer.json", Buffer.from("{}"), { ifAbsent: true });
      for (const d of [
        join(dir, "modes"),
        root,
        join(root, "backups"),
        join(root, "backups/2024"),
        join(root, "locks"),
      ]) {
        assert.equal((await stat(d)).mode & 0o777, 0o700, d);
      }
      for (const f of ["backups/2024/part-1", "backups/2024/part-2", "locks/writer.json"]) {
        assert.equal((await stat(join(root, f))).mode & 0o777, 0o600, f);
      }
    } finally {
      process.umask(previous);
    }
  });

  test("a tighter umask does not loosen or break anything", async () => {
    const previous = process.umask(0o077);
    try {
      const root = join(dir, "tight");
      const storage = await LocalStorage.open(root);
      await storage.put("a/b", Buffer.from("x"));
      assert.equal((await stat(join(root, "a"))).mode & 0o777, 0o700);
      assert.equal((await stat(join(root, "a/b"))).mode & 0o777, 0o600);
    } finally {
      process.umask(previous);
    }
  });

  test("a reader sees nothing until the put has finished; temp files are not listed", async () => {
    const root = join(dir, "atomic-new");
    const storage = await LocalStorage.open(root);
    const source = stallingStream(randomBytes(200_000));
    const put = storage.put("parts/p1", source.stream);
    await source.firstRead;
    await delay(20);
    const onDisk = await filesUnder(root);
    assert.equal(onDisk.length, 1);
    assert.match(onDisk[0]!, /^parts\/\.tmp-[0-9a-f]+-p1$/);
    assert.equal(await storage.stat("parts/p1"), undefined);
    assert.deepEqual(await listAll(storage, ""), []);
    await assert.rejects(storage.get("parts/p1"), { code: "STORAGE_NOT_FOUND" });
    source.stream.push(Buffer.from("end"));
    source.stream.push(null);
    assert.equal((await put).size, 200_003);
    assert.deepEqual(await filesUnder(root), ["parts/p1"]);
  });

  test("readers never see a partial object while it is overwritten", async () => {
    const storage = await LocalStorage.open(join(dir, "atomic-overwrite"));
    const size = 2 * 1024 * 1024;
    const versions = [Buffer.alloc(size, "a"), Buffer.alloc(size, "b")];
    await storage.put("obj", versions[0]!);
    let writing = true;
    const writer = (async () => {
      for (let i = 1; i <= 20; i++) await storage.put("obj", byteStream(versions[i % 2]!, 128 * 1024));
      writing = false;
    })();
    let reads = 0;
    while (writing) {
      const data = await getBytes(storage, "obj");
      assert.equal(data.length, size);
      const first = data[0]!;
      assert.ok(
        data.every((b) => b === first),
        "object mixes two versions",
      );
      reads++;
    }
    await writer;
    assert.ok(reads > 0);
  });

  test("a failing source leaves no object and no temp file", async () => {
    const root = join(dir, "failing");
    const storage = await LocalStorage.open(root);
    await storage.put("keep", Buffer.from("x"));
    const source = stallingStream(randomBytes(500_000));
    const put = storage.put("parts/p1", source.stream);
    await source.firstRead;
    await delay(20);
    source.fail(new Error("child exited with code 1"));
    await assert.rejects(put, /child exited with code 1/);
    assert.deepEqual(await filesUnder(root), ["keep"]);
  });

  test("an aborted put leaves no temp file", async () => {
    const root = join(dir, "abort");
    const storage = await LocalStorage.open(root);
    const controller = new AbortController();
    const source = stallingStream(randomBytes(500_000));
    const put = storage.put("parts/p1", source.stream, { signal: controller.signal });
    await source.firstRead;
    await delay(20);
    controller.abort();
    await assert.rejects(put, { name: "AbortError" });
    assert.deepEqual(await filesUnder(root), []);
  });

  test("a lost ifAbsent race leaves no temp file", async () => {
    const root = join(dir, "race-temp");
    const storage = await LocalStorage.open(root);
    const results = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((i) =>
        storage.put("locks/writer.json", Buffer.from(String(i)), { ifAbsent: true }),
      ),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.deepEqual(await filesUnder(root), ["locks/writer.json"]);
  });

  test("cleanupTemp removes only old temp files", async () => {
    const root = join(dir, "cleanup");
    const storage = await LocalStorage.open(root);
    await storage.put("a/object", Buffer.from("x"));
    const old = join(root, "a", `${TEMP_PREFIX}0011223344556677-part`);
    const fresh = join(root, `${TEMP_PREFIX}8899aabbccddeeff-part`);
    await writeFile(old, "partial");
    await writeFile(fresh, "partial");
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(old, hourAgo, hourAgo);
    assert.equal(await storage.cleanupTemp(10 * 60_000), 1);
    assert.deepEqual(await filesUnder(root), [`${TEMP_PREFIX}8899aabbccddeeff-part`, "a/object"].sort());
  });

  test("delete prunes folders it leaves empty, never the root", async () => {
    const root = join(dir, "prune");
    const storage = await LocalStorage.open(root);
    await storage.put("backups/b1/part-1", Buffer.from("1"));
    await storage.put("backups/b2/part-1", Buffer.from("2"));
    await storage.delete("backups/b1/part-1");
    assert.deepEqual((await readdir(join(root, "backups"))).sort(), ["b2"]);
    await storage.delete("backups/b2/part-1");
    assert.deepEqual(await readdir(root), []);
    await storage.put("backups/b3/part-1", Buffer.from("3"));
    assert.equal((await getBytes(storage, "backups/b3/part-1")).toString(), "3");
  });

  test("open without create refuses a missing directory; a vanished root is not re-created", async () => {
    await assert.rejects(LocalStorage.open(join(dir, "absent"), { create: false }), {
      code: "STORAGE_NOT_FOUND",
    });
    const root = join(dir, "vanishing");
    const storage = await LocalStorage.open(root);
    await rm(root, { recursive: true });
    await assert.rejects(storage.put("a/b", Buffer.from("x")), { code: "STORAGE_UNAVAILABLE" });
    await assert.rejects(stat(root), { code: "ENOENT" });
  });

  test("a key cannot be both an object and a folder", async () => {
    const storage = await LocalStorage.open(join(dir, "conflict"));
    await storage.put("a", Buffer.from("x"));
    await assert.rejects(storage.put("a/b", Buffer.from("y")), { code: "STORAGE_BAD_KEY" });
    await storage.put("c/d", Buffer.from("y"));
    await assert.rejects(storage.put("c", Buffer.from("z")), { code: "STORAGE_BAD_KEY" });
    assert.deepEqual(
      (await listAll(storage, "")).map((i) => i.key),
      ["a", "c/d"],
    );
  });

  test("files that are not objects are not listed", async () => {
    const root = join(dir, "foreign");
    const storage = await LocalStorage.open(root);
    await storage.put("ok", Buffer.from("x"));
    await writeFile(join(root, ".DS_Store"), "x");
    await mkdir(join(root, ".git"));
    await writeFile(join(root, ".git", "config"), "x");
    await writeFile(join(root, "back\\slash"), "x");
    assert.deepEqual(
      (await listAll(storage, "")).map((i) => i.key),
      ["ok"],
    );
  });
});

describe("local storage on a full filesystem", () => {
  let mountPoint: string;
  let mounted = false;
  before(async () => {
    mountPoint = await tempRoot();
    // Must not be skipped: if mounting fails, this hook fails and so does the suite.
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mountPoint], { stdio: "pipe" });
    mounted = true;
  });
  after(async () => {
    if (mounted) execFileSync("umount", [mountPoint], { stdio: "pipe" });
    await rm(mountPoint, { recursive: true, force: true });
  });

  test("ENOSPC becomes STORAGE_FULL naming the place, and the partial temp file is removed", async () => {
    const root = join(mountPoint, "repo");
    const storage = await LocalStorage.open(root);
    await storage.put("small", Buffer.from("fits"));
    await assert.rejects(
      storage.put("parts/big", byteStream(randomBytes(2 * 1024 * 1024))),
      (error: Error) => {
        assert.equal((error as { code?: string }).code, "STORAGE_FULL");
        assert.match(error.message, /full|no space/);
        assert.ok(error.message.includes(root), error.message);
        return true;
      },
    );
    await assert.rejects(storage.put("parts/big-buffer", randomBytes(2 * 1024 * 1024)), {
      code: "STORAGE_FULL",
    });
    assert.deepEqual(await filesUnder(root), ["small"]);
    // The space of the failed temp files is free again.
    await storage.put("parts/after", randomBytes(512 * 1024));
    assert.equal((await storage.stat("parts/after"))?.size, 512 * 1024);
  });
});
