// Reading a backup back: every part fetched in order, its size and SHA-256 checked against the
// signed manifest, decrypted, and the plaintexts concatenated into the compressed stream.
import { createHash } from "node:crypto";
import { Readable, Transform } from "node:stream";
import { type AgeIdentity, createDecryptStream } from "../crypto/age.ts";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { streamed } from "../util/gc.ts";

function partError(m: Manifest, part: PartRecord, e: unknown): StrongboxError {
  const code = (e as StrongboxError).code ?? "";
  const where = `backup ${m.id} part ${part.index} (${part.key})`;
  if (code === "STORAGE_NOT_FOUND") {
    return new StrongboxError("PART_MISSING", `${where} is missing`, {
      cause: e,
      hint: "restore from an offsite copy",
    });
  }
  if (code === "AGE_NO_IDENTITY_MATCH") {
    return new StrongboxError(
      "WRONG_KEY",
      `the identity does not match any recipient of backup ${m.id}; it was encrypted to ${m.encryption.recipients.join(", ")}`,
      { cause: e, hint: "pass the identity of one of those recipients with --identity" },
    );
  }
  if (
    code === "AGE_PAYLOAD_AUTH" ||
    code === "AGE_HEADER_MAC" ||
    code === "AGE_HEADER_INVALID" ||
    code === "AGE_TRUNCATED" ||
    code === "AGE_TRAILING_DATA"
  ) {
    return new StrongboxError("PART_CORRUPT", `${where} is corrupted or truncated: ${(e as Error).message}`, {
      cause: e,
      hint: "restore from an offsite copy",
    });
  }
  return e instanceof StrongboxError
    ? e
    : new StrongboxError("PART_READ", `${where}: ${(e as Error).message}`, { cause: e });
}

/** Stored bytes of one part, checked against the manifest's size and SHA-256 as they stream. */
export async function readPartChecked(
  repo: Repository,
  m: Manifest,
  part: PartRecord,
  signal?: AbortSignal,
): Promise<Readable> {
  let src: Readable;
  try {
    src = await repo.storage.get(part.key, { signal });
  } catch (e) {
    throw partError(m, part, e);
  }
  const hash = createHash("sha256");
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _e, cb) {
      size += chunk.length;
      if (size > part.size)
        return cb(
          new StrongboxError(
            "PART_CORRUPT",
            `backup ${m.id} part ${part.index} (${part.key}) is larger than recorded (${part.size} bytes)`,
          ),
        );
      hash.update(chunk);
      streamed(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      if (size !== part.size) {
        return cb(
          new StrongboxError(
            "PART_CORRUPT",
            `backup ${m.id} part ${part.index} (${part.key}) has ${size} bytes, the manifest says ${part.size} (truncated?)`,
          ),
        );
      }
      const digest = hash.digest("hex");
      if (digest !== part.sha256) {
        return cb(
          new StrongboxError(
            "PART_CORRUPT",
            `backup ${m.id} part ${part.index} (${part.key}) fails its SHA-256 check`,
            { hint: "restore from an offsite copy" },
          ),
        );
      }
      cb();
    },
  });
  src.on("error", (e) => check.destroy(e));
  return src.pipe(check);
}

/** The decrypted (still compressed) stream of a backup: its parts in order. */
export function backupPlaintext(
  repo: Repository,
  m: Manifest,
  identities: AgeIdentity[],
  options: { signal?: AbortSignal; onPart?: (part: PartRecord) => void } = {},
): Readable {
  async function* gen() {
    for (const part of m.parts) {
      options.signal?.throwIfAborted();
      const stored = await readPartChecked(repo, m, part, options.signal);
      const dec = createDecryptStream(identities);
      stored.on("error", (e) => dec.destroy(e));
      stored.pipe(dec);
      try {
        for await (const chunk of dec) yield chunk as Buffer;
      } catch (e) {
        stored.destroy();
        throw partError(m, part, e);
      }
      options.onPart?.(part);
    }
  }
  // Object mode hands each decrypted chunk on as it is; a byte-mode stream would concatenate
  // whatever is buffered into a new Buffer on every read (a copy of the whole backup).
  return Readable.from(gen(), { objectMode: true, highWaterMark: 16 });
}
