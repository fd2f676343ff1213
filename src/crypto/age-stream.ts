// The age payload: STREAM chunks of 64 KiB sealed with ChaCha20-Poly1305 under a key derived from
// the file key and a nonce, encrypted and decrypted incrementally.
import { createCipheriv, createDecipheriv, createSecretKey, type KeyObject } from "node:crypto";
import { StrongboxError } from "../errors.ts";
import { AGE_CHUNK_SIZE, ENC_CHUNK_SIZE, hkdf, TAG_SIZE } from "./age-format.ts";

// ---------------------------------------------------------------------------------------------
// STREAM payload

// A KeyObject, not a Buffer: createCipheriv imports a raw key on every call, which costs more
// than sealing a 64 KiB chunk does at these speeds.
export function payloadKey(fileKey: Buffer, nonce: Buffer): KeyObject {
  return createSecretKey(hkdf(fileKey, nonce, "payload"));
}

// 11-byte big-endian chunk counter, then the last-chunk flag. 2^48 chunks (16 EiB) is plenty.
export function chunkNonce(counter: number, last: boolean): Buffer {
  const nonce = Buffer.alloc(12);
  nonce.writeUIntBE(counter, 5, 6);
  nonce[11] = last ? 1 : 0;
  return nonce;
}

export const MAX_COUNTER = 2 ** 48 - 1;

export class PayloadEncryptor {
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

export function payloadAuth(message: string): StrongboxError {
  return new StrongboxError("AGE_PAYLOAD_AUTH", message, {
    stage: "decrypt",
    hint: "the file was tampered with or damaged; use another copy",
  });
}

export function truncated(message: string): StrongboxError {
  return new StrongboxError("AGE_TRUNCATED", message, {
    stage: "decrypt",
    hint: "the file was cut short (interrupted upload or copy); use another copy",
  });
}

export function trailingData(message: string): StrongboxError {
  return new StrongboxError("AGE_TRAILING_DATA", message, {
    stage: "decrypt",
    hint: "the file was damaged or concatenated with other data; use another copy",
  });
}

export class PayloadDecryptor {
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
          throw trailingData(`age file has data after its final chunk (chunk ${this.#counter})`);
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
