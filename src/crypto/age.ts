// The age v1 file format (https://c2sp.org/age), X25519 and scrypt recipients, on node:crypto only.
// Files written here decrypt with `age -d -i identity.txt`, and files from `age -r` decrypt here:
// that is what makes the break-glass restore work with standard tools.
//
// Layout of a file: a text header (intro line, one stanza per recipient wrapping the 16-byte file
// key, "---" and an HMAC of the header), a 16-byte nonce, then the payload in STREAM chunks of
// 64 KiB plaintext, each sealed with ChaCha20-Poly1305 under a key derived from file key + nonce.
//
// This file is the public API: streams and buffers encrypted to recipients and decrypted with
// identities, and header re-keying; age-keys.ts parses keys, age-header.ts and age-stream.ts do the work.
import { createSecretKey, randomBytes } from "node:crypto";
import { Transform, type TransformCallback } from "node:stream";
import { AGE_MAX_HEADER_SIZE, FILE_KEY_SIZE, hkdf, PAYLOAD_NONCE_SIZE } from "./age-format.ts";
import {
  encodeHeader,
  type KdfSteps,
  planRecipients,
  readHeader,
  resolveIdentities,
  runAsync,
  runSync,
  scanHeader,
  truncatedHeader,
  unwrapSteps,
  type WrapPlan,
  wrapSteps,
} from "./age-header.ts";
import type { AgeIdentity, AgeRecipient } from "./age-keys.ts";
import { PayloadDecryptor, PayloadEncryptor, payloadKey, truncated } from "./age-stream.ts";

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

/**
 * Where the payload of an age file starts and its ChaCha20-Poly1305 key, for a decryptor outside
 * this process (native/open.c): the header at the start of `head` is parsed, its stanzas unwrapped
 * with `identities` and its MAC checked here, so the identity never leaves this process. `head`
 * holds the file's first bytes (all of them when the file is shorter); undefined when the header
 * does not end within them and `complete` is false (read more and ask again).
 */
export async function openAgeFile(
  head: Buffer,
  identities: AgeIdentity[],
  complete: boolean,
): Promise<{ payloadOffset: number; payloadKey: Buffer } | undefined> {
  const resolved = resolveIdentities(identities);
  const scanned = complete ? readHeader(head) : scanHeader(head);
  if (!scanned) return undefined;
  const fileKey = await runAsync(unwrapSteps(scanned.header, resolved));
  const end = scanned.headerLength + PAYLOAD_NONCE_SIZE;
  if (head.length < end) {
    if (complete) throw truncated("age file is truncated: it ends before the payload nonce");
    return undefined;
  }
  return {
    payloadOffset: end,
    payloadKey: hkdf(fileKey, head.subarray(scanned.headerLength, end), "payload"),
  };
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
