// Re-wrapping one stored age object for a new recipient set without re-encrypting its payload:
// the file key is unwrapped with an identity of the current recipients and wrapped again for the
// new ones (new stanzas, new header MAC); the payload bytes are copied unchanged. Storage cannot
// change an object in place, so the result is a NEW object (the next generation of the key); the
// caller swaps its signed record over and only then deletes the old one.
import { createHash } from "node:crypto";
import { Readable } from "node:stream";
import { rewrapHeader } from "../crypto/age.ts";
import { headerLength } from "../crypto/age-header.ts";
import type { AgeIdentity, AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { Repository } from "../repository/repository.ts";
import { readAll } from "../util/stream.ts";

const HEADER_PROBE = 64 * 1024;

/** An object as its signed record (manifest part, binlog index entry) describes it. */
export interface StoredObject {
  key: string;
  size: number;
  sha256: string;
}

const GENERATION_RE = /^(.*?)(?:\.g(\d+))?\.age$/;

/** The object name without its generation: part-000003.g2.age → part-000003 */
export function generationBase(key: string): string | undefined {
  return GENERATION_RE.exec(key)?.[1];
}

/** The next generation's key: x.age → x.g2.age → x.g3.age */
export function nextGeneration(key: string): string {
  const m = GENERATION_RE.exec(key);
  if (!m) throw new StrongboxError("ROTATE_BAD_KEY", `unexpected object key ${key} (not an age object)`);
  return `${m[1]}.g${Number(m[2] ?? 1) + 1}.age`;
}

async function readHeader(repo: Repository, key: string, signal?: AbortSignal): Promise<Buffer> {
  const prefix = await readAll(
    await repo.storage.get(key, { start: 0, end: HEADER_PROBE - 1, ...(signal ? { signal } : {}) }),
  );
  const length = headerLength(prefix);
  if (length === undefined) {
    throw new StrongboxError(
      "AGE_HEADER_INVALID",
      `${key}: no complete age header in its first ${HEADER_PROBE} bytes`,
    );
  }
  return prefix.subarray(0, length);
}

/**
 * Writes `toKey`: `from` with its header re-wrapped for `recipients`. The old bytes are checked
 * against `from` (size and SHA-256) as they are copied; on a mismatch the put fails, so nothing
 * is stored (ROTATE_CORRUPT). Resolves with the new object's record.
 */
export async function rewrapObject(
  repo: Repository,
  from: StoredObject,
  toKey: string,
  identities: AgeIdentity[],
  recipients: AgeRecipient[],
  signal?: AbortSignal,
): Promise<StoredObject> {
  const header = await readHeader(repo, from.key, signal);
  let newHeader: Buffer;
  try {
    newHeader = rewrapHeader(header, identities, recipients);
  } catch (e) {
    if ((e as StrongboxError).code === "AGE_NO_IDENTITY_MATCH") {
      throw new StrongboxError(
        "WRONG_KEY",
        `the identity cannot open ${from.key}; rotation needs an identity of the current recipients`,
        { cause: e },
      );
    }
    throw e;
  }
  const payload = await repo.storage.get(from.key, { start: header.length, ...(signal ? { signal } : {}) });
  const oldHash = createHash("sha256").update(header);
  const newHash = createHash("sha256").update(newHeader);
  let oldSize = header.length;
  let newSize = newHeader.length;
  async function* body() {
    yield newHeader;
    for await (const chunk of payload) {
      const c = chunk as Buffer;
      oldHash.update(c);
      newHash.update(c);
      oldSize += c.length;
      newSize += c.length;
      yield c;
    }
    if (oldSize !== from.size || oldHash.digest("hex") !== from.sha256) {
      throw new StrongboxError(
        "ROTATE_CORRUPT",
        `${from.key} does not match its signed record (${oldSize} bytes stored, ${from.size} recorded, or another SHA-256): not re-wrapped`,
        { stage: "rotate", hint: "run strongbox verify; restore the object from an offsite copy" },
      );
    }
  }
  await repo.storage.put(toKey, Readable.from(body()), signal ? { signal } : {});
  return { key: toKey, size: newSize, sha256: newHash.digest("hex") };
}
