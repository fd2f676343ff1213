// The one way commands open a configured repository: its storage, the repository itself, and —
// when the caller has the trust anchor — its signed config checked against it.
import { repositoryConfig, storageSpecOf } from "../config/context.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import type { RepositoryConfig } from "../config/schema.ts";
import { StrongboxError } from "../errors.ts";
import { Repository } from "../repository/repository.ts";
import { openStorage } from "../storage/open.ts";
import type { Storage } from "../storage/types.ts";

export interface OpenedRepo {
  loaded: LoadedConfig;
  repo: Repository;
  close(): Promise<void>;
}

/**
 * Opens repository `name` (default: the default repository). With `trusted`, the repository's
 * signed config must verify against that signing public key (REPO_TAMPERED otherwise).
 */
export async function openRepository(
  loaded: LoadedConfig,
  name?: string,
  o: { trusted?: string | readonly string[] } = {},
): Promise<Repository> {
  const rc = repositoryConfig(loaded, name);
  const storage = await openRepositoryStorage(rc, loaded);
  try {
    const repo = await Repository.open(rc.name, storage);
    if (o.trusted !== undefined) repo.verifyInfo(o.trusted);
    return repo;
  } catch (e) {
    await storage.close();
    throw e;
  }
}

/** The storage of a configured repository, not yet opened as a repository (init does that). */
export async function openRepositoryStorage(
  rc: RepositoryConfig,
  loaded: LoadedConfig,
  o: { create?: boolean } = {},
): Promise<Storage> {
  try {
    return await openStorage(storageSpecOf(rc, loaded), { appendOnly: rc.appendOnly, create: o.create });
  } catch (e) {
    if ((e as StrongboxError).code === "STORAGE_NOT_FOUND" && rc.storage.type === "local") {
      throw new StrongboxError(
        "REPO_MISSING",
        `repository ${rc.name}: its directory ${loaded.resolvePath(rc.storage.path)} does not exist (a disk not mounted?)`,
        { hint: "mount it or fix the path; only `strongbox init` creates a repository", cause: e },
      );
    }
    throw e;
  }
}

/** Loads the configuration, then opens the repository. */
export async function openConfiguredRepository(
  configPath: string | undefined,
  repoName?: string,
): Promise<OpenedRepo> {
  const loaded = await loadConfig(configPath);
  const repo = await openRepository(loaded, repoName);
  return { loaded, repo, close: () => repo.storage.close() };
}
