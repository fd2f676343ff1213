import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable, type Transform, Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { after, before, describe, test } from "node:test";
import { inflateSync } from "node:zlib";
import {
  createDecryptStream,
  createEncryptStream,
  decryptBuffer,
  encryptBuffer,
  rewrapHeader,
} from "../../src/crypto/age.ts";
import { headerLength, readHeader } from "../../src/crypto/age-header.ts";
import {
  type AgeIdentity,
  type AgeRecipient,
  generateX25519Identity,
  parseIdentities,
  parseRecipient,
  recipientFromIdentity,
} from "../../src/crypto/age-keys.ts";
import { StrongboxError } from "../../src/errors.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
const SIZES = [0, 1, 65535, 65536, 65537, 5 * MiB];

let dir: string;
before(() => {
  dir = mkdtempSync(join(tmpdir(), "strongbox-age-"));
});
after(() => {
  rmSync(dir, { recursive: true, force: true });
});

// ---------------------------------------------------------------------------------------------
// helpers

function split(data: Buffer, piece: number): Buffer[] {
  const parts: Buffer[] = [];
  for (let i = 0; i < data.length; i += piece) parts.push(data.subarray(i, i + piece));
  return parts;
}

async function through(stream: Transform, data: Buffer, piece = 8191): Promise<Buffer> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(split(data, piece)),
    stream,
    new Writable({
      write(chunk: Buffer, _encoding, callback) {
        out.push(chunk);
        callback();
      },
    }),
  );
  return Buffer.concat(out);
}

const encrypt = (data: Buffer, recipients: AgeRecipient[], piece?: number) =>
  through(createEncryptStream(recipients), data, piece);
const decrypt = (data: Buffer, identities: AgeIdentity[], piece?: number) =>
  through(createDecryptStream(identities), data, piece);

function x25519(recipient: string): AgeRecipient {
  return { type: "x25519", recipient };
}
function id(identity: string): AgeIdentity {
  return { type: "x25519", identity };
}

function codeOf(err: unknown): string {
  assert.ok(err instanceof StrongboxError, `expected a StrongboxError, got ${String(err)}`);
  return err.code;
}

async function rejectsWith(
  promise: Promise<unknown>,
  code: string,
  message?: RegExp,
): Promise<StrongboxError> {
  let caught: unknown;
  try {
    await promise;
  } catch (err) {
    caught = err;
  }
  assert.ok(caught !== undefined, `expected ${code}, but it succeeded`);
  assert.equal(codeOf(caught), code, (caught as Error).message);
  const err = caught as StrongboxError;
  if (message) assert.match(err.message, message);
  return err;
}

/** Both decryption paths must agree on the outcome. */
async function decryptFails(file: Buffer, identities: AgeIdentity[], code: string, message?: RegExp) {
  await rejectsWith(decrypt(file, identities), code, message);
  await rejectsWith(decryptBuffer(file, identities), code, message);
}

function age(args: string[], input?: Buffer) {
  const r = spawnSync("age", args, { input, maxBuffer: 64 * MiB });
  if (r.error) throw r.error;
  return r;
}

function writeIdentityFile(identity: string): string {
  const path = join(dir, `${createHash("sha256").update(identity).digest("hex").slice(0, 12)}.txt`);
  writeFileSync(path, `# test identity\n${identity}\n`, { mode: 0o600 });
  return path;
}

function payloadLength(size: number): number {
  return 16 + size + 16 * Math.max(1, Math.ceil(size / (64 * KiB)));
}

const alice = generateX25519Identity();
const bob = generateX25519Identity();
const carol = generateX25519Identity();

// ---------------------------------------------------------------------------------------------

