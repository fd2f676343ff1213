// A repository on any storage: its signed config, the backups' parts and manifests.
//
//   strongbox-repository.json        format, id, recipients, signing public key (signed)
//   backups/<id>/part-000000.age     parts: each a complete age v1 file of the zstd stream
//   backups/<id>/manifest.json       written last: a backup without it does not exist
//   locks/writer.json                one writer at a time
import { randomUUID } from "node:crypto";
import { canonicalJson, sign, verify } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import type { Storage } from "../storage/types.ts";
import { readAll } from "../util/stream.ts";
import { EvidenceWriter } from "./evidence.ts";
import { BACKUP_ID_RE, type Manifest, parseManifest } from "./manifest.ts";

export const REPOSITORY_FORMAT = 1;
export const REPO_CONFIG_KEY = "strongbox-repository.json";

export interface RepositoryInfo {
  format: number;
  id: string;
  createdAt: string;
  recipients: string[];
  passphrase: boolean;
  signingPublicKey: string;
  compression: { algorithm: "zstd"; level: number };
  partSize: number;
  /**
   * The format of the repository's evidence log (evidence.ts) when it keeps one from its start:
   * then a log without a trusted entry means it was deleted, and no backup is trusted.
   */
  evidence?: number;
  signature?: string;
}

function unsignedInfo(info: RepositoryInfo): Omit<RepositoryInfo, "signature"> {
  const { signature: _s, ...rest } = info;
  return rest;
}

export class Repository {
  readonly storage: Storage;
  info: RepositoryInfo;
  readonly name: string;

  constructor(name: string, storage: Storage, info: RepositoryInfo) {
    this.name = name;
    this.storage = storage;
    this.info = info;
  }

  static async init(
    name: string,
    storage: Storage,
    o: Omit<RepositoryInfo, "format" | "id" | "createdAt" | "signature"> & { signingPrivateKeyPem: string },
  ): Promise<Repository> {
    if (await storage.stat(REPO_CONFIG_KEY)) {
      throw new StrongboxError(
        "REPO_EXISTS",
        `repository ${name} (${storage.description}) is already initialised`,
      );
    }
    const { signingPrivateKeyPem, ...rest } = o;
    const info: RepositoryInfo = {
      format: REPOSITORY_FORMAT,
      id: randomUUID(),
      createdAt: new Date().toISOString(),
      ...rest,
      evidence: 1,
    };
    info.signature = sign(signingPrivateKeyPem, Buffer.from(canonicalJson(unsignedInfo(info))));
    await storage.put(REPO_CONFIG_KEY, Buffer.from(`${JSON.stringify(info, null, 2)}\n`), { ifAbsent: true });
    const repo = new Repository(name, storage, info);
    // The evidence log starts with the repository: an empty, signed state.
    const signing = { privateKeyPem: signingPrivateKeyPem, publicKey: info.signingPublicKey };
    await (await EvidenceWriter.open(repo, signing, [signing.publicKey])).baseline("genesis", {});
    return repo;
  }

  static async open(name: string, storage: Storage): Promise<Repository> {
    let text: Buffer;
    try {
      text = await readAll(await storage.get(REPO_CONFIG_KEY));
    } catch (e) {
      if ((e as StrongboxError).code === "STORAGE_NOT_FOUND") {
        throw new StrongboxError(
          "REPO_NOT_INITIALISED",
          `repository ${name} (${storage.description}) is not initialised`,
          {
            hint: "run: strongbox init",
          },
        );
      }
      throw e;
    }
    let info: RepositoryInfo;
    try {
      info = JSON.parse(text.toString("utf8")) as RepositoryInfo;
    } catch {
      throw new StrongboxError("REPO_CORRUPT", `repository ${name}: ${REPO_CONFIG_KEY} is not valid JSON`);
    }
    if (info.format !== REPOSITORY_FORMAT) {
      throw new StrongboxError(
        "REPO_FORMAT",
        `repository ${name} has format ${info.format}; this strongbox reads ${REPOSITORY_FORMAT}`,
      );
    }
    return new Repository(name, storage, info);
  }

