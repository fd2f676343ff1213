// The native part sealer (native/seal.c through src/pipeline/seal.ts), on real files: its parts are
// age files that the age CLI and our own decryptor read back to the stream, cut where the built-in
// writer cuts them, with the sizes and hashes of the stored bytes. Faults: the sealer killed half
// way, a full disk, an abort, a filesystem without O_DIRECT, an object already in place.
import assert from "node:assert/strict";
import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { decryptBuffer } from "../../src/crypto/age.ts";
import {
  type AgeRecipient,
  generateX25519Identity,
  parseIdentities,
  parseRecipient,
} from "../../src/crypto/age-keys.ts";
import { type PartRecord, writeParts } from "../../src/pipeline/parts.ts";
import { nativeSealer, type SealOptions, sealParts } from "../../src/pipeline/seal.ts";
import { openSpool } from "../../src/pipeline/spool.ts";
import { LocalStorage } from "../../src/storage/local.ts";
import { wrapStorage } from "../../src/storage/wrap.ts";

const { identity, recipient } = generateX25519Identity();
const recipients: AgeRecipient[] = [parseRecipient(recipient)];
const identities = parseIdentities(identity);
let work: string;
let identityFile: string;
let sealer: string;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "sb-seal-"));
  identityFile = join(work, "identity.txt");
  writeFileSync(identityFile, `${identity}\n`, { mode: 0o600 });
  const built = nativeSealer();
  // The test command builds it (scripts/build.ts); a missing sealer is a failure here, not a skip.
  assert.ok(built, "native/build/strongbox-seal is not built: run node scripts/build.ts");
  sealer = built;
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

let dirs = 0;
function newDir(): string {
  const dir = join(work, `d${dirs++}`);
  mkdirSync(dir, { mode: 0o700 });
  return dir;
}

/** A child whose stdout is `data`, then (with `holdMs`) stays open that long before it ends. */
function producer(data: Buffer, holdMs = 0): ChildProcess {
  const file = join(work, `in-${randomBytes(4).toString("hex")}`);
  writeFileSync(file, data);
  const script = holdMs > 0 ? `cat "$1"; exec sleep ${holdMs / 1000}` : 'exec cat "$1"';
  // stderr ignored: a producer whose reader was killed reports the broken pipe there.
  return spawn("bash", ["-c", script, "bash", file], { stdio: ["ignore", "pipe", "ignore"] });
}

async function seal(root: string, data: Buffer, partSize: number, extra: Partial<SealOptions> = {}) {
  const storage = wrapStorage(await LocalStorage.open(root));
  const child = producer(data, extra.signal ? 30_000 : 0);
  const sealing = sealParts(child.stdout!, {
    sealer,
    files: storage.localFiles()!,
    keyFor: (i) => `b/part-${i}.age`,
    partSize,
    recipients,
    ...extra,
  });
  child.stdout!.destroy();
  return { sealing, producer: child, storage };
}

function tempFiles(root: string): string[] {
  return readdirSync(root, { recursive: true, encoding: "utf8" }).filter((p) =>
    p.split("/").pop()!.startsWith(".tmp-"),
  );
}

/** Checks every part's size, hash and mode, and decrypts it with the age CLI and with ours. */
async function readBack(root: string, parts: PartRecord[]): Promise<Buffer> {
  const plain: Buffer[] = [];
  for (const p of parts) {
    const path = join(root, p.key);
    const stored = readFileSync(path);
    assert.equal(stored.length, p.size, `size of part ${p.index}`);
    assert.equal(createHash("sha256").update(stored).digest("hex"), p.sha256, `hash of part ${p.index}`);
    assert.equal(statSync(path).mode & 0o777, 0o600, `mode of part ${p.index}`);
    const byAge = execFileSync("age", ["-d", "-i", identityFile, path], { maxBuffer: 1 << 26 });
    const byUs = await decryptBuffer(stored, identities);
    assert.ok(byAge.equals(byUs), `age and strongbox read part ${p.index} alike`);
    assert.equal(byUs.length, p.plainSize);
    plain.push(byUs);
  }
  return Buffer.concat(plain);
}

