// A fresh, empty local repository in a temp directory, for tests that need a real one without a
// cluster: created as `init` does (signed record, evidence log started), with `commit` to add a
// backup as the backup host would (signed, recorded in the evidence log).
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey, type SigningKey } from "../../src/crypto/sign.ts";
import { EvidenceWriter } from "../../src/repository/evidence.ts";
import { readLock } from "../../src/repository/lock.ts";
import { type Manifest, manifestDigest, signManifest } from "../../src/repository/manifest.ts";
import { Repository } from "../../src/repository/repository.ts";
import { LocalStorage } from "../../src/storage/local.ts";

export interface TempRepository {
  repo: Repository;
  dir: string;
  signing: SigningKey;
  /** Signs `m` and commits it with its evidence entries; returns the signed manifest. */
  commit(m: Manifest): Promise<Manifest>;
}

export async function tempRepository(label: string): Promise<TempRepository> {
  const dir = await mkdtemp(join(tmpdir(), `sb-${label}-`));
  const signing = generateSigningKey();
  const repo = await Repository.init("local", await LocalStorage.open(dir), {
    recipients: [],
    passphrase: false,
    signingPublicKey: signing.publicKey,
    compression: { algorithm: "zstd", level: 1 },
    partSize: 1 << 20,
    signingPrivateKeyPem: signing.privateKeyPem,
  });
  return {
    repo,
    dir,
    signing,
    async commit(m) {
      const signed = signManifest(m, signing.privateKeyPem, signing.publicKey);
      const w = await EvidenceWriter.open(repo, signing, [signing.publicKey]);
      await w.record("commit", [{ id: signed.id, digest: manifestDigest(signed) }], () =>
        repo.commit(signed),
      );
      return signed;
    },
  };
}

/** Whether a writer holds the lock of the local repository in `dir` now (the newest lock record). */
export async function lockHeld(dir: string): Promise<boolean> {
  const storage = await LocalStorage.open(dir, { create: false }).catch(() => undefined);
  if (!storage) return false;
  try {
    return (await readLock(storage)) !== undefined;
  } catch {
    return false;
  } finally {
    await storage.close();
  }
}
