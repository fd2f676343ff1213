// The age v1 file format (https://c2sp.org/age), X25519 and scrypt recipients, on node:crypto only.
// Files written here decrypt with `age -d -i identity.txt`, and files from `age -r` decrypt here:
// that is what makes the break-glass restore work with standard tools.
//
// Layout of a file: a text header (intro line, one stanza per recipient wrapping the 16-byte file
// key, "---" and an HMAC of the header), a 16-byte nonce, then the payload in STREAM chunks of
// 64 KiB plaintext, each sealed with ChaCha20-Poly1305 under a key derived from file key + nonce.

import {
  createCipheriv,
  createDecipheriv,
  createHmac,
  createPrivateKey,
  createPublicKey,
  createSecretKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
  type KeyObject,
  randomBytes,
  scrypt,
  scryptSync,
  timingSafeEqual,
} from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { StrongboxError } from "../errors.ts";
import { bech32Decode, bech32Encode } from "./bech32.ts";

export type AgeRecipient =
  | { type: "x25519"; recipient: string }
  | { type: "scrypt"; passphrase: string; workFactor?: number };

export type AgeIdentity = { type: "x25519"; identity: string } | { type: "scrypt"; passphrase: string };

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
const TAG_SIZE = 16;
const ENC_CHUNK_SIZE = AGE_CHUNK_SIZE + TAG_SIZE;
const FILE_KEY_SIZE = 16;
const PAYLOAD_NONCE_SIZE = 16;
const BODY_COLUMNS = 64;
/** Refuse headers larger than this instead of buffering without bound (about 10,000 recipients). */
export const AGE_MAX_HEADER_SIZE = 1024 * 1024;

const X25519_LABEL = "age-encryption.org/v1/X25519";
const SCRYPT_LABEL = "age-encryption.org/v1/scrypt";
const IDENTITY_HRP = "AGE-SECRET-KEY-";
const RECIPIENT_HRP = "age";
export const SCRYPT_DEFAULT_WORK_FACTOR = 18;
/** Same ceiling as the reference implementation: 2^22 iterations already take seconds and 4 GiB. */
export const SCRYPT_MAX_WORK_FACTOR = 22;
const SCRYPT_SALT_SIZE = 16;

const ZERO_NONCE = Buffer.alloc(12);
const X25519_PKCS8_PREFIX = Buffer.from("302e020100300506032b656e04220420", "hex");
const X25519_SPKI_PREFIX = Buffer.from("302a300506032b656e032100", "hex");

// ---------------------------------------------------------------------------------------------
// Small primitives

function hkdf(ikm: Buffer, salt: Buffer, info: string): Buffer {
  return Buffer.from(hkdfSync("sha256", ikm, salt, info, 32));
}

