// A fresh, empty local repository in a temp directory, for tests that need a real one without a cluster.
import { mkdtemp } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateSigningKey } from "../../src/crypto/sign.ts";
import { Repository } from "../../src/repository/repository.ts";
import { LocalStorage } from "../../src/storage/local.ts";

export async function tempRepository(label: string): Promise<{ repo: Repository; dir: string }> {
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
  return { repo, dir };
}