describe("keys", () => {
  test("generated identity and recipient have the age encodings and match age-keygen -y", () => {
    assert.match(alice.identity, /^AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}$/);
    assert.match(alice.recipient, /^age1[qpzry9x8gf2tvdw0s3jn54khce6mua7l]{58}$/);
    assert.equal(recipientFromIdentity(alice.identity), alice.recipient);
    const keygen = spawnSync("age-keygen", ["-y", writeIdentityFile(alice.identity)]);
    assert.equal(keygen.stdout.toString().trim(), alice.recipient);
  });

  test("identity files written by age-keygen parse, comments and blank lines skipped", () => {
    const path = join(dir, "keygen.txt");
    const made = spawnSync("age-keygen", ["-o", path]);
    assert.equal(made.status, 0, made.stderr.toString());
    const text = readFileSync(path, "utf8");
    const publicLine = /# public key: (age1\S+)/.exec(text)?.[1];
    const ids = parseIdentities(`\n${text}\n# another comment\n\n${bob.identity}\r\n`);
    assert.equal(ids.length, 2);
    const first = ids[0];
    assert.ok(first?.type === "x25519");
    assert.equal(recipientFromIdentity(first.identity), publicLine);
  });

  test("parseIdentities rejects bad lines without printing the secret", () => {
    const broken = `${alice.identity.slice(0, -1)}${alice.identity.endsWith("Q") ? "P" : "Q"}`;
    assert.throws(
      () => parseIdentities(`# comment\n${broken}\n`),
      (e: unknown) => {
        assert.equal(codeOf(e), "AGE_BAD_IDENTITY");
        const message = (e as StrongboxError).oneLine();
        assert.match(message, /line 2/);
        assert.ok(!message.includes(broken.slice(16, 40)), message);
        return true;
      },
    );
    assert.throws(
      () => parseIdentities("# only a comment\n\n"),
      (e: unknown) => codeOf(e) === "AGE_BAD_IDENTITY",
    );
    assert.throws(() => parseIdentities(alice.recipient), /public recipient/);
    assert.throws(
      () => parseIdentities(alice.identity.toLowerCase()),
      (e: unknown) => codeOf(e) === "AGE_BAD_IDENTITY",
    );
  });

  test("parseRecipient normalises good recipients and names bad ones", () => {
    assert.deepEqual(parseRecipient(`  ${alice.recipient}\n`), {
      type: "x25519",
      recipient: alice.recipient,
    });
    const typo = `${alice.recipient.slice(0, 10)}${alice.recipient[10] === "q" ? "p" : "q"}${alice.recipient.slice(11)}`;
    assert.throws(
      () => parseRecipient(typo),
      (e: unknown) => codeOf(e) === "AGE_BAD_RECIPIENT" && (e as Error).message.includes(typo),
    );
    for (const bad of ["", "age1", "hello", "ssh-ed25519 AAAA", alice.recipient.toUpperCase()]) {
      assert.throws(
        () => parseRecipient(bad),
        (e: unknown) => codeOf(e) === "AGE_BAD_RECIPIENT",
        bad,
      );
    }
    // A secret pasted where the public key belongs must not be echoed back.
    assert.throws(
      () => parseRecipient(alice.identity),
      (e: unknown) =>
        codeOf(e) === "AGE_BAD_RECIPIENT" && !(e as Error).message.includes(alice.identity.slice(16)),
    );
  });

  test("encrypting validates recipients up front", () => {
    assert.throws(
      () => createEncryptStream([]),
      (e: unknown) => codeOf(e) === "AGE_BAD_RECIPIENT",
    );
    assert.throws(
      () => createEncryptStream([x25519("age1nope")]),
      (e: unknown) => codeOf(e) === "AGE_BAD_RECIPIENT",
    );
    assert.throws(
      () => createEncryptStream([x25519(alice.recipient), { type: "scrypt", passphrase: "pw" }]),
      /only recipient/,
    );
    assert.throws(
      () => createEncryptStream([{ type: "scrypt", passphrase: "pw", workFactor: 40 }]),
      (e: unknown) => codeOf(e) === "AGE_BAD_RECIPIENT",
    );
    assert.throws(
      () => createDecryptStream([]),
      (e: unknown) => codeOf(e) === "AGE_BAD_IDENTITY",
    );
  });
});