function aeadSeal(key: Buffer, plaintext: Buffer): Buffer {
  const cipher = createCipheriv("chacha20-poly1305", key, ZERO_NONCE, { authTagLength: TAG_SIZE });
  return Buffer.concat([cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
}

function aeadOpen(key: Buffer, sealed: Buffer): Buffer | undefined {
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

function b64Encode(data: Buffer): string {
  const s = data.toString("base64");
  let end = s.length;
  while (end > 0 && s.charCodeAt(end - 1) === 0x3d) end--;
  return s.slice(0, end);
}

const B64_CHARS = /^[A-Za-z0-9+/]*$/;

/** Strict unpadded standard base64: rejects padding, other alphabets and non-canonical encodings. */
function b64Decode(text: string): Buffer | undefined {
  if (text.length % 4 === 1 || !B64_CHARS.test(text)) return undefined;
  const data = Buffer.from(text, "base64");
  return b64Encode(data) === text ? data : undefined;
}

function x25519PrivateKey(raw: Buffer): KeyObject {
  return createPrivateKey({ key: Buffer.concat([X25519_PKCS8_PREFIX, raw]), format: "der", type: "pkcs8" });
}

function x25519PublicKey(raw: Buffer): KeyObject {
  return createPublicKey({ key: Buffer.concat([X25519_SPKI_PREFIX, raw]), format: "der", type: "spki" });
}

function rawPublic(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "spki" }).subarray(X25519_SPKI_PREFIX.length);
}

function rawPrivate(key: KeyObject): Buffer {
  return key.export({ format: "der", type: "pkcs8" }).subarray(X25519_PKCS8_PREFIX.length);
}

/** X25519 that reports the all-zero shared secret of low-order points as undefined. */
function x25519(privateKey: KeyObject, publicRaw: Buffer): Buffer | undefined {
  try {
    const secret = diffieHellman({ privateKey, publicKey: x25519PublicKey(publicRaw) });
    return secret.every((b) => b === 0) ? undefined : secret;
  } catch {
    return undefined;
  }
}

function headerInvalid(message: string, details?: Record<string, unknown>): StrongboxError {
  return new StrongboxError("AGE_HEADER_INVALID", `invalid age header: ${message}`, {
    stage: "decrypt",
    hint: "the file is not an age v1 file or its header is corrupted",
    ...(details ? { details } : {}),
  });
}

// ---------------------------------------------------------------------------------------------
// Keys and their text forms

interface X25519Secret {
  privateKey: KeyObject;
  publicRaw: Buffer;
}

/** Makes a new identity (keep secret, mode 0600) and the recipient that encrypts to it. */
export function generateX25519Identity(): { identity: string; recipient: string } {
  const { privateKey, publicKey } = generateKeyPairSync("x25519");
  return {
    identity: bech32Encode(IDENTITY_HRP, rawPrivate(privateKey)),
    recipient: bech32Encode(RECIPIENT_HRP, rawPublic(publicKey)),
  };
}

function badIdentity(message: string, hint?: string): StrongboxError {
  return new StrongboxError("AGE_BAD_IDENTITY", message, {
    stage: "key",
    hint: hint ?? "an age identity is one line starting with AGE-SECRET-KEY-1, as written by age-keygen",
  });
}

// The secret never appears in an error: only what kind of thing it looks like.
function decodeIdentity(identity: string, where = "the age identity"): X25519Secret {
  const text = identity.trim();
  if (text.startsWith("age1")) {
    throw badIdentity(`${where} is a public recipient (age1…), not a secret identity`);
  }
  if (text.startsWith("AGE-PLUGIN-"))
    throw badIdentity(`${where} is an age plugin identity; plugins are not supported`);
  if (text.startsWith("-----BEGIN") || text.startsWith("ssh-")) {
    throw badIdentity(`${where} looks like an SSH key; only native age X25519 identities are supported`);
  }
  const decoded = bech32Decode(text);
  if (!decoded || decoded.hrp !== IDENTITY_HRP || decoded.data.length !== 32) {
    throw badIdentity(`${where} is not a valid AGE-SECRET-KEY-1… identity (bad encoding or checksum)`);
  }
  try {
    const privateKey = x25519PrivateKey(decoded.data);
    return { privateKey, publicRaw: rawPublic(createPublicKey(privateKey)) };
  } catch (cause) {
    throw new StrongboxError("AGE_BAD_IDENTITY", `${where} could not be loaded as an X25519 key`, { cause });
  }
}

/** The age1… recipient (public key) of an AGE-SECRET-KEY-1… identity. */
export function recipientFromIdentity(identity: string): string {
  return bech32Encode(RECIPIENT_HRP, decodeIdentity(identity).publicRaw);
}

function shown(value: string): string {
  const v = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return JSON.stringify(v);
}

function badRecipient(message: string, value?: string): StrongboxError {
  return new StrongboxError("AGE_BAD_RECIPIENT", message, {
    stage: "key",
    hint: "an age recipient looks like age1… (62 characters); `age-keygen -y IDENTITY_FILE` prints it",
    ...(value === undefined ? {} : { details: { recipient: value } }),
  });
}

function decodeRecipient(text: string): Buffer {
  const value = text.trim();
  if (value.startsWith("AGE-SECRET-KEY-")) {
    // Do not echo it: someone pasted their secret key where the public one belongs.
    throw badRecipient(
      "invalid age recipient: this is a secret identity (AGE-SECRET-KEY-…), not a recipient",
    );
  }
  if (value.startsWith("ssh-")) {
    throw badRecipient(`invalid age recipient ${shown(value)}: SSH recipients are not supported`, value);
  }
  const decoded = bech32Decode(value);
  if (!decoded) {
    throw badRecipient(`invalid age recipient ${shown(value)}: not a valid bech32 age1… string`, value);
  }
  if (decoded.hrp !== RECIPIENT_HRP) {
    const what = decoded.hrp.startsWith("age1") ? "plugin recipients are not supported" : "expected age1…";
    throw badRecipient(`invalid age recipient ${shown(value)}: ${what}`, value);
  }
  if (decoded.data.length !== 32) {
    throw badRecipient(`invalid age recipient ${shown(value)}: key must be 32 bytes`, value);
  }
  return decoded.data;
}

/** Validates an X25519 recipient (age1…, lower case like age itself requires); returns it trimmed. */
export function parseRecipient(text: string): { type: "x25519"; recipient: string } {
  return { type: "x25519", recipient: bech32Encode(RECIPIENT_HRP, decodeRecipient(text)) };
}

/** Parses an age identity file: one AGE-SECRET-KEY-1… per line, `#` comments and blank lines. */
export function parseIdentities(fileText: string): AgeIdentity[] {
  const identities: AgeIdentity[] = [];
  const lines = fileText.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] ?? "").trim();
    if (line === "" || line.startsWith("#")) continue;
    decodeIdentity(line, `line ${i + 1} of the identity file`);
    identities.push({ type: "x25519", identity: line });
  }
  if (identities.length === 0) throw badIdentity("the identity file contains no identities");
  return identities;
}

// ---------------------------------------------------------------------------------------------
// scrypt: derivation is the only slow step, so wrap/unwrap are written once as generators that
// yield scrypt requests, and run either synchronously (rewrapHeader) or on the thread pool.

interface ScryptRequest {
  passphrase: Buffer;
  salt: Buffer;
  logN: number;
}
type KdfSteps<T> = Generator<ScryptRequest, T, Buffer>;

