// Storage for a configured repository: the backend by type, wrapped once with retries and append-only.
import type { LoadedConfig } from "../config/load.ts";
import type { RepositoryConfig } from "../config/schema.ts";
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
  }
}
