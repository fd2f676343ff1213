// The one checked read of repository objects: the stored bytes of a part or an archived binlog,
// their size and SHA-256 compared with the signed record (manifest or binlog index) before any
// byte is handed on (a local file hashed through its open descriptor, anything else spooled to a
// private temp file), or, for readers that use nothing before the end (verify, copy), as they
// stream.
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { type FileHandle, mkdtemp, open, readdir, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { addAbortSignal, pipeline as pipeStreams, type Readable, Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import type { Storage } from "../storage/types.ts";
import { streamed } from "../util/gc.ts";
import { pidAlive } from "../util/liveness.ts";
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

/** How a checked read hands the bytes on. */
export interface CheckedReadOptions {
  signal?: AbortSignal | undefined;
  /**
   * Hash before use (default true): the object's size and SHA-256 are checked first (see
   * openChecked), and only a matching file is handed on — no byte of a forged or damaged object reaches a decryptor, decompressor or target.
   * False streams the bytes as they arrive and fails at the end: only for readers that use
   * nothing before the end (verify's hash check, copy's upload checked again on arrival).
   */
  verifyFirst?: boolean;
  /** Where the spool directory is made (default: the system's temp directory, $TMPDIR). */
  tempDir?: string | undefined;
}

/**
 * The object's bytes, checked against its record. Streaming (`verifyFirst: false`): passed on as
 * they arrive, the stream failing with `mismatch(...)` as soon as it holds more bytes than recorded,
 * and at its end when the size or the SHA-256 differ. Else: checked first (see openChecked).
 */
export async function readChecked(
  storage: Storage,
  record: StoredRecord,
  mismatch: (m: Mismatch) => StrongboxError,
  signalOrOptions?: AbortSignal | CheckedReadOptions,
): Promise<Readable> {
  const o: CheckedReadOptions =
    signalOrOptions instanceof AbortSignal ? { signal: signalOrOptions } : (signalOrOptions ?? {});
  if (o.verifyFirst === false) {
    const check = checking(record, mismatch, true);
    // pipeline, not pipe: when the check fails or its reader stops, the source is destroyed too
    // (a local file's FileHandle closed, not left to the garbage collector: DEP0137).
    return pipeStreams(await storage.get(record.key, { signal: o.signal }), check.stream, () => {});
  }
  const handle = await openChecked(storage, record, mismatch, o);
  const checked = handle.createReadStream({
    start: 0,
    end: Math.max(0, record.size - 1),
    highWaterMark: 256 * 1024,
  });
  if (o.signal) addAbortSignal(o.signal, checked);
  // Its buffers are garbage once read: reported, as every streamed read's are (util/gc.ts).
  const counted = new Transform({
    transform(chunk: Buffer, _e, cb) {
      streamed(chunk.length);
      cb(null, chunk);
    },
  });
  return pipeStreams(checked, counted, () => {});
}

/**
 * The object as an open file whose first `record.size` bytes match the record (size and SHA-256),
 * checked before anything reads them for use. A local object is hashed through its own open file
 * and is then read again through that same descriptor: renaming or replacing its name meanwhile
 * changes nothing, and the file itself is the repository writer's own (0600), which an account
 * that may only write the repository's directories cannot change. Any other object is spooled
 * into a 0600 file in a private 0700 temp directory while it is hashed, and that copy, its name
 * already removed, is what is handed back. The caller closes the handle.
 */
export async function openChecked(
  storage: Storage,
  record: StoredRecord,
  mismatch: (m: Mismatch) => StrongboxError,
  o: CheckedReadOptions = {},
): Promise<FileHandle> {
  const root = o.tempDir ?? tmpdir();
  // Spools of killed runs are swept whichever way this read goes.
  await sweepDeadSpools(root);
  const local = await storage.openLocal?.(record.key, { signal: o.signal });
  if (local) return hashLocal(local, record, mismatch, o.signal);
  const src = await storage.get(record.key, { signal: o.signal });
  const check = checking(record, mismatch, false);
  const dir = await mkdtemp(join(root, `${SPOOL_PREFIX}${process.pid}-`)).catch((e: unknown) => {
    src.destroy();
    throw spoolError(root, record.key, e);
  });
  try {
    const file = join(dir, "object");
    await pipeline(src, check.stream, createWriteStream(file, { flags: "wx", mode: 0o600 }), {
      signal: o.signal,
    }).catch((e: unknown) => {
      throw e instanceof StrongboxError ? e : spoolError(root, record.key, e);
    });
    check.verdict();
    // Open, then remove the name: the checked copy lives only as long as this handle.
    return await open(file, "r");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Size and SHA-256 of the bytes passing through `stream`; `streaming` fails the stream itself at its end. */
function checking(record: StoredRecord, mismatch: (m: Mismatch) => StrongboxError, streaming: boolean) {
  const hash = createHash("sha256");
  let size = 0;
  const verdict = (): StrongboxError | undefined => {
    const sha256 = hash.digest("hex");
    if (size !== record.size) return mismatch({ kind: "size", size, sha256 });
    if (sha256 !== record.sha256) return mismatch({ kind: "hash", size, sha256 });
    return undefined;
  };
  const stream = new Transform({
    transform(chunk: Buffer, _e, cb) {
      size += chunk.length;
      if (size > record.size) return cb(mismatch({ kind: "larger", size }));
      hash.update(chunk);
      streamed(chunk.length);
      cb(null, chunk);
    },
    flush(cb) {
      cb(streaming ? verdict() : undefined);
    },
  });
  return {
    stream,
    verdict(): void {
      const e = verdict();
      if (e) throw e;
    },
  };
}

/** A local object hashed through its open file (one reused buffer, no garbage); the handle back if it matches. */
async function hashLocal(
  handle: FileHandle,
  record: StoredRecord,
  mismatch: (m: Mismatch) => StrongboxError,
  signal: AbortSignal | undefined,
): Promise<FileHandle> {
  try {
    const hash = createHash("sha256");
    const buffer = Buffer.allocUnsafe(1 << 20);
    let size = 0;
    for (;;) {
      signal?.throwIfAborted();
      // One byte past the record is enough to know it is larger.
      const want = Math.min(buffer.length, record.size + 1 - size);
      const { bytesRead } = await handle.read(buffer, 0, want, size);
      if (bytesRead === 0) break;
      size += bytesRead;
      if (size > record.size) throw mismatch({ kind: "larger", size });
      hash.update(buffer.subarray(0, bytesRead));
    }
    const sha256 = hash.digest("hex");
    if (size !== record.size) throw mismatch({ kind: "size", size, sha256 });
    if (sha256 !== record.sha256) throw mismatch({ kind: "hash", size, sha256 });
    return handle;
  } catch (e) {
    await handle.close().catch(() => {});
    throw e;
  }
}

/**
 * The error to report when decrypting a streamed checked read failed: if the rest of the stored
 * bytes do not match their signed record, that mismatch. A flipped byte in a recipient stanza makes
 * age say that no identity matches, a wrong-key diagnosis for what is damage; the hash tells them
 * apart. (A spooled read was checked before decryption: its failures are the decryption's own.)
 * Only decryption failures read on (at most one part or binlog file); others are returned as they are.
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

const SPOOL_PREFIX = "strongbox-spool-";

/** The temp directory could not take the object (full, read-only, not ours): its own clear error. */
function spoolError(root: string, key: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException).code;
  if (!code || !["ENOSPC", "EDQUOT", "EACCES", "EPERM", "EROFS", "ENOENT"].includes(code)) return e;
  return new StrongboxError(
    "SPOOL_FAILED",
    `cannot hold ${key} in ${root} for its check before use (${code})`,
    {
      hint: "each part is checked in a private temp file before it is decrypted (two parts at a time): point TMPDIR at a writable filesystem with room",
      cause: e,
    },
  );
}
const swept = new Set<string>();

/**
 * Removes spool directories a killed process left (named with its pid), once per process and
 * temp directory. Their content is encrypted (age), but takes room.
 */
async function sweepDeadSpools(root: string): Promise<void> {
  if (swept.has(root)) return;
  swept.add(root);
  const names = await readdir(root).catch(() => [] as string[]);
  for (const name of names) {
    const m = new RegExp(`^${SPOOL_PREFIX}(\\d+)-`).exec(name);
    if (m && !pidAlive(Number(m[1])))
      await rm(join(root, name), { recursive: true, force: true }).catch(() => {});
  }
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

/** A part's size or hash that does not match its manifest, as the error naming the part. */
function partMismatch(m: Manifest, part: PartRecord): (x: Mismatch) => StrongboxError {
  const where = `backup ${m.id} part ${part.index} (${part.key})`;
  const hint = "restore from an offsite copy";
  return (x) =>
    x.kind === "larger"
      ? new StrongboxError(
          "PART_CORRUPT",
          `${where} fails its SHA-256 check: it is larger than recorded (${part.size} bytes)`,
          { hint },
        )
      : x.kind === "size"
        ? new StrongboxError(
            "PART_CORRUPT",
            `${where} fails its SHA-256 check: it has ${x.size} bytes, the manifest says ${part.size} (truncated?)`,
            { hint },
          )
        : new StrongboxError("PART_CORRUPT", `${where} fails its SHA-256 check`, { hint });
}

/**
 * Stored bytes of one part, checked against the manifest's size and SHA-256: by default before any
 * byte is handed on (see CheckedReadOptions.verifyFirst). A mismatch names the part and says it
 * fails its hash check.
 */
export async function readPartChecked(
  repo: Repository,
  m: Manifest,
  part: PartRecord,
  signal?: AbortSignal,
  o: Omit<CheckedReadOptions, "signal"> = {},
): Promise<Readable> {
  try {
    return await readChecked(repo.storage, part, partMismatch(m, part), { ...o, signal });
  } catch (e) {
    throw partError(m, part, e);
  }
}

/** One part as an open file checked against the manifest (openChecked); the caller closes it. */
export async function openPartChecked(
  repo: Repository,
  m: Manifest,
  part: PartRecord,
  o: Omit<CheckedReadOptions, "verifyFirst"> = {},
): Promise<FileHandle> {
  try {
    return await openChecked(repo.storage, part, partMismatch(m, part), o);
  } catch (e) {
    throw partError(m, part, e);
  }
}
