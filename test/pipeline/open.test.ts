// The native payload opener (native/open.c through src/pipeline/open.ts), on real files: it gives
// back exactly what the age CLI and our own encryptor sealed, at every chunk and batch boundary; on
// all C2SP age test vectors it reaches the same verdict as Node's decryptor and releases the same
// plaintext; it reads no byte past the recorded size; killed or aborted, it fails with one clear
// error; and its key never appears on its command line.
import assert from "node:assert/strict";
import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { closeSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { mkdtemp, open, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, it } from "node:test";
import { inflateSync } from "node:zlib";
import { createDecryptStream, encryptBuffer } from "../../src/crypto/age.ts";
import {
  type AgeIdentity,
  generateX25519Identity,
  parseIdentities,
  parseRecipient,
} from "../../src/crypto/age-keys.ts";
import type { StrongboxError } from "../../src/errors.ts";
import { nativeOpener, openInto } from "../../src/pipeline/open.ts";
import { openFifo } from "../../src/util/fifo.ts";
import { sleep } from "../../src/util/proc.ts";

const CHUNK = 64 * 1024;
const ENC = CHUNK + 16;
const { identity, recipient } = generateX25519Identity();
const identities = parseIdentities(identity);
let work: string;
let opener: string;
let files = 0;

before(async () => {
  work = await mkdtemp(join(tmpdir(), "sb-open-"));
  const built = nativeOpener();
  // The test command builds it (scripts/build.ts); a missing opener is a failure here, not a skip.
  assert.ok(built, "native/build/strongbox-open is not built: run node scripts/build.ts");
  opener = built;
});
after(async () => {
  await rm(work, { recursive: true, force: true });
});

/**
 * Opens `file` (its first `size` bytes) with the native opener into a new file; the plaintext
 * written, and the error if it failed.
 */
async function openFile(file: Buffer, ids: AgeIdentity[] = identities, size = file.length) {
  const n = files++;
  const path = join(work, `in-${n}.age`);
  const outPath = join(work, `out-${n}`);
  writeFileSync(path, file);
  const handle = await open(path, "r");
  const out = openSync(outPath, "wx", 0o600);
  let error: StrongboxError | undefined;
  try {
    await openInto({ opener, file: handle, size, identities: ids, outFd: out });
  } catch (e) {
    error = e as StrongboxError;
  } finally {
    closeSync(out);
    await handle.close();
  }
  return { plaintext: readFileSync(outPath), error };
}

/** What Node's stream decryptor makes of the same file: its plaintext and its error code. */
async function nodeVerdict(file: Buffer, ids: AgeIdentity[]) {
  const out: Buffer[] = [];
  const stream = createDecryptStream(ids);
  stream.on("data", (b: Buffer) => out.push(b));
  let code = "ok";
  try {
    await pipeline(Readable.from([file]), stream);
  } catch (e) {
    code = (e as StrongboxError).code;
  }
  return { plaintext: Buffer.concat(out), code };
}

describe("the native payload opener", () => {
  it("gives back what the age CLI and our encryptor sealed, at every chunk and batch boundary", async () => {
    // 16 chunks are read and opened per pass: 16 and 17 chunks cross that boundary.
    const sizes = [
      0,
      1,
      CHUNK - 1,
      CHUNK,
      CHUNK + 1,
      16 * CHUNK,
      16 * CHUNK + 1,
      17 * CHUNK,
      3 * 1024 * 1024 + 7,
    ];
    const recipientFile = join(work, "recipient.txt");
    writeFileSync(recipientFile, `${recipient}\n`);
    for (const size of sizes) {
      const data = randomBytes(size);
      const byCli = execFileSync("age", ["-R", recipientFile], { input: data, maxBuffer: 64 << 20 });
      const byUs = await encryptBuffer(data, [parseRecipient(recipient)]);
      for (const [who, file] of [
        ["age CLI", byCli],
        ["encryptBuffer", byUs],
      ] as const) {
        const { plaintext, error } = await openFile(file);
        assert.equal(error, undefined, `${who}, ${size} bytes: ${error?.message}`);
        assert.ok(plaintext.equals(data), `${who}, ${size} bytes: the plaintext differs`);
      }
    }
  });

  it("reaches Node's verdict on every C2SP age test vector and releases the same plaintext", async () => {
    const kit = JSON.parse(readFileSync(new URL("../crypto/age-testkit.json", import.meta.url), "utf8")) as {
      vectors: {
        name: string;
        expect: string;
        payload?: string;
        identities?: string[];
        passphrases?: string[];
        compressed?: string;
        file: string;
      }[];
    };
    const verdicts = new Set<string>();
    for (const v of kit.vectors) {
      let file = Buffer.from(v.file, "base64");
      if (v.compressed === "zlib") file = inflateSync(file);
      const ids: AgeIdentity[] = [
        ...(v.identities ?? []).map((identity) => ({ type: "x25519" as const, identity })),
        ...(v.passphrases ?? []).map((passphrase) => ({ type: "scrypt" as const, passphrase })),
      ];
      if (ids.length === 0) ids.push(...identities);
      const node = await nodeVerdict(file, ids);
      const native = await openFile(file, ids);
      const code = native.error?.code ?? "ok";
      assert.equal(
        code,
        node.code,
        `${v.name}: the opener says ${code}, Node ${node.code}: ${native.error?.message}`,
      );
      assert.ok(native.plaintext.equals(node.plaintext), `${v.name}: different plaintext released`);
      if (v.payload)
        assert.equal(createHash("sha256").update(native.plaintext).digest("hex"), v.payload, v.name);
      verdicts.add(code);
    }
    // The vectors exercise every outcome the opener reports itself, not only success.
    for (const code of ["ok", "AGE_PAYLOAD_AUTH", "AGE_TRUNCATED", "AGE_NO_IDENTITY_MATCH", "AGE_HEADER_MAC"])
      assert.ok(verdicts.has(code), `no vector ended in ${code}`);
  });

  it("damaged, cut or extended files: the same verdict as Node, and only authenticated chunks released", async () => {
    const data = randomBytes(3 * CHUNK + 100);
    const sealed = await encryptBuffer(data, [parseRecipient(recipient)]);
    const payloadStart = sealed.length - (3 * ENC + 100 + 16);
    const flipped = Buffer.from(sealed);
    flipped[payloadStart + 2 * ENC + 10]! ^= 1;
    const oneChunk = await encryptBuffer(randomBytes(CHUNK), [parseRecipient(recipient)]);
    const cases: [string, Buffer, string][] = [
      ["a flipped byte in chunk 2", flipped, "AGE_PAYLOAD_AUTH"],
      ["cut after 3 whole chunks", sealed.subarray(0, payloadStart + 3 * ENC), "AGE_TRUNCATED"],
      ["cut inside chunk 3", sealed.subarray(0, payloadStart + 3 * ENC + 50), "AGE_PAYLOAD_AUTH"],
      ["cut inside a tag", sealed.subarray(0, payloadStart + 3 * ENC + 5), "AGE_TRUNCATED"],
      ["cut in the nonce", sealed.subarray(0, payloadStart - 3), "AGE_TRUNCATED"],
      ["bytes after the final chunk", Buffer.concat([oneChunk, randomBytes(40)]), "AGE_TRAILING_DATA"],
    ];
    for (const [what, file, expected] of cases) {
      const node = await nodeVerdict(file, identities);
      const native = await openFile(file);
      assert.equal(node.code, expected, `${what}: Node`);
      assert.equal(native.error?.code, expected, `${what}: ${native.error?.message}`);
      assert.match(native.error!.message, /^age /, what);
      assert.ok(native.plaintext.equals(node.plaintext), `${what}: different plaintext released`);
    }
    // The flipped chunk 2: chunks 0 and 1 were released, nothing of chunk 2 or after.
    assert.equal((await openFile(flipped)).plaintext.length, 2 * CHUNK);
  });

  it("reads nothing past the recorded size, and reports a file that shrank as truncated", async () => {
    const data = randomBytes(2 * CHUNK + 5);
    const sealed = await encryptBuffer(data, [parseRecipient(recipient)]);
    // Bytes after the record (a writer appending to the file after its check) are not read.
    const appended = await openFile(Buffer.concat([sealed, randomBytes(ENC)]), identities, sealed.length);
    assert.equal(appended.error, undefined, appended.error?.message);
    assert.ok(appended.plaintext.equals(data));
    // A record larger than the file (it shrank after its check).
    const shrunk = await openFile(sealed, identities, sealed.length + 1000);
    assert.equal(shrunk.error?.code, "AGE_TRUNCATED");
    assert.match(shrunk.error!.message, /ended while being read/);
  });

  it("killed or aborted mid-way: one clear error; its command line never holds the key", async () => {
    const sealed = await encryptBuffer(randomBytes(4 * 1024 * 1024), [parseRecipient(recipient)]);
    const path = join(work, "big.age");
    writeFileSync(path, sealed);
    for (const how of ["SIGKILL", "abort"] as const) {
      // Nobody reads the pipe: the opener blocks once it is full.
      const fifo = await openFifo();
      const handle = await open(path, "r");
      const controller = new AbortController();
      const running = openInto({
        opener,
        file: handle,
        size: sealed.length,
        identities,
        outFd: fifo.writeFd,
        signal: controller.signal,
      });
      running.catch(() => {});
      let pid = "";
      for (let i = 0; i < 100 && !pid; i++) {
        await sleep(50);
        pid = spawnSync("pgrep", ["-f", "-P", String(process.pid), "strongbox-open"], {
          encoding: "utf8",
        }).stdout.trim();
      }
      assert.ok(pid, "the opener is running");
      const argv = readFileSync(`/proc/${pid}/cmdline`, "latin1").split("\0").filter(Boolean);
      assert.deepEqual(argv, [opener], "no argument, so no key, on its command line");
      if (how === "SIGKILL") {
        process.kill(Number(pid), "SIGKILL");
        await assert.rejects(running, (e: StrongboxError) => {
          assert.equal(e.code, "CHILD_FAILED");
          assert.match(e.message, /^strongbox-open killed by SIGKILL/);
          return true;
        });
      } else {
        controller.abort(new Error("stopped by the test"));
        await assert.rejects(running, /stopped by the test/);
        assert.equal(spawnSync("kill", ["-0", pid]).status, 1, "the opener is gone");
      }
      await handle.close();
      closeSync(fifo.readFd);
      closeSync(fifo.writeFd);
    }
  });
});
