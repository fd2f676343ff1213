import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readdir, readFile, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { DIRECT_ALIGN, openDirect, supportsDirect, writeStreamDirect } from "../../src/storage/direct.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import { getBytes } from "./conformance.ts";

const MiB = 1024 * 1024;
let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), "strongbox-direct-"));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `data` in pieces of varying sizes, none aligned to anything. */
function unevenStream(data: Buffer): Readable {
  return Readable.from(
    (function* () {
      let offset = 0;
      for (let i = 0; offset < data.length; i++) {
        const n = [1, 777, 65_536, 300_001, 4096][i % 5]!;
        yield data.subarray(offset, offset + n);
        offset += n;
      }
    })(),
  );
}

class WrappedWriteError extends Error {}

describe("direct (O_DIRECT) writes", () => {
  test("the probe finds this disk's filesystem takes direct writes, and leaves no file", async () => {
    assert.equal(await supportsDirect(dir, ".tmp-probe"), true);
    assert.deepEqual(await readdir(dir), []);
  });

  test("a file opened for direct writes really bypasses the page cache (O_DIRECT in its flags)", async () => {
    const handle = await openDirect(join(dir, "flags"), 0o600);
    assert.ok(handle);
    try {
      const info = await readFile(`/proc/self/fdinfo/${handle.fd}`, "latin1");
      const flags = Number.parseInt(/^flags:\s+([0-7]+)/m.exec(info)![1]!, 8);
      assert.ok(flags & 0o40000, `flags ${flags.toString(8)}`);
    } finally {
      await handle.close();
    }
    assert.equal((await stat(join(dir, "flags"))).mode & 0o777, 0o600);
  });

  for (const size of [
    0,
    1,
    DIRECT_ALIGN - 1,
    DIRECT_ALIGN,
    DIRECT_ALIGN + 1,
    MiB - 1,
    MiB,
    MiB + 1,
    3 * MiB + 4321,
  ]) {
    test(`${size} bytes in uneven pieces are written exactly, padding truncated away`, async () => {
      const data = randomBytes(size);
      const path = join(dir, `exact-${size}`);
      const handle = (await openDirect(path, 0o600))!;
      try {
        const n = await writeStreamDirect(
          handle,
          unevenStream(data),
          (e) => new WrappedWriteError(String(e)),
        );
        assert.equal(n, size);
      } finally {
        await handle.close();
      }
      assert.ok((await readFile(path)).equals(data));
    });
  }

  test("an error of the source is the caller's, unwrapped; writes in flight finish first", async () => {
    const path = join(dir, "source-error");
    const handle = (await openDirect(path, 0o600))!;
    const failing = Readable.from(
      (async function* () {
        yield randomBytes(2 * MiB + 5);
        throw new Error("the source broke");
      })(),
    );
    try {
      await assert.rejects(
        writeStreamDirect(handle, failing, (e) => new WrappedWriteError(String(e))),
        (e: Error) => !(e instanceof WrappedWriteError) && /the source broke/.test(e.message),
      );
    } finally {
      await handle.close();
    }
  });

  test("an error of the file is wrapped as the writer's (EBADF after the file is closed)", async () => {
    const path = join(dir, "file-error");
    const handle = (await openDirect(path, 0o600))!;
    await handle.close();
    await assert.rejects(
      writeStreamDirect(handle, unevenStream(randomBytes(MiB + 1)), (e) => new WrappedWriteError(String(e))),
      (e: Error) => e instanceof WrappedWriteError,
    );
  });

  test("LocalStorage streams through the direct path and reads back the same bytes", async () => {
    const storage = await LocalStorage.open(join(dir, "repo"));
    const data = randomBytes(5 * MiB + 17);
    assert.deepEqual(await storage.put("backups/x/part-000000.age", unevenStream(data)), {
      size: data.length,
    });
    assert.ok((await getBytes(storage, "backups/x/part-000000.age")).equals(data));
    // The probe's temp file is gone too.
    assert.deepEqual(await readdir(join(dir, "repo")), ["backups"]);
  });
});

// A real filesystem that refuses O_DIRECT: ramfs fails open() with EINVAL. Mounting it needs root,
// which the test suite runs as (it installs packages and starts clusters too).
describe("direct writes on a filesystem that refuses them (ramfs)", () => {
  let mnt: string;
  before(async () => {
    mnt = await mkdtemp(join(tmpdir(), "strongbox-ramfs-"));
    try {
      execFileSync("mount", ["-t", "ramfs", "-o", "mode=0700", "ramfs", mnt], { stdio: "pipe" });
    } catch (e) {
      throw new Error(
        `mounting a ramfs at ${mnt} failed (needs root): ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`,
      );
    }
  });
  after(async () => {
    execFileSync("umount", [mnt]);
    await rm(mnt, { recursive: true, force: true });
  });

  test("openDirect says no (undefined) and the probe says false; neither leaves a file", async () => {
    assert.equal(await openDirect(join(mnt, "x"), 0o600), undefined);
    assert.equal(await supportsDirect(mnt, ".tmp-probe"), false);
    assert.deepEqual(await readdir(mnt), []);
  });

  test("LocalStorage falls back to buffered writes: the same bytes, mode 0600, no temp file left", async () => {
    const storage = await LocalStorage.open(join(mnt, "repo"));
    const data = randomBytes(5 * MiB + 17);
    // Twice: the first put probes the filesystem, the second uses the remembered answer.
    for (const key of ["backups/x/part-000000.age", "backups/x/part-000001.age"]) {
      assert.deepEqual(await storage.put(key, unevenStream(data)), { size: data.length });
      assert.ok((await getBytes(storage, key)).equals(data));
      assert.equal((await stat(join(mnt, "repo", key))).mode & 0o777, 0o600);
    }
    assert.deepEqual(await readdir(join(mnt, "repo", "backups", "x")), [
      "part-000000.age",
      "part-000001.age",
    ]);
    assert.deepEqual(await readdir(join(mnt, "repo")), ["backups"]);
  });
});
