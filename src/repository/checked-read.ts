// The one checked read of repository objects: the stored bytes of a part or an archived binlog,
// their size and SHA-256 compared with the signed record (manifest or binlog index) as they stream.
import { createHash } from "node:crypto";
import { pipeline, type Readable, Transform } from "node:stream";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { Storage } from "../storage/types.ts";
import { streamed } from "../util/gc.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";

/** What a signed record says an object holds. */
export interface StoredRecord {
  key: string;
  size: number;
  sha256: string | null;
}

/** Why a read does not match its record: more bytes than recorded (the rest unread), or at the end. */
export type Mismatch =
  | { kind: "larger"; size: number }
  | { kind: "size"; size: number; sha256: string }
  | { kind: "hash"; size: number; sha256: string };

/**
 * The object's bytes, passed on as they arrive; the stream fails with `mismatch(...)` as soon as it
 * holds more bytes than recorded, and at its end when the size or the SHA-256 differ.
 */
export async function readChecked(
  storage: Storage,
  record: StoredRecord,
  mismatch: (m: Mismatch) => StrongboxError,
  signal?: AbortSignal,
): Promise<Readable> {
  const src = await storage.get(record.key, { signal });
  const hash = createHash("sha256");
  let size = 0;
  const check = new Transform({
    transform(chunk: Buffer, _e, cb) {
      size += chunk.length;
      if (size > record.size) return cb(mismatch({ kind: "larger", size }));
      hash.update(chunk);
      streamed(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      const sha256 = hash.digest("hex");
      if (size !== record.size) return cb(mismatch({ kind: "size", size, sha256 }));
      if (sha256 !== record.sha256) return cb(mismatch({ kind: "hash", size, sha256 }));
      cb();
    },
  });
  // pipeline, not pipe: when the check fails or its reader stops, the source is destroyed too
  // (a local file's FileHandle closed, not left to the garbage collector: DEP0137).
  return pipeline(src, check, () => {});
}

/**
 * The error to report when decrypting a checked read failed: if the rest of the stored bytes do not
 * match their signed record, that mismatch. A flipped byte in a recipient stanza makes age say that
 * no identity matches, a wrong-key diagnosis for what is damage; the hash tells them apart. Only
 * decryption failures read on (at most one part or binlog file); others are returned as they are.
 */
export async function checkedFailure(stored: Readable, error: unknown): Promise<unknown> {
  if (!String((error as StrongboxError).code ?? "").startsWith("AGE_")) return error;
  if (stored.errored) return stored.errored;
  if (stored.destroyed || stored.readableEnded) return error;
  try {
    for await (const _ of stored) {
      // Only the check's verdict at the end matters.
    }
  } catch (mismatch) {
    return mismatch;
  }
  return error;
}

/** A part's read or decryption failure as the error to report, naming the backup and the part. */
export function partError(m: Manifest, part: PartRecord, e: unknown): StrongboxError {
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
  const where = `backup ${m.id} part ${part.index} (${part.key})`;
  try {
    return await readChecked(
      repo.storage,
      part,
      (x) =>
        x.kind === "larger"
          ? new StrongboxError("PART_CORRUPT", `${where} is larger than recorded (${part.size} bytes)`)
          : x.kind === "size"
            ? new StrongboxError(
                "PART_CORRUPT",
                `${where} has ${x.size} bytes, the manifest says ${part.size} (truncated?)`,
              )
            : new StrongboxError("PART_CORRUPT", `${where} fails its SHA-256 check`, {
                hint: "restore from an offsite copy",
              }),
      signal,
    );
  } catch (e) {
    throw partError(m, part, e);
  }
}