describe("interop with the age CLI", () => {
  for (const size of SIZES) {
    test(`${size} bytes: ours → age -d, age -r → ours`, async () => {
      const plain = randomBytes(size);
      const identityFile = writeIdentityFile(alice.identity);

      // Writes that straddle chunks, writes of exactly one chunk, and writes of many chunks.
      for (const piece of [10_000, 65_536, 200_000]) {
        const ours = await encrypt(plain, [x25519(alice.recipient)], piece);
        const { headerLength: hl } = readHeader(ours);
        // Exact size: no empty trailing chunk unless the payload is empty.
        assert.equal(ours.length, hl + payloadLength(size));
        const viaAge = age(["-d", "-i", identityFile], ours);
        assert.equal(viaAge.status, 0, viaAge.stderr.toString());
        assert.ok(viaAge.stdout.equals(plain), `written in pieces of ${piece}`);
      }

      const theirs = age(["-r", alice.recipient], plain);
      assert.equal(theirs.status, 0, theirs.stderr.toString());
      assert.ok((await decrypt(theirs.stdout, [id(alice.identity)], 65_552)).equals(plain));
      assert.ok((await decrypt(theirs.stdout, [id(alice.identity)], 777)).equals(plain));
      assert.ok((await decryptBuffer(theirs.stdout, [id(alice.identity)])).equals(plain));
      assert.ok(
        (await decryptBuffer(await encryptBuffer(plain, [x25519(bob.recipient)]), [id(bob.identity)])).equals(
          plain,
        ),
      );
    });
  }

  test("multiple recipients: each identity decrypts, with us and with age", async () => {
    const plain = randomBytes(100_000);
    const file = await encrypt(plain, [
      x25519(alice.recipient),
      x25519(bob.recipient),
      x25519(carol.recipient),
    ]);
    assert.equal(readHeader(file).header.stanzas.length, 3);
    for (const who of [alice, bob, carol]) {
      assert.ok((await decrypt(file, [id(who.identity)])).equals(plain));
      const r = age(["-d", "-i", writeIdentityFile(who.identity)], file);
      assert.equal(r.status, 0, r.stderr.toString());
      assert.ok(r.stdout.equals(plain));
    }
    const theirs = age(["-r", alice.recipient, "-r", bob.recipient], plain);
    assert.ok((await decrypt(theirs.stdout, [id(carol.identity), id(bob.identity)])).equals(plain));
  });

  test("known answer: a file written by age 1.1 for a fixed identity", async () => {
    const identity = "AGE-SECRET-KEY-14UZH926XC2FUM8KPUCF3NMC9T6YXRJLZKA3AVZVHSK6DA869ZNDQHVK5EJ";
    assert.equal(
      recipientFromIdentity(identity),
      "age1839h4gr5jw04kt3nmavhdddx7me98umxrhv5c5e908sfyteurymsjysusu",
    );
    const file = Buffer.from(
      "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IFgyNTUxOSA5OW9WRmpRRDVGdi9JZFBhZjJqWjF0RkJna01La1BTZGZsS2dhYk9tT2lvCnRkSHNlZFpEQitTYVhnWllGRUxlalJlalRWS2xVSWNYbVR2UloxcTJPUkEKLS0tIGtScE1WNWQ0MksvWS9YbllMZ0UvV0JmSms4bmd1S0txdzJNS0ZzWnZoQk0KBekQo55mOjYKcm3SmAVw9SrLCkqv/y87Yw0GwdyF4Er4krfeGlZdRHY4ktAhBUnjllfoozRDeg==",
      "base64",
    );
    assert.equal((await decryptBuffer(file, [id(identity)])).toString(), "Strongbox known answer\n");
  });
});