function scryptOptions(logN: number) {
  const N = 2 ** logN;
  return { N, r: 8, p: 1, maxmem: 256 * N * 8 + 32 * 1024 * 1024 };
}

function scryptSalt(salt: Buffer): Buffer {
  return Buffer.concat([Buffer.from(SCRYPT_LABEL), salt]);
}

// Typically memory: 2^22 needs 4 GiB.
function scryptFailed(logN: number, cause: unknown): StrongboxError {
  return new StrongboxError("AGE_SCRYPT_FAILED", `scrypt key derivation with work factor ${logN} failed`, {
    stage: "decrypt",
    hint: "the passphrase work factor may need more memory than is available",
    cause,
  });
}

function runSync<T>(steps: KdfSteps<T>): T {
  let step = steps.next();
  while (!step.done) {
    const { passphrase, salt, logN } = step.value;
    let key: Buffer;
    try {
      key = scryptSync(passphrase, scryptSalt(salt), 32, scryptOptions(logN));
    } catch (cause) {
      throw scryptFailed(logN, cause);
    }
    step = steps.next(key);
  }
  return step.value;
}

async function runAsync<T>(steps: KdfSteps<T>): Promise<T> {
  let step = steps.next();
  while (!step.done) {
    const { passphrase, salt, logN } = step.value;
    const key = await new Promise<Buffer>((resolve, reject) => {
      scrypt(passphrase, scryptSalt(salt), 32, scryptOptions(logN), (err, derived) =>
        err ? reject(scryptFailed(logN, err)) : resolve(derived),
      );
    });
    step = steps.next(key);
  }
  return step.value;
}

// ---------------------------------------------------------------------------------------------
// Recipients → stanzas

type WrapPlan =
  | { kind: "x25519"; recipients: Buffer[] }
  | { kind: "scrypt"; passphrase: Buffer; logN: number };

function planRecipients(recipients: readonly AgeRecipient[]): WrapPlan {
  if (recipients.length === 0) throw badRecipient("no recipients given: cannot encrypt to nobody");
  const scrypts = recipients.filter((r) => r.type === "scrypt");
  if (scrypts.length > 0) {
    const first = scrypts[0];
    if (recipients.length !== 1 || !first) {
      throw badRecipient("a passphrase (scrypt) recipient must be the only recipient of a file");
    }
    const logN = first.workFactor ?? SCRYPT_DEFAULT_WORK_FACTOR;
    if (!Number.isInteger(logN) || logN < 1 || logN > SCRYPT_MAX_WORK_FACTOR) {
      throw badRecipient(
        `scrypt work factor must be an integer from 1 to ${SCRYPT_MAX_WORK_FACTOR}, got ${logN}`,
      );
    }
    if (typeof first.passphrase !== "string" || first.passphrase.length === 0) {
      throw badRecipient("the passphrase for a scrypt recipient is empty");
    }
    return { kind: "scrypt", passphrase: Buffer.from(first.passphrase, "utf8"), logN };
  }
  return {
    kind: "x25519",
    recipients: recipients.map((r) => {
      if (r.type !== "x25519") throw badRecipient(`unknown recipient type ${shown(String(r.type))}`);
      return decodeRecipient(r.recipient);
    }),
  };
}

function wrapX25519(fileKey: Buffer, recipientRaw: Buffer): Stanza {
  const ephemeral = generateKeyPairSync("x25519");
  const share = rawPublic(ephemeral.publicKey);
  const secret = x25519(ephemeral.privateKey, recipientRaw);
  if (!secret)
    throw badRecipient(`invalid age recipient ${bech32Encode(RECIPIENT_HRP, recipientRaw)}: low-order key`);
  const wrapKey = hkdf(secret, Buffer.concat([share, recipientRaw]), X25519_LABEL);
  return { type: "X25519", args: [b64Encode(share)], body: aeadSeal(wrapKey, fileKey) };
}

function* wrapSteps(fileKey: Buffer, plan: WrapPlan): KdfSteps<Stanza[]> {
  if (plan.kind === "x25519") return plan.recipients.map((r) => wrapX25519(fileKey, r));
  const salt = randomBytes(SCRYPT_SALT_SIZE);
  const key = yield { passphrase: plan.passphrase, salt, logN: plan.logN };
  return [{ type: "scrypt", args: [b64Encode(salt), String(plan.logN)], body: aeadSeal(key, fileKey) }];
}

// ---------------------------------------------------------------------------------------------
// Header encoding and parsing

function headerMac(fileKey: Buffer, macInput: Buffer): Buffer {
  return createHmac("sha256", hkdf(fileKey, Buffer.alloc(0), "header"))
    .update(macInput)
    .digest();
}

