// The native sealer's parts for a repository whose objects are not local files (SFTP, S3): the
// sealer writes each part into a private spool directory on this host (0700, under TMPDIR), and
// each part is uploaded from there while it is being sealed (src/storage/growing-file.ts), so
// that no whole part is left to send when the stream ends, then removed. The sealer gets the next
// part's key only once a part was uploaded (seal.ts, keysAfterCommit), so at most four parts are
// ever on disk: bounded temp space (4 × backup.partSize), never the backup. Node then only moves
// sealed bytes; sealing the stream in Node cost about 1 s of CPU per 200 MB on the benchmark
// machine (docs/benchmarks.md).
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { StrongboxError } from "../errors.ts";
import { created, followFile } from "../storage/growing-file.ts";
import type { LocalFiles, PutOptions, Storage } from "../storage/types.ts";

export interface Spool extends LocalFiles {
  readonly dir: string;
  /** Removes the spool directory and whatever is left in it. */
  close(): Promise<void>;
}

type Uploader = Pick<Storage, "put"> & {
  put(key: string, data: Readable | (() => Readable), options?: PutOptions): Promise<unknown>;
};

export async function openSpool(storage: Pick<Storage, "put" | "description">): Promise<Spool> {
  const dir = await mkdtemp(join(tmpdir(), "strongbox-spool-")); // created 0700
  let n = 0;
  return {
    dir,
    durable: false,
    async tempPath(key: string): Promise<string> {
      return join(dir, `${n++}-${basename(key)}`);
    },
    // Each part goes up while it is sealed. An upload cut short stores nothing: SFTP renames a
    // finished temp file into place, S3 completes a multipart upload after its last part.
    async follow(temp: string, key: string, complete: Promise<number>): Promise<void> {
      // Nothing is sent (no temp object is created) for a part the sealer never started.
      if (!(await created(temp, complete))) return;
      // A function, so the storage core can start again from the file's start.
      await (storage as Uploader).put(key, () => followFile(temp, complete), {
        ifAbsent: true,
        growingFile: { path: temp, complete },
      });
      await rm(temp, { force: true });
    },
    async commit(temp: string, key: string): Promise<void> {
      // A function, so the storage core can reopen the file and retry an upload cut short.
      const open = () => createReadStream(temp, { highWaterMark: 1 << 20 });
      await (storage as Uploader).put(key, open, { size: (await stat(temp)).size, ifAbsent: true });
      await rm(temp, { force: true });
    },
    async discard(temp: string): Promise<void> {
      await rm(temp, { force: true });
    },
    writeError(code: string, message: string, key: string): unknown {
      if (code !== "ENOSPC" && code !== "EDQUOT") return undefined;
      return new StrongboxError(
        "STORAGE_FULL",
        `the spool directory ${dir} for ${storage.description} is full while writing ${key}: ${message}`,
        {
          stage: "seal",
          hint: "free space in TMPDIR (two or three parts must fit there), or point TMPDIR elsewhere",
        },
      );
    },
    async close(): Promise<void> {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