describe("passphrase (scrypt)", () => {
  test("known answer: a file written by `age -p` (work factor 18)", async () => {
    const file = Buffer.from(
      "YWdlLWVuY3J5cHRpb24ub3JnL3YxCi0+IHNjcnlwdCBoaS9reTVnZWU5Z2UxZkVlUGVxS2Z3IDE4CkRVcHg2cU9PK1JWUmFmMnkwcGwxSFNxalhPVytJZGVBMzM0dFdpb2NaL2sKLS0tIHVDdDNidU55NmUwYWpqakxreEV3cy8xRlVJbWEvaWIyNEdmODdMQjNtSVUKG4A6YzSzXYh0Xw2G6mVWA55qOdCco4qc5bhrlco42FIBfEQ88XTtk717BRrOIheAuwEptut8yg==",
      "base64",
    );
    const pass: AgeIdentity = { type: "scrypt", passphrase: "correct horse battery staple" };
    assert.equal((await decrypt(file, [pass])).toString(), "Strongbox known answer\n");
    await rejectsWith(
      decrypt(file, [id(alice.identity)]),
      "AGE_NO_IDENTITY_MATCH",
      /no passphrase was given/,
    );
  });

  test("round trip, header shape, and rewrap between passphrase and X25519", async () => {
    const plain = randomBytes(70_000);
    const file = await encrypt(plain, [{ type: "scrypt", passphrase: "pässword", workFactor: 10 }]);
    const { header } = readHeader(file);
    assert.equal(header.stanzas.length, 1);
    assert.equal(header.stanzas[0]?.type, "scrypt");
    assert.equal(header.stanzas[0]?.args[1], "10");
    assert.ok((await decrypt(file, [{ type: "scrypt", passphrase: "pässword" }])).equals(plain));
    assert.ok((await decryptBuffer(file, [{ type: "scrypt", passphrase: "pässword" }])).equals(plain));
    await decryptFails(
      file,
      [{ type: "scrypt", passphrase: "password" }],
      "AGE_NO_IDENTITY_MATCH",
      /passphrase is wrong/,
    );

    const toX = rewrapHeader(file, [{ type: "scrypt", passphrase: "pässword" }], [x25519(alice.recipient)]);
    const rekeyed = Buffer.concat([toX, file.subarray(readHeader(file).headerLength)]);
    assert.ok((await decrypt(rekeyed, [id(alice.identity)])).equals(plain));
  });

  test("our passphrase files decrypt with `age -d` and theirs with us (through a pty)", async (t) => {
    if (spawnSync("script", ["--version"]).status !== 0) {
      t.skip("util-linux `script` is not installed");
      return;
    }
    const plain = randomBytes(1000);
    const ourFile = join(dir, "ours-scrypt.age");
    const out = join(dir, "ours-scrypt.out");
    writeFileSync(
      ourFile,
      await encrypt(plain, [{ type: "scrypt", passphrase: "hunter2 hunter2", workFactor: 12 }]),
    );
    const r = spawnSync("script", ["-qec", `age -d -o '${out}' '${ourFile}'`, "/dev/null"], {
      input: "hunter2 hunter2\n",
      timeout: 30_000,
    });
    assert.equal(r.status, 0, r.stdout.toString());
    assert.ok(readFileSync(out).equals(plain));

    const plainFile = join(dir, "plain.bin");
    const theirFile = join(dir, "theirs-scrypt.age");
    writeFileSync(plainFile, plain);
    const w = spawnSync("script", ["-qec", `age -p -o '${theirFile}' '${plainFile}'`, "/dev/null"], {
      input: "hunter2 hunter2\nhunter2 hunter2\n",
      timeout: 30_000,
    });
    assert.equal(w.status, 0, w.stdout.toString());
    assert.ok(
      (await decrypt(readFileSync(theirFile), [{ type: "scrypt", passphrase: "hunter2 hunter2" }])).equals(
        plain,
      ),
    );
  });
});