function encodeHeader(fileKey: Buffer, stanzas: Stanza[]): Buffer {
  let text = AGE_INTRO;
  for (const s of stanzas) {
    text += `-> ${[s.type, ...s.args].join(" ")}\n`;
    const body = b64Encode(s.body);
    for (let i = 0; i < body.length; i += BODY_COLUMNS) text += `${body.slice(i, i + BODY_COLUMNS)}\n`;
    // The body always ends with a line shorter than 64 columns, possibly empty.
    if (body.length % BODY_COLUMNS === 0) text += "\n";
  }
  text += "---";
  const macInput = Buffer.from(text, "latin1");
  return Buffer.concat([macInput, Buffer.from(` ${b64Encode(headerMac(fileKey, macInput))}\n`, "latin1")]);
}

const ARG_CHARS = /^[\x21-\x7e]+$/;

/**
 * Parses a header from the start of `data`. Returns undefined when more bytes are needed, throws
 * AGE_HEADER_INVALID as soon as the bytes cannot be the start of a valid header.
 */
function scanHeader(data: Buffer): { header: ParsedHeader; headerLength: number } | undefined {
  const text = data.toString("latin1", 0, Math.min(data.length, AGE_MAX_HEADER_SIZE));
  const introEnd = text.indexOf("\n");
  const intro = introEnd < 0 ? text : text.slice(0, introEnd + 1);
  if (!(introEnd < 0 ? AGE_INTRO.startsWith(intro) : intro === AGE_INTRO)) {
    if (text.startsWith("-----BEGIN AGE ENCRYPTED FILE-----")) {
      throw headerInvalid(
        "the file is ASCII-armored; armored files are not supported (use `age -d` to decode it)",
      );
    }
    if (text.startsWith("age-encryption.org/") && introEnd >= 0) {
      throw headerInvalid(`unsupported version line ${shown(intro.trimEnd())}`);
    }
    throw headerInvalid("the file does not start with age-encryption.org/v1");
  }
  if (introEnd < 0) return undefined;

  const stanzas: Stanza[] = [];
  let current: { type: string; args: string[]; body: Buffer[] } | undefined;
  let pos = introEnd + 1;
  for (;;) {
    const nl = text.indexOf("\n", pos);
    if (nl < 0) {
      if (text.length >= AGE_MAX_HEADER_SIZE)
        throw headerInvalid(`header is larger than ${AGE_MAX_HEADER_SIZE} bytes`);
      return undefined;
    }
    const line = text.slice(pos, nl);
    const lineNo = stanzas.length;
    if (current) {
      const bytes = line.length <= BODY_COLUMNS ? b64Decode(line) : undefined;
      if (!bytes) {
        const why =
          line.startsWith("-") || line.length === 0
            ? "stanza body ended without a short final line"
            : "malformed stanza body line";
        throw headerInvalid(`${why} in stanza ${lineNo + 1}`);
      }
      current.body.push(bytes);
      if (line.length < BODY_COLUMNS) {
        stanzas.push({ type: current.type, args: current.args, body: Buffer.concat(current.body) });
        current = undefined;
      }
    } else if (line.startsWith("---")) {
      const mac = line.startsWith("--- ") ? b64Decode(line.slice(4)) : undefined;
      if (mac?.length !== 32) throw headerInvalid("malformed MAC line");
      if (stanzas.length === 0) throw headerInvalid("no recipient stanzas");
      return {
        header: { stanzas, mac, macInput: Buffer.from(data.subarray(0, pos + 3)) },
        headerLength: nl + 1,
      };
    } else if (line.startsWith("->")) {
      const parts = line.split(" ");
      if (parts[0] !== "->" || parts.length < 2 || !parts.slice(1).every((a) => ARG_CHARS.test(a))) {
        throw headerInvalid(`malformed stanza line ${lineNo + 1}`);
      }
      current = { type: parts[1] ?? "", args: parts.slice(2), body: [] };
    } else {
      throw headerInvalid("unexpected line (expected a stanza or the MAC line)");
    }
    pos = nl + 1;
  }
}

/** Where the payload of an age file starts, or undefined if `prefix` does not hold the whole header yet. */
export function headerLength(prefix: Buffer): number | undefined {
  return scanHeader(prefix)?.headerLength;
}

function truncatedHeader(length: number): StrongboxError {
  return new StrongboxError(
    "AGE_TRUNCATED",
    length === 0
      ? "age input is empty"
      : `age file is truncated: it ends inside the header after ${length} bytes`,
    { stage: "decrypt", hint: "the file was cut short (interrupted upload or copy); use another copy" },
  );
}

/** Parses the header at the start of a file (or a header on its own). */
export function readHeader(source: Buffer): { header: ParsedHeader; headerLength: number } {
  const scanned = scanHeader(source);
  if (!scanned) throw truncatedHeader(source.length);
  return scanned;
}

// ---------------------------------------------------------------------------------------------
// Identities → file key

type ResolvedIdentity = { kind: "x25519"; secret: X25519Secret } | { kind: "scrypt"; passphrase: Buffer };

function resolveIdentities(identities: readonly AgeIdentity[]): ResolvedIdentity[] {
  if (identities.length === 0) throw badIdentity("no identities given: cannot decrypt without a key");
  return identities.map((id, i): ResolvedIdentity => {
    if (id.type === "x25519") {
      return { kind: "x25519", secret: decodeIdentity(id.identity, `identity ${i + 1}`) };
    }
    if (id.type === "scrypt") return { kind: "scrypt", passphrase: Buffer.from(id.passphrase, "utf8") };
    throw badIdentity(`identity ${i + 1} has an unknown type`);
  });
}

