// Storage by backend type, wrapped once with retries and append-only. The caller translates its
// configuration into a StorageSpec: no backend reads the configuration itself.
// Remote backends are loaded only when used: the AWS SDK alone costs tens of MB of memory.
import { LocalStorage } from "./local.ts";
import type { S3StorageOptions } from "./s3-client.ts";
import type { SftpStorageOptions } from "./sftp.ts";
import type { Storage } from "./types.ts";
import { wrapStorage } from "./wrap.ts";

export type StorageSpec =
  | { type: "local"; path: string }
  | ({ type: "sftp" } & SftpStorageOptions)
  | ({ type: "s3" } & S3StorageOptions);

/**
 * `create`: make a local storage's directory when it is missing (only `init` does: for every other
 * command a missing directory is an unmounted disk or a wrong path, never an empty repository).
 */
export async function openStorage(
  spec: StorageSpec,
  o: { appendOnly: boolean; create?: boolean },
): Promise<Storage> {
  // Nothing stays mutable in an append-only repository: the writer lock only ever creates records.
  const wrapping = { appendOnly: o.appendOnly };
  switch (spec.type) {
    case "local":
      return wrapStorage(await LocalStorage.open(spec.path, { create: o.create ?? false }), wrapping);
    case "sftp": {
      const { type: _, ...options } = spec;
      return wrapStorage(await (await import("./sftp.ts")).SftpStorage.open(options), wrapping);
    }
    case "s3": {
      const { type: _, ...options } = spec;
      return wrapStorage(await (await import("./s3.ts")).S3Storage.open(options), wrapping);
    }
  }
}
