// The age v1 format's building blocks: its constants, stanza and header types, and the primitives
// (HKDF, ChaCha20-Poly1305, unpadded base64, raw X25519) that the header and the payload share.
import {
  createCipheriv,
  createDecipheriv,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  hkdfSync,
  type KeyObject,
} from "node:crypto";
import { StrongboxError } from "../errors.ts";

export interface Stanza {
  type: string;
  args: string[];
  body: Buffer;
}

export interface ParsedHeader {
  stanzas: Stanza[];
  mac: Buffer;
  /** The header bytes the MAC covers: everything up to and including the "---" of the last line. */
  macInput: Buffer;
}

export const AGE_INTRO = "age-encryption.org/v1\n";
export const AGE_CHUNK_SIZE = 64 * 1024;
export const TAG_SIZE = 16;
export const ENC_CHUNK_SIZE = AGE_CHUNK_SIZE + TAG_SIZE;
export const FILE_KEY_SIZE = 16;
export const PAYLOAD_NONCE_SIZE = 16;
export const BODY_COLUMNS = 64;
/** Refuse headers larger than this instead of buffering without bound (about 10,000 recipients). */
export const AGE_MAX_HEADER_SIZE = 1024 * 1024;

export const X25519_LABEL = "age-encryption.org/v1/X25519";
export const SCRYPT_LABEL = "age-encryption.org/v1/scrypt";
export const IDENTITY_HRP = "AGE-SECRET-KEY-";
export const RECIPIENT_HRP = "age";
export const SCRYPT_DEFAULT_WORK_FACTOR = 18;
/** Same ceiling as the reference implementation: 2^22 iterations already take seconds and 4 GiB. */
export const SCRYPT_MAX_WORK_FACTOR = 22;
export const SCRYPT_SALT_SIZE = 16;

export const ZERO_NONCE = Buffer.alloc(12);
export const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
export const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

// ---------------------------------------------------------------------------------------------
// Small primitives

export function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, 32));
}

export function aeadSeal(key: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv("chacha20-poly1305", key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

export function aeadOpen(key: Buffer, sealed: Buffer): Buffer | undefined {
  const decipher = createDecipheriv("chacha20-poly1305", key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  const plaintext = decipher.update(sealed.subarray(0, sealed.length - TAG_SIZE));
  try {
    decipher.final();
  } catch {
    return undefined;
  }
  return plaintext;
}

export function b64Encode(data: Buffer): string {
  const s = data.toString("base64");
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  return s.slice(0, end);
}

export const B64_CHARS = /^[A-Za-z0-9+/]*$/;

/** Strict unpadded standard base64: rejects padding, other alphabets and non-canonical encodings. */
export function b64Decode(text: string): Buffer | undefined {
  if (text.length % 4 === 1 || !B64_CHARS.test(text)) return undefined;
  const data = Buffer.from(text, "base64");
  return b64Encode(data) === text ? data : undefined;
}

export function x25519PrivateKey(raw: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
}

export function x25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

export function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(X25519_SPKI_PREFIX.length);
}

export function rawPrivate(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "pkcs8" }).subarray(X25519_PKCS8_PREFIX.length);
}

/** X25519 that reports the all-zero shared secret of low-order points as undefined. */
export function x25519(privateKey: KeyObject, publicRaw: Buffer): Buffer | undefined {
  try {
    const secret = diffieHellman({ privateKey, publicKey: x25519PublicKey(publicRaw) });
    return secret.every((b) => b === 0) ? undefined : secret;
  } catch {
    return undefined;
  }
}

export function headerInvalid(message: string, details?: Record<string, unknown>): StrongboxError {
  return new StrongboxError("AGE_HEADER_INVALID", `invalid age header: ${message}`, {
    stage: "decrypt",
    hint: "the file is not an age v1 file or its header is corrupted",
    ...(details ? { details } : {}),
  });
}
