import assert from "node:assert/strict";
import { createPrivateKey } from "node:crypto";
import { describe, test } from "node:test";
import {
  canonicalJson,
  generateSigningKey,
  publicKeyFromPrivate,
  sign,
  verify,
} from "../../src/crypto/sign.ts";
import { StrongboxError } from "../../src/errors.ts";

function codeOf(err: unknown): string {
  assert.ok(err instanceof StrongboxError, `expected a StrongboxError, got ${String(err)}`);
  return err.code;
}

// RFC 8032, section 7.1, TEST 1 and TEST 2.
const RFC8032 = [
  {
    seed: "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
    publicKey: "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a",
    message: "",
    signature:
      "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
  },
  {
    seed: "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
    publicKey: "3d4017c3e843895a92b70aa74d1b7ebc9c982ccf2ec4968cc0cd55f12af4660c",
    message: "72",
    signature:
      "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
  },
];

function pemFromSeed(seedHex: string): string {
  const der = Buffer.concat([
    Buffer.from("302e020100300506032b657004220420", "hex"),
    Buffer.from(seedHex, "hex"),
  ]);
  return createPrivateKey({ key: der, format: "der", type: "pkcs8" })
    .export({ format: "pem", type: "pkcs8" })
    .toString();
}

describe("Ed25519 signing", () => {
  test("RFC 8032 known answers", () => {
    for (const v of RFC8032) {
      const pem = pemFromSeed(v.seed);
      const publicKey = `ed25519:${Buffer.from(v.publicKey, "hex").toString("base64")}`;
      assert.equal(publicKeyFromPrivate(pem), publicKey);
      const message = Buffer.from(v.message, "hex");
      const signature = sign(pem, message);
      assert.equal(Buffer.from(signature, "base64").toString("hex"), v.signature);
      assert.equal(verify(publicKey, message, signature), true);
      assert.equal(verify(publicKey, Buffer.from("x"), signature), false);
    }
  });

  test("generated keys sign and verify; tampering is detected", () => {
    const { privateKeyPem, publicKey } = generateSigningKey();
    assert.match(privateKeyPem, /^-----BEGIN PRIVATE KEY-----\n/);
    assert.match(publicKey, /^ed25519:[A-Za-z0-9+/]{43}=$/);
    assert.equal(publicKeyFromPrivate(privateKeyPem), publicKey);

    const data = Buffer.from(
      canonicalJson({ id: "20250101T000000Z-full", parts: [{ sha256: "ab", size: 1 }] }),
    );
    const signature = sign(privateKeyPem, data);
    assert.equal(Buffer.from(signature, "base64").length, 64);
    assert.equal(verify(publicKey, data, signature), true);

    const tampered = Buffer.from(data);
    tampered[5] = (tampered[5] ?? 0) ^ 1;
    assert.equal(verify(publicKey, tampered, signature), false);

    const sigBytes = Buffer.from(signature, "base64");
    sigBytes[10] = (sigBytes[10] ?? 0) ^ 1;
    assert.equal(verify(publicKey, data, sigBytes.toString("base64")), false);

    const other = generateSigningKey();
    assert.equal(verify(other.publicKey, data, signature), false);
  });

  test("a malformed signature is just invalid; a malformed key is an error", () => {
    const { privateKeyPem, publicKey } = generateSigningKey();
    const data = Buffer.from("payload");
    for (const bad of [
      "",
      "not base64!",
      "AAAA",
      sign(privateKeyPem, data).slice(0, -4),
      `${sign(privateKeyPem, data)}AA`,
    ]) {
      assert.equal(verify(publicKey, data, bad), false, bad);
    }
    for (const badKey of [
      "",
      "ed25519:",
      "ed25519:AAAA",
      publicKey.replace("ed25519:", "rsa:"),
      publicKey.slice(8),
    ]) {
      assert.throws(
        () => verify(badKey, data, "AAAA"),
        (e: unknown) => codeOf(e) === "SIGN_BAD_PUBLIC_KEY",
        badKey,
      );
    }
    assert.throws(
      () => sign("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n", data),
      (e: unknown) => {
        assert.equal(codeOf(e), "SIGN_BAD_PRIVATE_KEY");
        assert.ok(!(e as Error).message.includes("nope"));
        return true;
      },
    );
    const x25519Pem = createPrivateKey({
      key: Buffer.concat([Buffer.from("302e020100300506032b656e04220420", "hex"), Buffer.alloc(32, 7)]),
      format: "der",
      type: "pkcs8",
    })
      .export({ format: "pem", type: "pkcs8" })
      .toString();
    assert.throws(() => sign(x25519Pem, data), /x25519 key, not Ed25519/);
  });
});

describe("canonicalJson", () => {
  test("sorted keys at every level, no whitespace, arrays keep their order", () => {
    assert.equal(
      canonicalJson({ b: 1, a: { d: [3, 1, { z: true, y: null }], c: "x" }, "": 0 }),
      '{"":0,"a":{"c":"x","d":[3,1,{"y":null,"z":true}]},"b":1}',
    );
    assert.equal(canonicalJson('a\u2028"b'), JSON.stringify('a\u2028"b'));
    assert.equal(canonicalJson([]), "[]");
    assert.equal(canonicalJson({}), "{}");
    assert.equal(canonicalJson(-0), "0");
    assert.equal(canonicalJson(1e21), "1e+21");
    // UTF-16 code unit order: "B" < "a" < "é" < "😀"
    assert.equal(canonicalJson({ "😀": 1, é: 2, a: 3, B: 4 }), '{"B":4,"a":3,"é":2,"😀":1}');
  });

  test("same bytes for the same value, however it was built or round-tripped", () => {
    const a = {
      id: "x",
      stats: { raw: 10, stored: 4 },
      started: new Date(0),
      parent: undefined,
      tags: ["b", "a"],
    };
    const b = {
      tags: ["b", "a"],
      started: "1970-01-01T00:00:00.000Z",
      stats: { stored: 4, raw: 10 },
      id: "x",
    };
    assert.equal(canonicalJson(a), canonicalJson(b));
    assert.equal(canonicalJson(JSON.parse(JSON.stringify(a))), canonicalJson(a));
    assert.equal(canonicalJson([undefined, () => 1]), "[null,null]");
  });

  test("refuses what JSON cannot represent", () => {
    const cyclic: Record<string, unknown> = {};
    cyclic.self = cyclic;
    for (const bad of [
      Number.NaN,
      Number.POSITIVE_INFINITY,
      10n,
      cyclic,
      undefined,
      { deep: [1, Number.NaN] },
    ]) {
      assert.throws(
        () => canonicalJson(bad),
        (e: unknown) => codeOf(e) === "SIGN_CANONICAL_JSON",
      );
    }
    // The same object twice (not a cycle) is fine.
    const shared = { x: 1 };
    assert.equal(canonicalJson({ a: shared, b: shared }), '{"a":{"x":1},"b":{"x":1}}');
  });
});