describe("failures", () => {
  let file: Buffer;
  let plain: Buffer;
  let hl: number;
  before(async () => {
    plain = randomBytes(200_000); // 4 chunks: 3 full, a short last one
    file = await encrypt(plain, [x25519(alice.recipient), x25519(bob.recipient)]);
    hl = readHeader(file).headerLength;
  });

  test("wrong identity says what the file was encrypted to", async () => {
    const err = await rejectsWith(decrypt(file, [id(carol.identity)]), "AGE_NO_IDENTITY_MATCH");
    assert.match(err.message, /encrypted to 2 X25519 recipient\(s\); none matches the given identity/);
    await rejectsWith(
      decryptBuffer(file, [id(carol.identity), id(generateX25519Identity().identity)]),
      "AGE_NO_IDENTITY_MATCH",
      /none matches the 2 given identities/,
    );
    await rejectsWith(decrypt(file, [{ type: "scrypt", passphrase: "x" }]), "AGE_NO_IDENTITY_MATCH");
  });

  test("truncated files", async () => {
    const ids = [id(alice.identity)];
    await decryptFails(Buffer.alloc(0), ids, "AGE_TRUNCATED", /empty/);
    await decryptFails(file.subarray(0, 30), ids, "AGE_TRUNCATED", /header/);
    await decryptFails(file.subarray(0, hl - 1), ids, "AGE_TRUNCATED", /header/);
    await decryptFails(file.subarray(0, hl + 5), ids, "AGE_TRUNCATED", /nonce/);
    await decryptFails(file.subarray(0, hl + 16), ids, "AGE_TRUNCATED", /no chunks/);
    // Ends exactly after a full chunk: the missing final chunk is detectable.
    await decryptFails(file.subarray(0, hl + 16 + 65552), ids, "AGE_TRUNCATED", /without the final chunk/);
    await decryptFails(file.subarray(0, hl + 16 + 2 * 65552), ids, "AGE_TRUNCATED", /after 2 chunks/);
    await decryptFails(file.subarray(0, hl + 16 + 65552 + 7), ids, "AGE_TRUNCATED", /inside payload chunk/);
    // Ends inside a chunk: indistinguishable from a damaged last chunk, but the message says both.
    await decryptFails(file.subarray(0, file.length - 1), ids, "AGE_PAYLOAD_AUTH", /truncated or corrupted/);
    await decryptFails(
      file.subarray(0, hl + 16 + 100_000),
      ids,
      "AGE_PAYLOAD_AUTH",
      /truncated or corrupted/,
    );
  });

  test("a truncated file releases only authenticated plaintext", async () => {
    const released: Buffer[] = [];
    const stream = createDecryptStream([id(alice.identity)]);
    stream.on("data", (b: Buffer) => released.push(b));
    await assert.rejects(pipeline(Readable.from([file.subarray(0, hl + 16 + 2 * 65552)]), stream));
    const got = Buffer.concat(released);
    assert.equal(got.length, 2 * 65536);
    assert.ok(got.equals(plain.subarray(0, got.length)));
  });

  test("flipped payload bytes", async () => {
    const ids = [id(alice.identity)];
    const payloadStart = hl + 16;
    for (const at of [
      payloadStart,
      payloadStart + 65551,
      payloadStart + 65552 + 10,
      file.length - 20,
      file.length - 1,
    ]) {
      const bad = Buffer.from(file);
      bad[at] = (bad[at] ?? 0) ^ 0x01;
      await decryptFails(bad, ids, "AGE_PAYLOAD_AUTH", /failed authentication/);
    }
    const badNonce = Buffer.from(file);
    badNonce[hl + 3] = (badNonce[hl + 3] ?? 0) ^ 0x80;
    await decryptFails(badNonce, ids, "AGE_PAYLOAD_AUTH");
  });

  test("trailing data after the final chunk", async () => {
    const full = await encrypt(randomBytes(65536), [x25519(alice.recipient)]);
    const ids = [id(alice.identity)];
    await decryptFails(Buffer.concat([full, Buffer.from("x")]), ids, "AGE_TRAILING_DATA");
    await decryptFails(Buffer.concat([full, full]), ids, "AGE_TRAILING_DATA");
    // After a short final chunk the extra bytes just make that chunk fail.
    await decryptFails(Buffer.concat([file, Buffer.from("x")]), ids, "AGE_PAYLOAD_AUTH");
  });

  test("every flipped header byte is caught before any plaintext", async () => {
    const ids = [id(alice.identity)];
    const seen = new Set<string>();
    for (let at = 0; at < hl; at++) {
      const bad = Buffer.from(file);
      bad[at] = (bad[at] ?? 0) ^ 0x04;
      const released: Buffer[] = [];
      const stream = createDecryptStream(ids);
      stream.on("data", (b: Buffer) => released.push(b));
      let code = "ok";
      try {
        await pipeline(Readable.from([bad]), stream);
      } catch (err) {
        code = codeOf(err);
      }
      assert.ok(
        ["AGE_HEADER_INVALID", "AGE_NO_IDENTITY_MATCH", "AGE_HEADER_MAC"].includes(code),
        `byte ${at}: ${code}`,
      );
      assert.equal(released.length, 0, `byte ${at} released plaintext`);
      seen.add(code);
    }
    assert.ok(
      seen.has("AGE_HEADER_MAC") && seen.has("AGE_HEADER_INVALID") && seen.has("AGE_NO_IDENTITY_MATCH"),
    );
  });

  test("a well-formed stanza added to a header breaks its MAC", async () => {
    const text = file.subarray(0, hl).toString("latin1");
    const forged = text.replace("\n---", "\n-> grease x\nAAAA\n---");
    const bad = Buffer.concat([Buffer.from(forged, "latin1"), file.subarray(hl)]);
    await decryptFails(bad, [id(alice.identity)], "AGE_HEADER_MAC");
  });

  test("not an age file, armored, other versions", async () => {
    const ids = [id(alice.identity)];
    await decryptFails(Buffer.from("hello world\n"), ids, "AGE_HEADER_INVALID");
    await decryptFails(
      Buffer.from("-----BEGIN AGE ENCRYPTED FILE-----\nYWdl\n"),
      ids,
      "AGE_HEADER_INVALID",
      /armored/,
    );
    await decryptFails(
      Buffer.from("age-encryption.org/v2\n-> X\n\n--- x\n"),
      ids,
      "AGE_HEADER_INVALID",
      /version/,
    );
    // A non-age stream fails on its first bytes, without waiting for more input.
    const stream = createDecryptStream(ids);
    const failed = new Promise((resolve) => stream.on("error", resolve));
    stream.write(Buffer.from("PK\x03\x04"));
    assert.equal(codeOf(await failed), "AGE_HEADER_INVALID");
  });
});

