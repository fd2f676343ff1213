// Ed25519 signatures for manifests, and the canonical JSON that gets signed. The public key is
// written "ed25519:<base64 of the raw 32 bytes>" so it fits on one line of a config file.

import {
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  type KeyObject,
  sign as signRaw,
  verify as verifyRaw,
} from "node:crypto";
import { StrongboxError } from "../errors.ts";

const PUBLIC_PREFIX = "ed25519:";
const ED25519_SPKI_PREFIX = Buffer.from("302a300506032b6570032100", "hex");
const STRICT_B64 = /^[A-Za-z0-9+/]*={0,2}$/;

function strictBase64(text: string, length: number): Buffer | undefined {
  if (!STRICT_B64.test(text)) return undefined;
  const bytes = Buffer.from(text, "base64");
  return bytes.length === length && bytes.toString("base64") === text ? bytes : undefined;
}

function formatPublic(key: KeyObject): string {
  const raw = key.export({ format: "der", type: "spki" }).subarray(ED25519_SPKI_PREFIX.length);
  return PUBLIC_PREFIX + raw.toString("base64");
}

function loadPrivate(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: "pem" });
  } catch (cause) {
    // Never echo the key material.
    throw new StrongboxError(
      "SIGN_BAD_PRIVATE_KEY",
      "the manifest signing key is not a valid PEM private key",
      {
        stage: "sign",
        hint: "expected a PKCS#8 PEM Ed25519 key as written by `strongbox key generate`",
        cause,
      },
    );
  }
  if (key.asymmetricKeyType !== "ed25519") {
    throw new StrongboxError(
      "SIGN_BAD_PRIVATE_KEY",
      `the manifest signing key is a ${key.asymmetricKeyType ?? "unknown"} key, not Ed25519`,
      { stage: "sign" },
    );
  }
  return key;
}

function loadPublic(publicKey: string): KeyObject {
  const raw = publicKey.startsWith(PUBLIC_PREFIX)
    ? strictBase64(publicKey.slice(PUBLIC_PREFIX.length), 32)
    : undefined;
  if (!raw) {
    throw new StrongboxError(
      "SIGN_BAD_PUBLIC_KEY",
      `invalid signing public key ${JSON.stringify(publicKey)}`,
      {
        stage: "verify",
        hint: 'expected "ed25519:" followed by the base64 of 32 bytes',
      },
    );
  }
  return createPublicKey({ key: Buffer.concat([ED25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

/** A new manifest signing key pair; the private PEM must be stored 0600. */

/** The key manifests are signed with, and its public half as manifests record it. */
export interface SigningKey {
  privateKeyPem: string;
  publicKey: string;
}

export function generateSigningKey(): { privateKeyPem: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  return {
    privateKeyPem: privateKey.export({ format: "pem", type: "pkcs8" }).toString(),
    publicKey: formatPublic(publicKey),
  };
}

export function publicKeyFromPrivate(privateKeyPem: string): string {
  return formatPublic(createPublicKey(loadPrivate(privateKeyPem)));
}

/** Signs `data`; returns the base64 of the 64-byte signature. */
export function sign(privateKeyPem: string, data: Buffer): string {
  return signRaw(null, data, loadPrivate(privateKeyPem)).toString("base64");
}

/**
 * True only for a valid signature. A malformed signature (it comes from the file being checked)
 * is simply invalid; a malformed public key (it comes from configuration) throws.
 */
export function verify(publicKey: string, data: Buffer, signature: string): boolean {
  const key = loadPublic(publicKey);
  if (typeof signature !== "string") return false;
  const sig = strictBase64(signature, 64);
  if (!sig) return false;
  return verifyRaw(null, data, key, sig);
}

/**
 * True only when a record's embedded signature ({ publicKey, value }, from the record itself, so
 * possibly anything) names one of the `trusted` keys and is valid for the record's signed bytes.
 * Never throws on what the record holds.
 */
export function signedByTrusted(
  signature: { publicKey?: unknown; value?: unknown } | undefined,
  trusted: string | readonly string[],
  signedBytes: () => Buffer,
): boolean {
  const keys: readonly string[] = typeof trusted === "string" ? [trusted] : trusted;
  if (!signature || typeof signature.publicKey !== "string" || !keys.includes(signature.publicKey))
    return false;
  try {
    return verify(signature.publicKey, signedBytes(), signature.value as string);
  } catch {
    return false;
  }
}

/**
 * JSON with object keys sorted (by UTF-16 code units) and no whitespace, so the same value always
 * gives the same bytes. Follows JSON.stringify otherwise (toJSON, undefined properties omitted),
 * so a value and its JSON.parse(JSON.stringify()) round trip serialize identically. Rejects what
 * JSON cannot represent faithfully (NaN, Infinity, bigint, cycles) instead of changing it.
 */
export function canonicalJson(value: unknown): string {
  const out = serialize(value, new Set(), "$");
  if (out === undefined) {
    throw new StrongboxError("SIGN_CANONICAL_JSON", "cannot serialize undefined as canonical JSON");
  }
  return out;
}

function serialize(input: unknown, seen: Set<object>, path: string): string | undefined {
  let value = input;
  if (
    value !== null &&
    typeof value === "object" &&
    typeof (value as { toJSON?: unknown }).toJSON === "function"
  ) {
    value = (value as { toJSON: () => unknown }).toJSON();
  }
  switch (typeof value) {
    case "string":
    case "boolean":
      return JSON.stringify(value);
    case "number":
      if (!Number.isFinite(value)) {
        throw new StrongboxError("SIGN_CANONICAL_JSON", `${path} is ${value}, which JSON cannot represent`);
      }
      return JSON.stringify(value);
    case "undefined":
    case "function":
    case "symbol":
      return undefined;
    case "bigint":
      throw new StrongboxError(
        "SIGN_CANONICAL_JSON",
        `${path} is a bigint; convert it to a string or number`,
      );
  }
  if (value === null) return "null";
  const obj = value as object;
  if (seen.has(obj)) throw new StrongboxError("SIGN_CANONICAL_JSON", `${path} is a circular reference`);
  seen.add(obj);
  let out: string;
  if (Array.isArray(obj)) {
    out = `[${obj.map((v, i) => serialize(v, seen, `${path}[${i}]`) ?? "null").join(",")}]`;
  } else {
    const parts: string[] = [];
    const record = obj as Record<string, unknown>;
    for (const key of Object.keys(record).sort()) {
      const v = serialize(record[key], seen, `${path}.${key}`);
      if (v !== undefined) parts.push(`${JSON.stringify(key)}:${v}`);
    }
    out = `{${parts.join(",")}}`;
  }
  seen.delete(obj);
  return out;
}