function unwrapX25519(stanza: Stanza, secret: X25519Secret): Buffer | undefined {
  const share = stanza.args.length === 1 ? b64Decode(stanza.args[0] ?? "") : undefined;
  if (share?.length !== 32) throw headerInvalid("malformed X25519 stanza");
  if (stanza.body.length !== FILE_KEY_SIZE + TAG_SIZE)
    throw headerInvalid("X25519 stanza wraps a key of the wrong size");
  const shared = x25519(secret.privateKey, share);
  if (!shared) throw headerInvalid("X25519 stanza has a low-order share (all-zero shared secret)");
  const wrapKey = hkdf(shared, Buffer.concat([share, secret.publicRaw]), X25519_LABEL);
  return aeadOpen(wrapKey, stanza.body);
}

function parseScryptStanza(stanza: Stanza): { salt: Buffer; logN: number } {
  const [saltText, logNText] = stanza.args;
  const salt = stanza.args.length === 2 ? b64Decode(saltText ?? "") : undefined;
  if (!salt || salt.length !== SCRYPT_SALT_SIZE || !/^[1-9][0-9]*$/.test(logNText ?? "")) {
    throw headerInvalid("malformed scrypt stanza");
  }
  const logN = Number(logNText);
  if (logN > SCRYPT_MAX_WORK_FACTOR) {
    throw headerInvalid(
      `scrypt work factor ${logNText} is larger than the maximum ${SCRYPT_MAX_WORK_FACTOR}`,
    );
  }
  if (stanza.body.length !== FILE_KEY_SIZE + TAG_SIZE)
    throw headerInvalid("scrypt stanza wraps a key of the wrong size");
  return { salt, logN };
}

function noMatch(header: ParsedHeader, identities: ResolvedIdentity[]): StrongboxError {
  const counts = new Map<string, number>();
  for (const s of header.stanzas) counts.set(s.type, (counts.get(s.type) ?? 0) + 1);
  const given = identities.filter((i) => i.kind === "x25519").length;
  const passphrases = identities.length - given;
  const details = { stanzas: Object.fromEntries(counts), identities: given, passphrases };
  let message: string;
  if (counts.has("scrypt")) {
    message =
      passphrases > 0
        ? "the file is encrypted with a passphrase (scrypt) and the given passphrase is wrong"
        : "the file is encrypted with a passphrase (scrypt), but no passphrase was given";
  } else {
    const parts = [...counts].map(([type, n]) => `${n} ${type} recipient(s)`);
    const who =
      given === 0
        ? "no X25519 identity was given"
        : given === 1
          ? "none matches the given identity"
          : `none matches the ${given} given identities`;
    message = `the file is encrypted to ${parts.join(" and ")}; ${who}`;
  }
  return new StrongboxError("AGE_NO_IDENTITY_MATCH", message, {
    stage: "decrypt",
    hint: "use the identity whose public key (`age-keygen -y FILE`) was a recipient when the file was written",
    details,
  });
}

function* unwrapSteps(header: ParsedHeader, identities: ResolvedIdentity[]): KdfSteps<Buffer> {
  const stanzas = header.stanzas;
  if (stanzas.some((s) => s.type === "scrypt") && stanzas.length !== 1) {
    throw headerInvalid("a scrypt stanza must be the only stanza in the header");
  }
  let fileKey: Buffer | undefined;
  search: for (const id of identities) {
    if (id.kind === "x25519") {
      for (const s of stanzas) {
        if (s.type !== "X25519") continue;
        fileKey = unwrapX25519(s, id.secret);
        if (fileKey) break search;
      }
    } else {
      const only = stanzas[0];
      if (stanzas.length !== 1 || !only || only.type !== "scrypt") continue;
      const { salt, logN } = parseScryptStanza(only);
      const key = yield { passphrase: id.passphrase, salt, logN };
      fileKey = aeadOpen(key, only.body);
      if (fileKey) break;
    }
  }
  if (!fileKey) throw noMatch(header, identities);
  const expected = headerMac(fileKey, header.macInput);
  if (!timingSafeEqual(expected, header.mac)) {
    throw new StrongboxError(
      "AGE_HEADER_MAC",
      "age header MAC does not match: the header was modified or corrupted",
      {
        stage: "decrypt",
        hint: "the file was tampered with or damaged; use another copy",
      },
    );
  }
  return fileKey;
}

// ---------------------------------------------------------------------------------------------
// STREAM payload

// A KeyObject, not a Buffer: createCipheriv imports a raw key on every call, which costs more
// than sealing a 64 KiB chunk does at these speeds.
function payloadKey(fileKey: Buffer, nonce: Buffer): KeyObject {
  return createSecretKey(hkdf(fileKey, nonce, "payload"));
}

// 11-byte big-endian chunk counter, then the last-chunk flag. 2^48 chunks (16 EiB) is plenty.
function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

