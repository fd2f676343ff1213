// The native part sealer (native/seal.c) for local repositories. zstd's output goes straight into
// it, fd to fd: it cuts the stream into parts, encrypts each as an age file, hashes and writes it.
// This process keeps the keys: it makes each part's age header and payload key and hands them
// over on a pipe, and it commits each part file the sealer reports finished. The compressed
// stream never crosses Node, which spent about twice the sealer's CPU on it (docs/benchmarks.md).
import { type ChildProcess, spawn } from "node:child_process";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { startAgeFile } from "../crypto/age.ts";
import type { AgeRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { LocalFiles } from "../storage/types.ts";
import { TailBuffer, terminate } from "../util/proc.ts";
import { nativeBinary } from "./native.ts";
import type { PartRecord } from "./parts.ts";

/** Parts whose keys wait in the pipe, so the sealer never waits for the next part's key. */
const KEYS_AHEAD = 2;
/**
 * With keysAfterCommit: part files that may exist at once (sealed or being sealed, not yet
 * uploaded). Two upload while two more are sealed; with two, the sealer (and the backup tool
 * behind it) stood still from its third part until the first upload ended: 1.3 s of a 0.5 GB
 * backup to SFTP (docs/benchmarks.md, stop 32).
 */
const SPOOLED_PARTS = 4;

/** The sealer to use, or undefined for the built-in one (see nativeBinary). */
export function nativeSealer(): string | undefined {
  return nativeBinary("strongbox-seal");
}

export interface SealOptions {
  sealer: string;
  files: LocalFiles;
  keyFor: (index: number) => string;
  partSize: number;
  recipients: AgeRecipient[];
  signal?: AbortSignal;
  /** The first part's file is created only once this settles; a rejection fails the sealing. */
  ready?: Promise<unknown> | undefined;
  /**
   * Hand the sealer the next part's key only once the part before is committed: commits that
   * upload (spool.ts) then hold the sealer back, so only a few part files exist at a time.
   */
  keysAfterCommit?: boolean;
  /** Commits running at once (default 1; uploads from a spool overlap two). */
  commitConcurrency?: number;
  /**
   * Write no files: the parts go to this file descriptor as the agent protocol's frames (the
   * agent's stdout, the SSH channel), and `files` only names them (see `framesOnly`).
   */
  framesFd?: number;
}

/** The `files` of a sealing into frames: nothing is written here, so nothing to commit or remove. */
export const framesOnly: LocalFiles = {
  durable: false,
  // Ignored by the sealer under --frames; a record needs a path all the same.
  tempPath: async () => "-",
  commit: async () => {},
  discard: async () => {},
  writeError: () => undefined,
};

export interface Sealing {
  child: ChildProcess;
  /** The parts, in order, once every one is committed; rejects on the first failure. */
  parts: Promise<PartRecord[]>;
}

interface Handed {
  key: string;
  temp: string;
}

function record(path: string, prefix: Buffer, payloadKey: Buffer): Buffer {
  const p = Buffer.from(path);
  const out = Buffer.alloc(4 + p.length + 4 + prefix.length + payloadKey.length);
  let at = out.writeUInt32LE(p.length, 0);
  at += p.copy(out, at);
  at = out.writeUInt32LE(prefix.length, at);
  at += prefix.copy(out, at);
  payloadKey.copy(out, at);
  payloadKey.fill(0);
  return out;
}

/**
 * Seals `input` (a child's stdout, handed to the sealer as its stdin; the caller closes its own
 * copy) into parts committed to `files`. Parts not committed are removed on failure.
 */
export function sealParts(input: Readable, o: SealOptions): Sealing {
  const frames = o.framesFd !== undefined;
  const args = [
    String(o.partSize),
    ...(o.files.durable ? [] : ["--no-sync"]),
    ...(frames ? ["--frames"] : []),
  ];
  // Under --frames stdout carries the frames and the report lines come on fd 4.
  const child = spawn(o.sealer, args, {
    stdio: frames ? [input, o.framesFd!, "pipe", "pipe", "pipe"] : [input, "pipe", "pipe", "pipe"],
  });
  const control = child.stdio[3] as Writable;
  // The sealer closing its end early (it failed) is reported by its exit, not by this pipe.
  control.on("error", () => {});
  const stderr = new TailBuffer();
  child.stderr!.on("data", (c: Buffer) => stderr.push(c));

  const handed: Handed[] = [];
  let failure: { error: unknown } | undefined;
  const fail = (error: unknown) => {
    failure ??= { error };
    void terminate(child, 1000);
  };
  // Keys are made and sent one after another, in part order, the first once `ready` settles.
  let sending: Promise<unknown> = Promise.resolve(o.ready);
  const sendKey = () => {
    sending = sending.then(async () => {
      if (failure) return;
      const index = handed.length;
      const key = o.keyFor(index);
      const temp = await o.files.tempPath(key);
      handed.push({ key, temp });
      const { prefix, payloadKey } = await startAgeFile(o.recipients);
      // The record holds the payload key: wiped once it is in the pipe.
      const bytes = record(temp, prefix, payloadKey);
      control.write(bytes, () => bytes.fill(0));
    });
    sending.catch(fail);
  };
  for (let i = 0; i < (o.keysAfterCommit ? SPOOLED_PARTS : KEYS_AHEAD); i++) sendKey();

  const records: PartRecord[] = [];
  // Commits start in part order; up to commitConcurrency of them run at once.
  let committing: Promise<void> = Promise.resolve();
  const running: Promise<void>[] = [];
  const lines = createInterface({ input: (frames ? child.stdio[4] : child.stdout) as Readable });
  lines.on("line", (line) => {
    const m = /^part (\d+) (\d+) (\d+) ([0-9a-f]{64})$/.exec(line);
    const index = Number(m?.[1]);
    const part = handed[index];
    if (!m || !part || index !== records.length) {
      fail(new StrongboxError("SEALER_PROTOCOL", `strongbox-seal reported something unexpected: ${line}`));
      return;
    }
    const done: PartRecord = {
      index,
      key: part.key,
      size: Number(m[3]),
      sha256: m[4]!,
      plainSize: Number(m[2]),
    };
    records.push(done);
    if (!o.keysAfterCommit) sendKey();
    committing = committing.then(async () => {
      while (running.length >= (o.commitConcurrency ?? 1)) await running.shift();
      if (failure) return;
      const commit = o.files.commit(part.temp, part.key).then(() => {
        part.temp = "";
      });
      commit.catch(fail);
      if (o.keysAfterCommit) commit.then(sendKey, () => {});
      running.push(commit.catch(() => {}));
    });
    committing.catch(fail);
  });

  const onAbort = () => fail(o.signal?.reason ?? new Error("aborted"));
  o.signal?.addEventListener("abort", onAbort, { once: true });

  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(new StrongboxError("CHILD_NOT_FOUND", `strongbox-seal: ${e.message}`, { cause: e })),
    );
    child.once("close", (code, signal) => resolve({ code, signal }));
  });

  const parts = (async () => {
    try {
      const { code, signal } = await exited;
      // A sealer that failed stops the commits that have not started (sealed parts waiting for an
      // upload): the error comes without sending them first. Uploads already running finish.
      if (code !== 0) fail(sealerError(code, signal, stderr.lastLines(1), o, handed[records.length]?.key));
      await sending.catch(() => {});
      await committing.catch(() => {});
      await Promise.all(running);
      if (failure) throw failure.error;
      if (records.length === 0) throw new StrongboxError("SEALER_PROTOCOL", "strongbox-seal wrote no part");
      return records;
    } catch (error) {
      await Promise.all(handed.filter((h) => h.temp).map((h) => o.files.discard(h.temp)));
      throw error;
    } finally {
      o.signal?.removeEventListener("abort", onAbort);
      control.destroy();
    }
  })();
  parts.catch(() => {});
  return { child, parts };
}

// "strongbox-seal: ENOSPC write part: No space left on device" becomes the storage's own error.
function sealerError(
  code: number | null,
  signal: NodeJS.Signals | null,
  last: string,
  o: SealOptions,
  key: string | undefined,
): unknown {
  const m = /^strongbox-seal: (E[A-Z0-9]+) (.*)$/.exec(last);
  if (m && key) {
    const mapped = o.files.writeError(m[1]!, m[2]!, key);
    if (mapped instanceof StrongboxError) return mapped;
  }
  const how = code === null ? `killed by ${signal}` : `exited with code ${code}`;
  return new StrongboxError("CHILD_FAILED", `strongbox-seal ${how}: ${last || "(no output)"}`, {
    stage: "seal",
  });
}