  /**
   * Checks the repository config against the signing keys we trust (one, or a list during a
   * signing key rotation); throws REPO_TAMPERED.
   */
  verifyInfo(trusted: string | readonly string[]): void {
    const keys = typeof trusted === "string" ? [trusted] : trusted;
    const key = this.info.signingPublicKey;
    let ok = false;
    try {
      ok =
        keys.includes(key) &&
        !!this.info.signature &&
        verify(key, Buffer.from(canonicalJson(unsignedInfo(this.info))), this.info.signature);
    } catch {
      ok = false;
    }
    if (!ok) {
      throw new StrongboxError(
        "REPO_TAMPERED",
        `repository ${this.name}: ${REPO_CONFIG_KEY} is not signed by a trusted signing key`,
        { hint: "someone changed the repository's recipients or keys; investigate before using it" },
      );
    }
  }

  backupPrefix(id: string): string {
    return `backups/${id}/`;
  }
  partKey(id: string, index: number): string {
    return `backups/${id}/part-${String(index).padStart(6, "0")}.age`;
  }
  manifestKey(id: string): string {
    return `backups/${id}/manifest.json`;
  }

  /** Backup ids with objects but no manifest: leftovers of crashed or failed runs. */
  async scan(): Promise<{ committed: string[]; orphans: string[] }> {
    const seen = new Map<string, boolean>();
    for await (const o of this.storage.list("backups/")) {
      const [, id, file] = o.key.split("/");
      if (!id || !BACKUP_ID_RE.test(id)) continue;
      seen.set(id, (seen.get(id) ?? false) || file === "manifest.json");
    }
    const ids = [...seen.keys()].sort();
    return { committed: ids.filter((i) => seen.get(i)), orphans: ids.filter((i) => !seen.get(i)) };
  }

  /** The committed backups' manifests; `committed` skips the scan when the caller just did one. */
  async list(committed?: readonly string[]): Promise<Manifest[]> {
    const ids = committed ?? (await this.scan()).committed;
    return Promise.all(ids.map((id) => this.get(id)));
  }

  async get(id: string): Promise<Manifest> {
    if (!BACKUP_ID_RE.test(id)) {
      throw new StrongboxError("BACKUP_NOT_FOUND", `"${id}" is not a backup id`, {
        hint: "see: strongbox list",
      });
    }
    let text: Buffer;
    try {
      text = await readAll(await this.storage.get(this.manifestKey(id)));
    } catch (e) {
      if ((e as StrongboxError).code === "STORAGE_NOT_FOUND") {
        throw new StrongboxError("BACKUP_NOT_FOUND", `no backup ${id} in repository ${this.name}`, {
          hint: "see: strongbox list",
        });
      }
      throw e;
    }
    const m = parseManifest(text.toString("utf8"), this.manifestKey(id));
    if (m.id !== id) {
      throw new StrongboxError(
        "MANIFEST_TAMPERED",
        `manifest ${this.manifestKey(id)} claims to be backup ${m.id}`,
      );
    }
    return m;
  }

  /** The commit point: the manifest goes in last, and never over an existing one. */
  async commit(m: Manifest): Promise<void> {
    await this.storage.put(this.manifestKey(m.id), Buffer.from(`${JSON.stringify(m, null, 2)}\n`), {
      ifAbsent: true,
    });
  }

  /** Key rotation only: atomically replaces a committed manifest with a re-signed one. */
  async replaceManifest(m: Manifest): Promise<void> {
    await this.storage.put(this.manifestKey(m.id), Buffer.from(`${JSON.stringify(m, null, 2)}\n`));
  }

  /** Re-signs the repository config (new recipients or a new signing key). */
  async updateInfo(
    change: Partial<Pick<RepositoryInfo, "recipients" | "passphrase" | "signingPublicKey">>,
    signingPrivateKeyPem: string,
  ): Promise<void> {
    const info: RepositoryInfo = { ...unsignedInfo(this.info), ...change };
    info.signature = sign(signingPrivateKeyPem, Buffer.from(canonicalJson(unsignedInfo(info))));
    await this.storage.put(REPO_CONFIG_KEY, Buffer.from(`${JSON.stringify(info, null, 2)}\n`));
    this.info = info;
  }

  /** Removes every object of an uncommitted backup. Refuses committed ones (that is prune's job). */
  async removeUncommitted(id: string): Promise<number> {
    if (await this.storage.stat(this.manifestKey(id))) {
      throw new StrongboxError("BACKUP_COMMITTED", `backup ${id} is committed; use prune to remove backups`);
    }
    let removed = 0;
    for await (const o of this.storage.list(this.backupPrefix(id))) {
      await this.storage.delete(o.key);
      removed++;
    }
    return removed;
  }
}
