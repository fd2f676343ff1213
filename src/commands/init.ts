// init: the manifest signing key (if missing) and the repository with its recipients.
import { mkdir, writeFile } from "node:fs/promises";
import { dirname } from "node:path";
import {
  recipientsOf,
  repositoryConfig,
  signingKeyOf,
  signingPublicKeyPath,
  trustedKeysOf,
} from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { generateSigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { Repository } from "../repository/repository.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { parseSize } from "../util/size.ts";
import { openRepositoryStorage } from "./repo.ts";

export async function init(g: GlobalOptions, o: { repo?: string }, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const recipients = await recipientsOf(loaded);
  if (loaded.config.keys.signingKey === undefined) {
    throw new StrongboxError(
      "SIGNING_KEY_MISSING",
      `${loaded.path} has no keys.signingKey: init creates a repository and its signing key, so it needs one`,
      { hint: "set keys.signingKey (e.g. keys/signing.key) on the backup host and run init there" },
    );
  }
  const keyPath = loaded.resolvePath(loaded.config.keys.signingKey);
  let createdKey = false;
  let signing = await signingKeyOf(loaded).catch((e: StrongboxError) => {
    if (e.code !== "SIGNING_KEY_MISSING") throw e;
    return undefined;
  });
  if (!signing) {
    const k = generateSigningKey();
    await mkdir(dirname(keyPath), { recursive: true, mode: 0o700 });
    await writeFile(keyPath, k.privateKeyPem, { mode: 0o600, flag: "wx" });
    signing = { privateKeyPem: k.privateKeyPem, publicKey: k.publicKey };
    createdKey = true;
  }
  // The public half, for escrow beside the age identity: a restore host needs only it.
  const publicKeyFile = signingPublicKeyPath(keyPath);
  await writeFile(publicKeyFile, `${signing.publicKey}\n`, { mode: 0o600 });
  const names = o.repo ? [o.repo] : loaded.config.repositories.map((r) => r.name);
  const results: { name: string; id: string; location: string; created: boolean }[] = [];
  for (const name of names) {
    const rc = repositoryConfig(loaded, name);
    const storage = await openRepositoryStorage(rc, loaded, { create: true });
    try {
      const existing = await Repository.open(name, storage).catch((e: StrongboxError) => {
        if (e.code === "REPO_NOT_INITIALISED") return undefined;
        throw e;
      });
      if (existing) {
        existing.verifyInfo(await trustedKeysOf(loaded));
        results.push({ name, id: existing.info.id, location: storage.description, created: false });
        continue;
      }
      const repo = await Repository.init(name, storage, {
        recipients: recipients.names,
        passphrase: recipients.passphrase,
        signingPublicKey: signing.publicKey,
        compression: { algorithm: "zstd", level: loaded.config.backup.compressionLevel },
        partSize: parseSize(loaded.config.backup.partSize),
        signingPrivateKeyPem: signing.privateKeyPem,
      });
      results.push({ name, id: repo.info.id, location: storage.description, created: true });
    } finally {
      await storage.close();
    }
  }
  return reply(
    out,
    {
      signingKey: keyPath,
      signingPublicKey: signing.publicKey,
      signingPublicKeyFile: publicKeyFile,
      createdSigningKey: createdKey,
      repositories: results,
    },
    () =>
      [
        createdKey
          ? `signing key created: ${keyPath} (mode 0600; back it up, it proves your manifests are yours)`
          : `signing key: ${keyPath}`,
        `signing public key: ${signing.publicKey}`,
        `  written to ${publicKeyFile}: escrow it beside the age identity; a restore host needs only it (keys.signingPublicKey), never the private key`,
        ...results.map(
          (r) =>
            `repository ${r.name}: ${r.created ? "initialised" : "already initialised"} at ${r.location} (id ${r.id})`,
        ),
        `recipients: ${recipients.names.join(", ")}`,
      ].join("\n"),
  );
}
