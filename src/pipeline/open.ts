// The native payload opener (native/open.c) for restores: a checked part's payload decrypted
// straight into zstd's input, fd to fd, so the plaintext never crosses the Node process (which
// spent about six times `age -d`'s CPU and most of a restore's memory on it: docs/benchmarks.md).
// This process keeps the identity: it reads the part's header, unwraps the file key, checks the
// header's MAC and hands the opener only the payload key, on a pipe.
import { spawn } from "node:child_process";
import type { FileHandle } from "node:fs/promises";
import type { Writable } from "node:stream";
import { openAgeFile } from "../crypto/age.ts";
import { AGE_MAX_HEADER_SIZE, PAYLOAD_NONCE_SIZE } from "../crypto/age-format.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { payloadAuth, trailingData, truncated } from "../crypto/age-stream.ts";
import { StrongboxError } from "../errors.ts";
import { TailBuffer, terminate } from "../util/proc.ts";
import { nativeBinary } from "./native.ts";

/** The opener to use, or undefined to decrypt in Node (see nativeBinary). */
export function nativeOpener(): string | undefined {
  return nativeBinary("strongbox-open");
}

/** The first read of a part, enough for any header strongbox writes (one stanza per recipient). */
const HEAD = 64 * 1024;

export interface OpenOptions {
  opener: string;
  /** The age file, already checked against its record; read, never closed, here. */
  file: FileHandle;
  /** Its recorded size: nothing after it is read. */
  size: number;
  identities: AgeIdentity[];
  /** Where the plaintext goes (a blocking pipe); stays open. */
  outFd: number;
  signal?: AbortSignal | undefined;
}

/** Decrypts one age file into `outFd`; rejects with the AGE_* error of a bad file, like Node's decryptor. */
export async function openInto(o: OpenOptions): Promise<void> {
  o.signal?.throwIfAborted();
  let head = await readAt(o.file, Math.min(o.size, HEAD));
  let opened = await openAgeFile(head, o.identities, head.length === o.size);
  if (!opened) {
    head = await readAt(o.file, Math.min(o.size, AGE_MAX_HEADER_SIZE + PAYLOAD_NONCE_SIZE));
    opened = await openAgeFile(head, o.identities, true);
  }
  const { payloadOffset, payloadKey } = opened!;
  const control = Buffer.alloc(16 + payloadKey.length);
  control.writeBigUInt64LE(BigInt(payloadOffset), 0);
  control.writeBigUInt64LE(BigInt(o.size), 8);
  payloadKey.copy(control, 16);
  payloadKey.fill(0);

  const child = spawn(o.opener, [], { stdio: ["pipe", o.outFd, "pipe", o.file.fd] });
  const stderr = new TailBuffer();
  child.stderr!.on("data", (c: Buffer) => stderr.push(c));
  const stdin = child.stdin as Writable;
  // The opener failing before it read its key is reported by its exit, not by this pipe.
  stdin.on("error", () => {});
  stdin.end(control, () => control.fill(0));
  const onAbort = () => void terminate(child, 1000);
  o.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>(
      (resolve, reject) => {
        child.once("error", (e) =>
          reject(new StrongboxError("CHILD_NOT_FOUND", `strongbox-open: ${e.message}`, { cause: e })),
        );
        child.once("close", (code, signal) => resolve({ code, signal }));
      },
    );
    o.signal?.throwIfAborted();
    if (code !== 0) throw openerError(code, signal, stderr.lastLines(1));
  } finally {
    control.fill(0);
    o.signal?.removeEventListener("abort", onAbort);
  }
}

async function readAt(file: FileHandle, length: number): Promise<Buffer> {
  const buffer = Buffer.alloc(length);
  let at = 0;
  while (at < length) {
    const { bytesRead } = await file.read(buffer, at, length - at, at);
    if (bytesRead === 0) break;
    at += bytesRead;
  }
  return buffer.subarray(0, at);
}

// The opener's own verdicts on the payload, as Node's decryptor words them.
const PAYLOAD_ERRORS: Record<string, (message: string) => StrongboxError> = {
  AGE_PAYLOAD_AUTH: payloadAuth,
  AGE_TRUNCATED: truncated,
  AGE_TRAILING_DATA: trailingData,
};

// "strongbox-open: AGE_PAYLOAD_AUTH age payload chunk 3 failed …" becomes that error.
function openerError(code: number | null, signal: NodeJS.Signals | null, last: string): StrongboxError {
  const m = /^strongbox-open: ([A-Z0-9_]+) (.*)$/.exec(last);
  const known = m ? PAYLOAD_ERRORS[m[1]!] : undefined;
  if (known) return known(m![2]!);
  const how = code === null ? `killed by ${signal}` : `exited with code ${code}`;
  return new StrongboxError("CHILD_FAILED", `strongbox-open ${how}: ${last || "(no output)"}`, {
    stage: "decrypt",
  });
}