const MAX_COUNTER = 2 ** 48 - 1;

class PayloadEncryptor {
  readonly #key: KeyObject;
  #counter = 0;
  // The input of the chunk being filled, held by reference: a Writable's caller never reuses a
  // buffer it wrote, and ChaCha20-Poly1305 takes a chunk in several updates, so nothing is copied.
  #held: Buffer[] = [];
  #heldLength = 0;

  constructor(key: KeyObject) {
    this.#key = key;
  }

  #seal(last: boolean, out: Buffer[]): void {
    if (this.#counter > MAX_COUNTER)
      throw new StrongboxError("AGE_TOO_LARGE", "age payload exceeds 2^48 chunks");
    const cipher = createCipheriv("chacha20-poly1305", this.#key, chunkNonce(this.#counter++, last), {
      authTagLength: TAG_SIZE,
    });
    for (const piece of this.#held) out.push(cipher.update(piece));
    cipher.final();
    out.push(cipher.getAuthTag());
    this.#held = [];
    this.#heldLength = 0;
  }

  // A full chunk is sealed only when more input arrives, because the last chunk (even a full
  // one) carries the last-chunk flag.
  write(data: Buffer, out: Buffer[]): void {
    let offset = 0;
    while (offset < data.length) {
      if (this.#heldLength === AGE_CHUNK_SIZE) this.#seal(false, out);
      const n = Math.min(AGE_CHUNK_SIZE - this.#heldLength, data.length - offset);
      this.#held.push(n === data.length ? data : data.subarray(offset, offset + n));
      this.#heldLength += n;
      offset += n;
    }
  }

  // The final chunk is empty only when the whole payload is.
  end(out: Buffer[]): void {
    this.#seal(true, out);
  }
}

function payloadAuth(message: string): StrongboxError {
  return new StrongboxError("AGE_PAYLOAD_AUTH", message, {
    stage: "decrypt",
    hint: "the file was tampered with or damaged; use another copy",
  });
}

function truncated(message: string): StrongboxError {
  return new StrongboxError("AGE_TRUNCATED", message, {
    stage: "decrypt",
    hint: "the file was cut short (interrupted upload or copy); use another copy",
  });
}

class PayloadDecryptor {
  readonly #key: KeyObject;
  #counter = 0;
  readonly #queue: Buffer[] = [];
  #queued = 0;
  #scratch: Buffer | undefined;

  constructor(key: KeyObject) {
    this.#key = key;
  }

  #open(chunk: Buffer, last: boolean): Buffer | undefined {
    const decipher = createDecipheriv("chacha20-poly1305", this.#key, chunkNonce(this.#counter, last), {
      authTagLength: TAG_SIZE,
    });
    decipher.setAuthTag(chunk.subarray(chunk.length - TAG_SIZE));
    const plaintext = decipher.update(chunk.subarray(0, chunk.length - TAG_SIZE));
    try {
      decipher.final();
    } catch {
      return undefined;
    }
    return plaintext;
  }

  #take(n: number): Buffer {
    const first = this.#queue[0];
    if (first && first.length >= n) {
      if (first.length === n) this.#queue.shift();
      else this.#queue[0] = first.subarray(n);
      this.#queued -= n;
      return first.subarray(0, n);
    }
    // The chunk spans input buffers: assemble it in a reused scratch buffer (read synchronously).
    this.#scratch ??= Buffer.allocUnsafe(ENC_CHUNK_SIZE);
    const out = this.#scratch.subarray(0, n);
    let filled = 0;
    while (filled < n) {
      const head = this.#queue[0];
      if (!head) break;
      const k = Math.min(head.length, n - filled);
      head.copy(out, filled, 0, k);
      filled += k;
      if (k === head.length) this.#queue.shift();
      else this.#queue[0] = head.subarray(k);
    }
    this.#queued -= n;
    return out;
  }

  // Only a chunk followed by more data is known not to be the last one.
  write(data: Buffer, out: Buffer[]): void {
    if (data.length === 0) return;
    this.#queue.push(data);
    this.#queued += data.length;
    while (this.#queued > ENC_CHUNK_SIZE) {
      const chunk = this.#take(ENC_CHUNK_SIZE);
      const plaintext = this.#open(chunk, false);
      if (!plaintext) {
        const final = this.#open(chunk, true);
        if (final) {
          out.push(final);
          throw new StrongboxError(
            "AGE_TRAILING_DATA",
            `age file has data after its final chunk (chunk ${this.#counter})`,
            {
              stage: "decrypt",
              hint: "the file was damaged or concatenated with other data; use another copy",
            },
          );
        }
        throw payloadAuth(`age payload chunk ${this.#counter} failed authentication: the file is corrupted`);
      }
      this.#counter++;
      out.push(plaintext);
    }
  }

  end(out: Buffer[]): void {
    const rest = this.#queued;
    const n = this.#counter;
    if (rest === 0) throw truncated("age file is truncated: the payload has no chunks");
    if (rest < TAG_SIZE) throw truncated(`age file is truncated: it ends inside payload chunk ${n}`);
    const chunk = this.#take(rest);
    const plaintext = this.#open(chunk, true);
    if (plaintext) {
      if (plaintext.length === 0 && n > 0) {
        throw payloadAuth(
          "age payload ends with an empty final chunk, which is only allowed for an empty payload",
        );
      }
      out.push(plaintext);
      return;
    }
    const notFinal = rest === ENC_CHUNK_SIZE ? this.#open(chunk, false) : undefined;
    if (notFinal) {
      // Authentic, so released like every chunk before it; only the end is missing.
      out.push(notFinal);
      throw truncated(`age file is truncated: it ends after ${n + 1} chunks, without the final chunk`);
    }
    throw payloadAuth(
      `age payload chunk ${n} (the last one present) failed authentication: the file is truncated or corrupted`,
    );
  }
}