describe("rewrapHeader", () => {
  test("re-keys a file without touching its payload", async () => {
    const plain = randomBytes(300_000);
    const file = await encrypt(plain, [x25519(alice.recipient)]);
    const old = readHeader(file).headerLength;
    assert.equal(headerLength(file.subarray(0, old)), old);
    assert.equal(headerLength(file.subarray(0, old - 1)), undefined);

    // Works from the header bytes alone too.
    const newHeader = rewrapHeader(
      file.subarray(0, old),
      [id(alice.identity)],
      [x25519(bob.recipient), x25519(carol.recipient)],
    );
    assert.equal(headerLength(newHeader), newHeader.length);
    const rekeyed = Buffer.concat([newHeader, file.subarray(old)]);
    assert.ok(rekeyed.subarray(newHeader.length).equals(file.subarray(old)), "payload bytes unchanged");

    assert.ok((await decrypt(rekeyed, [id(bob.identity)])).equals(plain));
    assert.ok((await decrypt(rekeyed, [id(carol.identity)])).equals(plain));
    await decryptFails(rekeyed, [id(alice.identity)], "AGE_NO_IDENTITY_MATCH");
    const r = age(["-d", "-i", writeIdentityFile(bob.identity)], rekeyed);
    assert.equal(r.status, 0, r.stderr.toString());
    assert.ok(r.stdout.equals(plain));

    assert.throws(
      () => rewrapHeader(file, [id(carol.identity)], [x25519(bob.recipient)]),
      (e: unknown) => codeOf(e) === "AGE_NO_IDENTITY_MATCH",
    );
    const tampered = Buffer.from(file);
    tampered[old - 5] = (tampered[old - 5] ?? 0) ^ 0x01;
    assert.throws(
      () => rewrapHeader(tampered, [id(alice.identity)], [x25519(bob.recipient)]),
      (e: unknown) => ["AGE_HEADER_MAC", "AGE_HEADER_INVALID"].includes(codeOf(e)),
    );
    assert.throws(
      () => rewrapHeader(file.subarray(0, old - 3), [id(alice.identity)], [x25519(bob.recipient)]),
      (e: unknown) => codeOf(e) === "AGE_TRUNCATED",
    );
  });
});

