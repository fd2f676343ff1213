// The native sealer's parts for a repository whose objects are not local files (SFTP, S3): the
// sealer writes each part into a private spool directory on this host (0700, under TMPDIR), and
// each finished part is uploaded from there and removed, two uploads at a time. The sealer gets
// the next part's key only once a part was uploaded (seal.ts, keysAfterCommit), so at most four
// parts are ever on disk: bounded temp space (4 × backup.partSize), never the backup. Node then
// only moves sealed bytes; sealing the stream in Node cost about 1 s of CPU per 200 MB on the
// benchmark machine (docs/benchmarks.md). Uploading each part while it is sealed was tried and
// measured no faster here (docs/benchmarks.md, stop 31).
import { createReadStream } from "node:fs";
import { mkdtemp, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import type { Readable } from "node:stream";
import { StrongboxError } from "../errors.ts";
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
    async commit(temp: string, key: string): Promise<void> {
      // A function, so the storage core can reopen the file and retry an upload cut short.
      const open = () => createReadStream(temp, { highWaterMark: 1 << 20 });
      // Never over an existing object, as LocalFiles.commit promises.
      await (storage as Uploader).put(key, open, {
        size: (await stat(temp)).size,
        file: temp,
        ifAbsent: true,
      });
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
          hint: "free space in TMPDIR (four parts, 4 × backup.partSize, must fit there), or point TMPDIR elsewhere",
        },
      );
    },
    async close(): Promise<void> {
      await rm(dir, { recursive: true, force: true });
    },
  };
}
