// Point-in-time recovery, the work on files: an archived binlog fetched (hash-checked), decrypted and
// decompressed to a private file, and a file applied to a server with mariadb-binlog | mariadb.
import { spawn } from "node:child_process";
import { createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { createZstdDecompress } from "node:zlib";
import { createDecryptStream } from "../crypto/age.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { BinlogEntry } from "../repository/binlog-index.ts";
import { readBinlogChecked } from "../repository/binlog-index.ts";
import { checkedFailure } from "../repository/checked-read.ts";
import type { Repository } from "../repository/repository.ts";
import { TailBuffer } from "../util/proc.ts";

export async function fetchDecrypted(
  repo: Repository,
  e: BinlogEntry,
  identities: AgeIdentity[],
  path: string,
  signal?: AbortSignal,
): Promise<void> {
  const key = e.key!;
  try {
    const stored = await readBinlogChecked(repo, { ...e, key }, signal);
    const dec = createDecryptStream(identities);
    stored.on("error", (x) => dec.destroy(x));
    stored.pipe(dec);
    try {
      await pipeline(dec, createZstdDecompress(), createWriteStream(path, { mode: 0o600 }), { signal });
    } catch (x) {
      stored.unpipe(dec);
      const error = await checkedFailure(stored, x);
      stored.destroy();
      throw error;
    }
  } catch (err) {
    if (err instanceof StrongboxError) throw err;
    throw new StrongboxError(
      "BINLOG_CORRUPT",
      `archived binlog ${key} cannot be read: ${(err as Error).message}`,
      {
        stage: "binlog-fetch",
        cause: err,
      },
    );
  }
}

/** mariadb-binlog FILE | mariadb: both children supervised, stderr tails kept for the error. */
export async function applyFile(
  file: string,
  args: string[],
  socket: string,
  o: { mariadbBinlog?: string | undefined; mariadb?: string | undefined; signal?: AbortSignal | undefined },
): Promise<void> {
  const dump = spawn(o.mariadbBinlog ?? "mariadb-binlog", ["--no-defaults", ...args, file], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, TZ: "UTC" },
    signal: o.signal,
  });
  const client = spawn(
    o.mariadb ?? "mariadb",
    ["--no-defaults", `--socket=${socket}`, "--user=root", "--binary-mode", "--batch"],
    { stdio: ["pipe", "ignore", "pipe"], signal: o.signal },
  );
  const dumpErr = new TailBuffer();
  const clientErr = new TailBuffer();
  dump.stderr.on("data", (c: Buffer) => dumpErr.push(c));
  client.stderr.on("data", (c: Buffer) => clientErr.push(c));
  const exit = (c: ReturnType<typeof spawn>) =>
    new Promise<number | null>((resolve, reject) => {
      c.once("error", reject);
      c.once("close", (code) => resolve(code));
    });
  const [, dumpCode, clientCode] = await Promise.all([
    pipeline(dump.stdout, client.stdin).catch(() => {}),
    exit(dump),
    exit(client),
  ]);
  if (clientCode !== 0) {
    throw new StrongboxError(
      "PITR_APPLY_FAILED",
      `applying ${file} failed in the mariadb client: ${clientErr.lastLines() || `exit ${clientCode}`}`,
      { stage: "binlog-apply" },
    );
  }
  if (dumpCode !== 0) {
    throw new StrongboxError(
      "PITR_APPLY_FAILED",
      `mariadb-binlog failed on ${file}: ${dumpErr.lastLines() || `exit ${dumpCode}`}`,
      { stage: "mariadb-binlog" },
    );
  }
}