describe("C2SP age test vectors", () => {
  interface Vector {
    name: string;
    expect: string;
    payload?: string;
    identities?: string[];
    passphrases?: string[];
    compressed?: string;
    file: string;
  }
  const kit = JSON.parse(readFileSync(new URL("./age-testkit.json", import.meta.url), "utf8")) as {
    vectors: Vector[];
  };
  // Our codes for the vectors' outcomes. A file cut inside the header or the nonce is reported as
  // truncated, which is the more useful name for the same failure.
  const expected: Record<string, string[]> = {
    success: ["ok"],
    "no match": ["AGE_NO_IDENTITY_MATCH"],
    "HMAC failure": ["AGE_HEADER_MAC"],
    "header failure": ["AGE_HEADER_INVALID", "AGE_TRUNCATED"],
    "payload failure": ["AGE_PAYLOAD_AUTH", "AGE_TRUNCATED", "AGE_TRAILING_DATA"],
  };

  test(`all ${kit.vectors.length} non-armored, non-hybrid vectors`, async () => {
    for (const v of kit.vectors) {
      let file = Buffer.from(v.file, "base64");
      if (v.compressed === "zlib") file = inflateSync(file);
      const ids: AgeIdentity[] = [
        ...(v.identities ?? []).map(id),
        ...(v.passphrases ?? []).map((passphrase) => ({ type: "scrypt" as const, passphrase })),
      ];
      if (ids.length === 0) ids.push(id(alice.identity));
      const hash = createHash("sha256");
      const stream = createDecryptStream(ids);
      stream.on("data", (b: Buffer) => hash.update(b));
      let outcome = "ok";
      try {
        await pipeline(Readable.from(split(file, 4096)), stream);
      } catch (err) {
        outcome = codeOf(err);
      }
      assert.ok(expected[v.expect]?.includes(outcome), `${v.name}: expected ${v.expect}, got ${outcome}`);
      if (v.payload) assert.equal(hash.digest("hex"), v.payload, `${v.name}: released plaintext`);
      if (v.expect !== "success" && v.expect !== "payload failure") continue;
      // Same outcome from the in-memory path.
      let bufferOutcome = "ok";
      try {
        await decryptBuffer(file, ids);
      } catch (err) {
        bufferOutcome = codeOf(err);
      }
      assert.equal(bufferOutcome, outcome, v.name);
    }
  });
});

