// Storage for a configured repository: the backend by type, wrapped once with retries and append-only.
// Remote backends are loaded only when used: the AWS SDK alone costs tens of MB of memory.
import type { LoadedConfig } from "../config/load.ts";
import type { RepositoryConfig } from "../config/schema.ts";
import { parseDuration } from "../util/duration.ts";
import { parseSize } from "../util/size.ts";
import { LocalStorage } from "./local.ts";
import type { Storage } from "./types.ts";
import { wrapStorage } from "./wrap.ts";

export async function openStorage(rc: RepositoryConfig, loaded: LoadedConfig): Promise<Storage> {
  const s = rc.storage;
  switch (s.type) {
    case "local":
      return wrapStorage(await LocalStorage.open(loaded.resolvePath(s.path)), {
        appendOnly: rc.appendOnly,
        mutablePrefixes: ["locks/"],
      });
    case "sftp":
      return wrapStorage(
        await (await import("./sftp.ts")).SftpStorage.open({
          host: s.host,
          port: s.port,
          user: s.user,
          path: s.path,
          privateKeyFile: loaded.resolvePath(s.privateKey),
          ...(s.passphraseFile ? { passphraseFile: loaded.resolvePath(s.passphraseFile) } : {}),
          ...(s.hostKey !== undefined ? { hostKey: s.hostKey } : {}),
          ...(s.knownHostsFile ? { knownHostsFile: loaded.resolvePath(s.knownHostsFile) } : {}),
          readOnlyFiles: s.readOnlyFiles,
          connectTimeoutMs: parseDuration(s.connectTimeout),
        }),
        { appendOnly: rc.appendOnly, mutablePrefixes: ["locks/"] },
      );
    case "s3":
      return wrapStorage(
        await (await import("./s3.ts")).S3Storage.open({
          bucket: s.bucket,
          prefix: s.prefix,
          ...(s.endpoint ? { endpoint: s.endpoint } : {}),
          region: s.region,
          forcePathStyle: s.forcePathStyle,
          credentialsFile: loaded.resolvePath(s.credentialsFile),
          ...(s.caFile ? { caFile: loaded.resolvePath(s.caFile) } : {}),
          allowInsecureHttp: s.allowInsecureHttp,
          ...(s.serverSideEncryption ? { serverSideEncryption: s.serverSideEncryption } : {}),
          ...(s.objectLock ? { objectLock: s.objectLock } : {}),
          partSize: parseSize(s.partSize),
          concurrency: s.concurrency,
          conditionalWrites: s.conditionalWrites,
        }),
        { appendOnly: rc.appendOnly, mutablePrefixes: ["locks/"] },
      );
  }
}
