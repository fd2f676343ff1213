// What backup, list and show share: the config, the repository and its trust anchor.
import { repositoryConfig, signingKeyOf } from "../config/context.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { Repository } from "../repository/repository.ts";
import { openStorage } from "../storage/open.ts";

export interface OpenedRepo {
  loaded: LoadedConfig;
  repo: Repository;
  close(): Promise<void>;
}

export async function openConfiguredRepository(
  configPath: string | undefined,
  repoName?: string,
): Promise<OpenedRepo> {
  const loaded = await loadConfig(configPath);
  const rc = repositoryConfig(loaded, repoName);
  const storage = await openStorage(rc, loaded);
  try {
    const repo = await Repository.open(rc.name, storage);
    return { loaded, repo, close: () => storage.close() };
  } catch (e) {
    await storage.close();
    throw e;
  }
}

/** The public key manifests must be signed with: from the local signing key. */
export async function trustedPublicKey(loaded: LoadedConfig): Promise<string> {
  return (await signingKeyOf(loaded)).publicKey;
}