describe("fuzz", () => {
  // Deterministic, so a failure reproduces.
  function prng(seed: number) {
    let s = seed >>> 0;
    return (n: number) => {
      s = (s + 0x6d2b79f5) >>> 0;
      let t = s;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n;
    };
  }

  function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`decryptor hung on ${what}`)), ms);
    });
    return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
  }

  test("mutated and random inputs only ever raise StrongboxError", async () => {
    const rand = prng(0x5eed);
    const int = (n: number) => Math.floor(rand(n));
    const ids: AgeIdentity[] = [id(alice.identity), { type: "scrypt", passphrase: "pw" }];
    const seeds = [
      await encrypt(Buffer.alloc(0), [x25519(alice.recipient)]),
      await encrypt(randomBytes(100), [x25519(alice.recipient), x25519(bob.recipient)]),
      await encrypt(randomBytes(140_000), [x25519(alice.recipient)]),
      await encrypt(randomBytes(100), [{ type: "scrypt", passphrase: "pw", workFactor: 2 }]),
    ];
    const mutations: Array<(f: Buffer) => Buffer> = [
      (f) => {
        const b = Buffer.from(f);
        const at = int(b.length);
        b[at] = (b[at] ?? 0) ^ (1 << int(8));
        return b;
      },
      (f) => {
        const b = Buffer.from(f);
        for (let i = 0; i < 1 + int(8); i++) b[int(b.length)] = int(256);
        return b;
      },
      (f) => f.subarray(0, int(f.length)),
      (f) => {
        const at = int(f.length);
        return Buffer.concat([f.subarray(0, at), randomBytes(1 + int(40)), f.subarray(at)]);
      },
      (f) => {
        const at = int(f.length);
        return Buffer.concat([f.subarray(0, at), f.subarray(at + 1 + int(40))]);
      },
      (f) => {
        // Replace one header line with printable junk.
        const text = f.subarray(0, readHeader(f).headerLength).toString("latin1").split("\n");
        const line = int(text.length);
        text[line] = Array.from({ length: int(80) }, () => String.fromCharCode(0x20 + int(95))).join("");
        return Buffer.concat([
          Buffer.from(text.join("\n"), "latin1"),
          f.subarray(readHeader(f).headerLength),
        ]);
      },
      () => randomBytes(int(300)),
      () => Buffer.concat([Buffer.from("age-encryption.org/v1\n"), randomBytes(int(300))]),
      () =>
        Buffer.from(
          `age-encryption.org/v1\n-> X25519 ${randomBytes(32).toString("base64").replace(/=+$/, "")}\n${randomBytes(
            int(60),
          )
            .toString("base64")
            .replace(/=+$/, "")}\n--- ${randomBytes(32).toString("base64").replace(/=+$/, "")}\n`,
        ),
    ];
    let runs = 0;
    for (let i = 0; i < 600; i++) {
      const seed = seeds[int(seeds.length)] as Buffer;
      const mutate = mutations[int(mutations.length)] as (f: Buffer) => Buffer;
      const input = mutate(seed);
      if (input.equals(seed)) continue;
      runs++;
      const what = `case ${i}`;
      let streamCode = "ok";
      try {
        await withTimeout(decrypt(input, ids, 1 + int(70_000)), 10_000, what);
      } catch (err) {
        streamCode = codeOf(err);
      }
      let bufferCode = "ok";
      try {
        await withTimeout(decryptBuffer(input, ids), 10_000, what);
      } catch (err) {
        bufferCode = codeOf(err);
      }
      assert.notEqual(streamCode, "ok", `${what} decrypted a mutated file`);
      assert.equal(bufferCode, streamCode, what);
      try {
        headerLength(input);
      } catch (err) {
        codeOf(err);
      }
    }
    assert.ok(runs > 500);
  });
});

describe("throughput", () => {
  test("256 MiB encrypted and decrypted (printed, not asserted)", async (t) => {
    const block = randomBytes(MiB);
    const total = 256;
    let bytes = 0;
    const sink = (keep?: Buffer[]) =>
      new Writable({
        highWaterMark: MiB,
        write(chunk: Buffer, _encoding, callback) {
          bytes += chunk.length;
          keep?.push(chunk);
          callback();
        },
      });
    const blocks = (n: number) =>
      Readable.from(
        (function* () {
          for (let i = 0; i < n; i++) yield block;
        })(),
      );
    const rssBefore = process.memoryUsage().rss;
    let start = performance.now();
    await pipeline(blocks(total), createEncryptStream([x25519(alice.recipient)]), sink());
    const encSeconds = (performance.now() - start) / 1000;
    assert.ok(bytes > total * MiB);
    const rssGrowth = (process.memoryUsage().rss - rssBefore) / MiB;

    // Decrypt a stored 64 MiB file four times, read in 64 KiB pieces like a file stream.
    const kept: Buffer[] = [];
    await pipeline(blocks(total / 4), createEncryptStream([x25519(alice.recipient)]), sink(kept));
    const pieces = split(Buffer.concat(kept), 64 * KiB);
    start = performance.now();
    bytes = 0;
    for (let i = 0; i < 4; i++) {
      await pipeline(Readable.from(pieces), createDecryptStream([id(alice.identity)]), sink());
    }
    const decSeconds = (performance.now() - start) / 1000;
    assert.equal(bytes, total * MiB);
    t.diagnostic(
      `encrypt ${(total / encSeconds).toFixed(0)} MiB/s (RSS growth ${rssGrowth.toFixed(0)} MiB), ` +
        `decrypt ${(total / decSeconds).toFixed(0)} MiB/s`,
    );
  });
});