// ---------------------------------------------------------------------------------------------
// Public encryption API

function* headerSteps(plan: WrapPlan): KdfSteps<{ prefix: Buffer; key: Buffer }> {
  const fileKey = randomBytes(FILE_KEY_SIZE);
  const stanzas = yield* wrapSteps(fileKey, plan);
  const nonce = randomBytes(PAYLOAD_NONCE_SIZE);
  return {
    prefix: Buffer.concat([encodeHeader(fileKey, stanzas), nonce]),
    key: hkdf(fileKey, nonce, "payload"),
  };
}

function* encryptSteps(plan: WrapPlan): KdfSteps<{ prefix: Buffer; payload: PayloadEncryptor }> {
  const { prefix, key } = yield* headerSteps(plan);
  return { prefix, payload: new PayloadEncryptor(createSecretKey(key)) };
}

/**
 * The start of a new age file for a sealer outside this process (native/seal.c): the header and
 * payload nonce (`prefix`, the file's first bytes) and the payload's ChaCha20-Poly1305 key, from
 * a fresh file key. Whoever holds `payloadKey` can write the file's payload and nothing else.
 */
export async function startAgeFile(
  recipients: readonly AgeRecipient[],
): Promise<{ prefix: Buffer; payloadKey: Buffer }> {
  const { prefix, key } = await runAsync(headerSteps(planRecipients(recipients)));
  return { prefix, payloadKey: key };
}

const STREAM_HIGH_WATER_MARK = 256 * 1024;

/**
 * A Transform that encrypts its input to an age file. Memory stays at about one chunk plus the
 * stream buffers whatever the input size. Recipients are validated here, synchronously.
 * `onOutput` sees every output byte, in order, as it is pushed (the part writer hashes there
 * instead of passing the stream through one more stream).
 */
export function createEncryptStream(
  recipients: AgeRecipient[],
  onOutput?: (bytes: Buffer) => void,
): Transform {
  const plan = planRecipients(recipients);
  let payload: PayloadEncryptor | undefined;
  // Derive up front (scrypt runs on the thread pool) so the first write does not wait for it.
  const ready = runAsync(encryptSteps(plan));
  ready.catch(() => {});

  async function start(stream: Transform): Promise<PayloadEncryptor> {
    const started = await ready;
    onOutput?.(started.prefix);
    stream.push(started.prefix);
    payload = started.payload;
    return started.payload;
  }

  function emit(stream: Transform, out: Buffer[]): void {
    for (const b of out) {
      onOutput?.(b);
      stream.push(b);
    }
  }

  return new Transform({
    highWaterMark: STREAM_HIGH_WATER_MARK,
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const out: Buffer[] = [];
      if (payload) {
        try {
          payload.write(chunk, out);
        } catch (err) {
          callback(err as Error);
          return;
        }
        emit(this, out);
        callback();
        return;
      }
      start(this).then(
        (p) => {
          p.write(chunk, out);
          emit(this, out);
          callback();
        },
        (err: unknown) => callback(err as Error),
      );
    },
    flush(callback: TransformCallback) {
      const finish = (p: PayloadEncryptor) => {
        const out: Buffer[] = [];
        p.end(out);
        emit(this, out);
        callback();
      };
      if (payload) {
        try {
          finish(payload);
        } catch (err) {
          callback(err as Error);
        }
        return;
      }
      start(this).then(finish, (err: unknown) => callback(err as Error));
    },
  });
}

/** Encrypts a small object in memory. */
export async function encryptBuffer(data: Buffer | Uint8Array, recipients: AgeRecipient[]): Promise<Buffer> {
  const { prefix, payload } = await runAsync(encryptSteps(planRecipients(recipients)));
  const out: Buffer[] = [prefix];
  payload.write(
    Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength),
    out,
  );
  payload.end(out);
  return Buffer.concat(out);
}

// ---------------------------------------------------------------------------------------------
// Public decryption API

type DecryptState =
  | { phase: "header"; parts: Buffer[]; length: number; sawNewline: boolean }
  | { phase: "unwrap" }
  | { phase: "nonce"; fileKey: Buffer; bytes: Buffer }
  | { phase: "payload"; payload: PayloadDecryptor };