async function builtinCuts(data: Buffer, partSize: number): Promise<number[]> {
  const storage = await LocalStorage.open(newDir());
  const parts = await writeParts(Readable.from([data]), {
    storage,
    keyFor: (i) => `b/part-${i}.age`,
    partSize,
    recipients,
  });
  return parts.map((p) => p.plainSize);
}

/**
 * A sealing spooled under TMPDIR (src/pipeline/spool.ts) whose parts are put into a local
 * repository at `root`, standing for a remote one.
 */
async function spooled(root: string, data: Buffer, partSize: number) {
  const storage = wrapStorage(await LocalStorage.open(root));
  const spool = await openSpool(storage);
  const child = producer(data);
  const sealing = sealParts(child.stdout!, {
    sealer,
    files: spool,
    keyFor: (i) => `b/part-${i}.age`,
    partSize,
    recipients,
    keysAfterCommit: true,
    commitConcurrency: 2,
  });
  child.stdout!.destroy();
  return { sealing, spool };
}

/** The rejection of a sealer killed with SIGKILL: its own one-line error. */
function killedSealer(e: Error & { code?: string }): boolean {
  assert.equal(e.code, "CHILD_FAILED");
  assert.match(e.message, /^strongbox-seal killed by SIGKILL/);
  return true;
}

describe("native part sealer", () => {
  it("seals parts that age and strongbox decrypt back to the stream, with stored sizes and hashes", async () => {
    const root = newDir();
    const data = randomBytes(2_500_000);
    const { sealing } = await seal(root, data, 1 << 20);
    const parts = await sealing.parts;
    assert.deepEqual(
      parts.map((p) => [p.index, p.key, p.plainSize]),
      [
        [0, "b/part-0.age", 1 << 20],
        [1, "b/part-1.age", 1 << 20],
        [2, "b/part-2.age", 2_500_000 - 2 * (1 << 20)],
      ],
    );
    assert.ok((await readBack(root, parts)).equals(data));
    assert.deepEqual(tempFiles(root), []);
  });

  it("cuts where the built-in writer cuts: exact multiples, parts that are not whole chunks", async () => {
    for (const [size, partSize] of [
      [2 * 65_536, 65_536], // every part one full chunk, which is also the last
      [300_000, 100_000], // parts end inside a chunk, and the stream ends on a part boundary
      [1000, 4096], // smaller than one chunk
    ] as const) {
      const root = newDir();
      const data = randomBytes(size);
      const parts = await (await seal(root, data, partSize)).sealing.parts;
      assert.deepEqual(
        parts.map((p) => p.plainSize),
        await builtinCuts(data, partSize),
        `cuts of ${size} bytes at ${partSize}`,
      );
      assert.ok((await readBack(root, parts)).equals(data), `${size} bytes at ${partSize}`);
    }
  });

  it("an empty stream makes one empty part", async () => {
    const root = newDir();
    const parts = await (await seal(root, Buffer.alloc(0), 1 << 20)).sealing.parts;
    assert.deepEqual(
      parts.map((p) => [p.index, p.plainSize]),
      [[0, 0]],
    );
    assert.equal((await readBack(root, parts)).length, 0);
  });

  it("seals for a passphrase recipient too (the header is made in Node)", async () => {
    const root = newDir();
    const data = randomBytes(200_000);
    const parts = await (
      await seal(root, data, 1 << 20, {
        recipients: [{ type: "scrypt", passphrase: "correct horse", workFactor: 10 }],
      })
    ).sealing.parts;
    const stored = readFileSync(join(root, parts[0]!.key));
    const plain = await decryptBuffer(stored, [{ type: "scrypt", passphrase: "correct horse" }]);
    assert.ok(plain.equals(data));
  });

  it("killed half way: the write fails and no temp file is left", async () => {
    const root = newDir();
    const abort = new AbortController();
    // The producer holds its stdout open after the data, so the sealer is mid-part when killed.
    const { sealing, producer: child } = await seal(root, randomBytes(1_500_000), 1 << 20, {
      signal: abort.signal,
    });
    while (!existsSync(join(root, "b/part-0.age"))) {
      await new Promise((r) => setTimeout(r, 20));
    }
    sealing.child.kill("SIGKILL");
    await assert.rejects(sealing.parts, killedSealer);
    child.kill();
    assert.deepEqual(tempFiles(root), []);
  });

  it("an abort stops the sealer and removes the part it was writing", async () => {
    const root = newDir();
    const abort = new AbortController();
    const { sealing, producer: child } = await seal(root, randomBytes(300_000), 1 << 20, {
      signal: abort.signal,
    });
    // The first part's temp file exists once the sealer has read the first bytes.
    while (tempFiles(root).length === 0) await new Promise((r) => setTimeout(r, 20));
    abort.abort(new Error("stop requested"));
    await assert.rejects(sealing.parts, /stop requested/);
    child.kill();
    assert.deepEqual(tempFiles(root), []);
    assert.deepEqual(readdirSync(join(root, "b")), []);
  });

  it("creates no file before `ready` settles, and fails with its rejection", async () => {
    const root = newDir();
    let release!: () => void;
    const ready = new Promise<void>((r) => {
      release = r;
    });
    const data = randomBytes(100_000);
    const { sealing } = await seal(root, data, 1 << 20, { ready });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(readdirSync(root), [], "nothing created while the housekeeping runs");
    release();
    assert.ok((await readBack(root, await sealing.parts)).equals(data));

    const root2 = newDir();
    const scan = Promise.reject(new Error("scan failed"));
    scan.catch(() => {}); // as the backup command's housekeeping promise is
    const failed = await seal(root2, data, 1 << 20, { ready: scan });
    await assert.rejects(failed.sealing.parts, /scan failed/);
    assert.deepEqual(readdirSync(root2), []);
  });

  it("a repository that disappears between parts is STORAGE_UNAVAILABLE, not a missing object", async () => {
    const root = join(newDir(), "repo");
    mkdirSync(root, { mode: 0o700 });
    const storage = wrapStorage(await LocalStorage.open(root));
    // Exactly one part, a pause (the repository goes), then the bytes that open the second part.
    const file = join(work, "two-parts");
    writeFileSync(file, randomBytes(1_200_000));
    const child = spawn(
      "bash",
      ["-c", 'head -c 1048576 "$1"; sleep 1; tail -c +1048577 "$1"', "bash", file],
      {
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    const sealing = sealParts(child.stdout!, {
      sealer,
      files: storage.localFiles()!,
      keyFor: (i) => `b/part-${i}.age`,
      partSize: 1 << 20,
      recipients,
    });
    child.stdout!.destroy();
    while (!existsSync(join(root, "b/part-0.age"))) await new Promise((r) => setTimeout(r, 20));
    await rm(root, { recursive: true, force: true });
    await assert.rejects(sealing.parts, (e: Error & { code?: string }) => {
      assert.equal(e.code, "STORAGE_UNAVAILABLE");
      assert.match(e.message, /^storage directory .*\/repo has disappeared$/);
      return true;
    });
  });

  it("never commits over an object already in place", async () => {
    const root = newDir();
    mkdirSync(join(root, "b"), { mode: 0o700 });
    writeFileSync(join(root, "b/part-0.age"), "theirs", { mode: 0o600 });
    const { sealing } = await seal(root, randomBytes(10_000), 1 << 20);
    await assert.rejects(sealing.parts, { code: "STORAGE_EXISTS" });
    assert.equal(readFileSync(join(root, "b/part-0.age"), "utf8"), "theirs");
    assert.deepEqual(tempFiles(root), []);
  });

  it("STRONGBOX_SEALER=node turns it off", () => {
    const saved = process.env.STRONGBOX_SEALER;
    process.env.STRONGBOX_SEALER = "node";
    try {
      assert.equal(nativeSealer(), undefined);
    } finally {
      if (saved === undefined) delete process.env.STRONGBOX_SEALER;
      else process.env.STRONGBOX_SEALER = saved;
    }
    assert.equal(nativeSealer(), sealer);
  });

  describe("spooled, for a repository whose objects are not local files (SFTP, S3)", () => {
    // The spool uploads each sealed part through the storage's put (src/pipeline/spool.ts); a local
    // repository stands for the remote one here.
    let saved: string | undefined;
    before(() => {
      saved = process.env.TMPDIR;
      process.env.TMPDIR = newDir();
    });
    after(() => {
      if (saved === undefined) delete process.env.TMPDIR;
      else process.env.TMPDIR = saved;
    });

    it("every part arrives whole, and leaves the spool once stored", async () => {
      const root = newDir();
      const data = randomBytes(5 * (1 << 20) + 12_345);
      const { sealing, spool } = await spooled(root, data, 1 << 20);
      const parts = await sealing.parts;
      assert.equal(parts.length, 6);
      assert.ok((await readBack(root, parts)).equals(data));
      assert.deepEqual(tempFiles(root), []);
      assert.deepEqual(readdirSync(spool.dir), []);
      await spool.close();
    });

    /** A spooled sealing into a storage whose uploads hang until released, as a slow link does. */
    async function heldBack(root: string, data: Buffer, holdMs = 0) {
      const local = wrapStorage(await LocalStorage.open(root));
      let release!: () => void;
      const gate = new Promise<void>((resolve) => {
        release = resolve;
      });
      const held = { puts: 0 };
      const slow = {
        description: local.description,
        put: async (...args: Parameters<typeof local.put>) => {
          held.puts++;
          await gate;
          return local.put(...args);
        },
      };
      const spool = await openSpool(slow as unknown as typeof local);
      const child = producer(data, holdMs);
      const sealing = sealParts(child.stdout!, {
        sealer,
        files: spool,
        keyFor: (i) => `b/part-${i}.age`,
        partSize: 1 << 20,
        recipients,
        keysAfterCommit: true,
        commitConcurrency: 2,
      });
      child.stdout!.destroy();
      // Until the spool holds four part files (the sealer then has no key for a fifth).
      const deadline = Date.now() + 20_000;
      while (readdirSync(spool.dir).length < 4 && Date.now() < deadline) await delay(10);
      return { sealing, spool, held, release, producer: child };
    }

    it("while uploads wait, at most four parts are in the spool, and the sealer waits for them", async () => {
      const root = newDir();
      const data = randomBytes(10 * (1 << 20) + 777);
      const { sealing, spool, held, release, producer: child } = await heldBack(root, data);
      let most = 0;
      for (let i = 0; i < 30; i++) {
        most = Math.max(most, readdirSync(spool.dir).length);
        await delay(10);
      }
      assert.equal(most, 4, "four part files, no more");
      assert.equal(held.puts, 2, "two uploads at a time");
      release();
      const parts = await sealing.parts;
      child.kill();
      assert.equal(parts.length, 11);
      assert.ok((await readBack(root, parts)).equals(data));
      assert.deepEqual(readdirSync(spool.dir), []);
      await spool.close();
    });

    it("the sealer killed with four parts spooled: its error, the spool emptied, no temp file", async () => {
      const root = newDir();
      const {
        sealing,
        spool,
        release,
        producer: child,
      } = await heldBack(root, randomBytes(10 << 20), 30_000);
      sealing.child.kill("SIGKILL");
      release();
      await assert.rejects(sealing.parts, killedSealer);
      child.kill();
      // The two uploads already running finish (parts without a manifest: housekeeping's); the
      // two parts waiting for them are never sent.
      assert.deepEqual(tempFiles(root), []);
      const stored = readdirSync(join(root, "b"));
      assert.ok(stored.length <= 2, stored.join(" "));
      assert.deepEqual(readdirSync(spool.dir), []);
      await spool.close();
    });

    it("an object already in place: STORAGE_EXISTS, and it is left as it was", async () => {
      const root = newDir();
      mkdirSync(join(root, "b"), { mode: 0o700 });
      writeFileSync(join(root, "b/part-1.age"), "theirs", { mode: 0o600 });
      const { sealing, spool } = await spooled(root, randomBytes(3 << 20), 1 << 20);
      await assert.rejects(sealing.parts, { code: "STORAGE_EXISTS" });
      assert.equal(readFileSync(join(root, "b/part-1.age"), "utf8"), "theirs");
      assert.deepEqual(tempFiles(root), []);
      assert.deepEqual(readdirSync(spool.dir), []);
      await spool.close();
    });
  });

  describe("on small filesystems (mounted here, needs root)", () => {
    const mounts: string[] = [];
    const mount = (type: string, options: string): string => {
      const mnt = newDir();
      execFileSync("mount", ["-t", type, "-o", options, type, mnt], { stdio: "pipe" });
      mounts.push(mnt);
      return mnt;
    };
    after(() => {
      for (const m of mounts) execFileSync("umount", [m]);
    });

    it("a full disk is STORAGE_FULL naming the place, and the partial file is removed", async () => {
      const mnt = mount("tmpfs", "size=1m,mode=0700");
      const { sealing } = await seal(mnt, randomBytes(3_000_000), 64 << 20);
      await assert.rejects(sealing.parts, (e: Error & { code?: string }) => {
        assert.equal(e.code, "STORAGE_FULL");
        assert.match(
          e.message,
          /^storage is full: no space left on the device holding .* \(while writing b\/part-0\.age\)$/,
        );
        return true;
      });
      assert.deepEqual(tempFiles(mnt), []);
      assert.deepEqual(readdirSync(join(mnt, "b")), []);
    });

    it("a full spool (TMPDIR) is STORAGE_FULL naming it, with the room it needs; nothing is stored", async () => {
      const mnt = mount("tmpfs", "size=1m,mode=0700");
      const root = newDir();
      const saved = process.env.TMPDIR;
      process.env.TMPDIR = mnt;
      let started: Awaited<ReturnType<typeof spooled>>;
      try {
        started = await spooled(root, randomBytes(3 << 20), 1 << 20);
      } finally {
        if (saved === undefined) delete process.env.TMPDIR;
        else process.env.TMPDIR = saved;
      }
      const { sealing, spool } = started;
      assert.ok(spool.dir.startsWith(`${mnt}/`), spool.dir);
      await assert.rejects(sealing.parts, (e: Error & { code?: string; hint?: string }) => {
        assert.equal(e.code, "STORAGE_FULL");
        assert.match(e.message, /^the spool directory .* is full while writing b\/part-0\.age: /);
        assert.match(e.hint ?? "", /four parts, 4 × backup\.partSize/);
        return true;
      });
      assert.deepEqual(readdirSync(spool.dir), []);
      assert.deepEqual(existsSync(join(root, "b")) ? readdirSync(join(root, "b")) : [], []);
      await spool.close();
      assert.deepEqual(readdirSync(mnt), []);
    });

    it("a filesystem that refuses O_DIRECT (ramfs) gets buffered writes", async () => {
      const mnt = mount("ramfs", "mode=0700");
      const data = randomBytes(1_300_000);
      const parts = await (await seal(mnt, data, 1 << 20)).sealing.parts;
      assert.equal(parts.length, 2);
      assert.ok((await readBack(mnt, parts)).equals(data));
      assert.deepEqual(tempFiles(mnt), []);
    });
  });
});