/**
 * A Transform that decrypts an age file. Nothing is released before the header MAC checks out,
 * and each 64 KiB chunk only after its tag does. Errors are StrongboxErrors with stable codes.
 */
export function createDecryptStream(identities: AgeIdentity[]): Transform {
  const resolved = resolveIdentities(identities);
  let state: DecryptState = { phase: "header", parts: [], length: 0, sawNewline: false };

  // Feeds bytes after the header: first the 16-byte nonce, then the payload.
  function afterHeader(data: Buffer, out: Buffer[]): void {
    if (state.phase === "nonce") {
      const bytes = Buffer.concat([state.bytes, data]);
      if (bytes.length < PAYLOAD_NONCE_SIZE) {
        state = { phase: "nonce", fileKey: state.fileKey, bytes };
        return;
      }
      const payload = new PayloadDecryptor(payloadKey(state.fileKey, bytes.subarray(0, PAYLOAD_NONCE_SIZE)));
      state = { phase: "payload", payload };
      payload.write(bytes.subarray(PAYLOAD_NONCE_SIZE), out);
      return;
    }
    if (state.phase === "payload") state.payload.write(data, out);
  }

  // Plaintext that authenticated is released even when a later check fails, like `age -d`.
  function deliver(stream: Transform, out: Buffer[], callback: TransformCallback, err?: unknown): void {
    for (const b of out) stream.push(b);
    callback(err === undefined ? undefined : (err as Error));
  }

  return new Transform({
    highWaterMark: STREAM_HIGH_WATER_MARK,
    transform(chunk: Buffer, _encoding, callback: TransformCallback) {
      const out: Buffer[] = [];
      try {
        if (state.phase !== "header") {
          afterHeader(chunk, out);
          deliver(this, out, callback);
          return;
        }
        state.parts.push(chunk);
        state.length += chunk.length;
        // A header can only complete on a newline. Until the first one, rescanning is cheap and
        // rejects a wrong intro early (non-age input fails within its first bytes).
        const hasNewline = chunk.indexOf(0x0a) >= 0;
        if (!hasNewline && state.sawNewline && state.length < AGE_MAX_HEADER_SIZE) {
          callback();
          return;
        }
        state.sawNewline ||= hasNewline;
        const buffered = Buffer.concat(state.parts, state.length);
        state.parts = [buffered];
        const scanned = scanHeader(buffered);
        if (!scanned) {
          callback();
          return;
        }
        state = { phase: "unwrap" };
        runAsync(unwrapSteps(scanned.header, resolved)).then(
          (fileKey) => {
            try {
              state = { phase: "nonce", fileKey, bytes: Buffer.alloc(0) };
              afterHeader(buffered.subarray(scanned.headerLength), out);
              deliver(this, out, callback);
            } catch (err) {
              deliver(this, out, callback, err);
            }
          },
          (err: unknown) => callback(err as Error),
        );
      } catch (err) {
        deliver(this, out, callback, err);
      }
    },
    flush(callback: TransformCallback) {
      const out: Buffer[] = [];
      try {
        if (state.phase === "header") {
          const buffered = Buffer.concat(state.parts, state.length);
          // Still throws AGE_HEADER_INVALID for a bad tail that never got its newline.
          scanHeader(buffered);
          throw truncatedHeader(buffered.length);
        }
        if (state.phase === "nonce")
          throw truncated("age file is truncated: it ends before the payload nonce");
        if (state.phase === "payload") state.payload.end(out);
        deliver(this, out, callback);
      } catch (err) {
        deliver(this, out, callback, err);
      }
    },
  });
}

/** Decrypts a small, complete age file in memory. */
export async function decryptBuffer(data: Buffer | Uint8Array, identities: AgeIdentity[]): Promise<Buffer> {
  const file = Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const resolved = resolveIdentities(identities);
  const { header, headerLength: length } = readHeader(file);
  const fileKey = await runAsync(unwrapSteps(header, resolved));
  if (file.length < length + PAYLOAD_NONCE_SIZE)
    throw truncated("age file is truncated: it ends before the payload nonce");
  const payload = new PayloadDecryptor(
    payloadKey(fileKey, file.subarray(length, length + PAYLOAD_NONCE_SIZE)),
  );
  const out: Buffer[] = [];
  payload.write(file.subarray(length + PAYLOAD_NONCE_SIZE), out);
  payload.end(out);
  return Buffer.concat(out);
}

/**
 * Re-keys a file: unwraps the file key with `identities` (checking the MAC) and returns a new
 * header wrapping the same key to `newRecipients`. Replace bytes [0, headerLength) of the file with
 * the result; the nonce and payload stay byte-for-byte the same. Synchronous (scrypt included).
 */
export function rewrapHeader(
  fileBytesOrHeader: Buffer,
  identities: AgeIdentity[],
  newRecipients: AgeRecipient[],
): Buffer {
  const plan = planRecipients(newRecipients);
  const resolved = resolveIdentities(identities);
  const { header } = readHeader(fileBytesOrHeader);
  const fileKey = runSync(unwrapSteps(header, resolved));
  return encodeHeader(fileKey, runSync(wrapSteps(fileKey, plan)));
}
