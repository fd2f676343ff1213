// Turns a loaded config into what commands use: credentials, nodes, recipients, keys.
// Secret files are refused when group or others can read them.
import { readFile } from "node:fs/promises";
import { type AgeIdentity, parseIdentities, parseRecipient } from "../crypto/age-keys.ts";
import type { RecipientSet } from "../crypto/recipient-set.ts";
import { publicKeyFromPrivate, type SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import type { ClusterNode, Credentials, TlsOptions } from "../galera/connection.ts";
import type { StorageSpec } from "../storage/open.ts";
import { parseDuration } from "../util/duration.ts";
import { assertPrivateFile } from "../util/private-file.ts";
import { parseSize } from "../util/size.ts";
import type { LoadedConfig } from "./load.ts";
import type { RepositoryConfig } from "./schema.ts";

async function readSecretFile(path: string, what: string): Promise<string> {
  assertPrivateFile(path, what);
  return (await readFile(path, "utf8")).replace(/\r?\n$/, "");
}

export async function credentialsFor(
  loaded: LoadedConfig,
  which: "backup" | "admin",
): Promise<Credentials | undefined> {
  const c = loaded.config.cluster.credentials[which];
  if (!c) return undefined;
  const password = c.passwordFile
    ? await readSecretFile(loaded.resolvePath(c.passwordFile), `password file of the ${which} account`)
    : undefined;
  return { user: c.user, password };
}

/**
 * The configured nodes as this host reaches them. A node with an agent is another host: its
 * socket, datadir and defaultsFile are paths there, handed to the agent as written (absolute) and
 * never used here — the backup host's own connections (probe, desync, inventory) go to host:port.
 */
export function clusterNodes(loaded: LoadedConfig): ClusterNode[] {
  return loaded.config.cluster.nodes.map((n) => ({
    name: n.name,
    host: n.host,
    port: n.port,
    ...(n.agent
      ? {}
      : {
          socket: n.socket ? loaded.resolvePath(n.socket) : undefined,
          datadir: n.datadir ? loaded.resolvePath(n.datadir) : undefined,
          defaultsFile: n.defaultsFile ? loaded.resolvePath(n.defaultsFile) : undefined,
        }),
    agent: n.agent
      ? {
          host: n.agent.host ?? n.host,
          port: n.agent.port,
          user: n.agent.user,
          privateKeyFile: n.agent.privateKey ? loaded.resolvePath(n.agent.privateKey) : undefined,
          agentSocket: agentSocketOf(loaded, n.agent.sshAgent),
          passphraseFile: n.agent.passphraseFile ? loaded.resolvePath(n.agent.passphraseFile) : undefined,
          hostKey: n.agent.hostKey,
          knownHostsFile: n.agent.knownHostsFile ? loaded.resolvePath(n.agent.knownHostsFile) : undefined,
          command: n.agent.command,
          connectTimeoutMs: parseDuration(n.agent.connectTimeout),
          onNode: { socket: n.socket, datadir: n.datadir, defaultsFile: n.defaultsFile },
        }
      : undefined,
  }));
}

/** sshAgent: true is $SSH_AUTH_SOCK, a path is that socket; absent or false: no agent asked for. */
function agentSocketOf(loaded: LoadedConfig, v: boolean | string | undefined): string | undefined {
  if (typeof v === "string") return loaded.resolvePath(v);
  return v === true ? process.env.SSH_AUTH_SOCK || undefined : undefined;
}

export function clusterTls(loaded: LoadedConfig): TlsOptions | undefined {
  const t = loaded.config.cluster.tls;
  if (!t) return undefined;
  return {
    ca: t.ca ? loaded.resolvePath(t.ca) : undefined,
    cert: t.cert ? loaded.resolvePath(t.cert) : undefined,
    key: t.key ? loaded.resolvePath(t.key) : undefined,
  };
}

export async function recipientsOf(loaded: LoadedConfig): Promise<RecipientSet> {
  const k = loaded.config.keys;
  if (k.passphraseFile) {
    const passphrase = await readSecretFile(loaded.resolvePath(k.passphraseFile), "passphrase file");
    if (passphrase.length < 12) {
      throw new StrongboxError("PASSPHRASE_WEAK", "the passphrase must have at least 12 characters", {
        hint: `edit ${k.passphraseFile}`,
      });
    }
    // age allows a scrypt recipient only on its own.
    return { age: [{ type: "scrypt", passphrase }], names: ["scrypt"], passphrase: true };
  }
  const texts = [...k.recipients];
  if (k.recipientsFile) {
    const file = loaded.resolvePath(k.recipientsFile);
    const body = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
      throw new StrongboxError("RECIPIENTS_FILE", `recipients file ${file} cannot be read (${e.code})`);
    });
    texts.push(
      ...body
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l && !l.startsWith("#")),
    );
  }
  const unique = [...new Set(texts)];
  if (unique.length === 0) {
    throw new StrongboxError("NO_RECIPIENTS", "no recipients configured", {
      hint: "add keys.recipients (age1…)",
    });
  }
  const age = unique.map((r) => parseRecipient(r));
  return { age, names: age.map((r) => r.recipient), passphrase: false };
}

/** Where `key rotate --signing` keeps the next signing key until the rotation completes. */
export function nextSigningKeyPath(keyPath: string): string {
  return `${keyPath}.new`;
}

/** The file `init` writes the signing public key to, for escrow beside the age identity. */
export function signingPublicKeyPath(keyPath: string): string {
  return `${keyPath}.pub`;
}

async function readSigningKey(path: string): Promise<SigningKey> {
  let pem: string;
  try {
    assertPrivateFile(path, "signing key");
    pem = await readFile(path, "utf8");
  } catch (e) {
    if ((e as StrongboxError).code === "FILE_MISSING") {
      throw new StrongboxError("SIGNING_KEY_MISSING", `signing key ${path} is missing`, {
        hint: "run `strongbox init` to create it, or restore it from your key backup",
      });
    }
    throw e;
  }
  try {
    return { privateKeyPem: pem, publicKey: publicKeyFromPrivate(pem) };
  } catch (e) {
    throw new StrongboxError("SIGNING_KEY_INVALID", `signing key ${path} is not an Ed25519 private key`, {
      cause: e,
    });
  }
}

/** The signing key of a writer (backup, copy, prune, key rotation, binlog archive). */
export async function signingKeyOf(loaded: LoadedConfig): Promise<SigningKey> {
  const configured = loaded.config.keys.signingKey;
  if (configured === undefined) {
    throw new StrongboxError(
      "SIGNING_KEY_MISSING",
      `${loaded.path} has no keys.signingKey: this configuration only reads (list, show, verify, restore)`,
      { hint: "run writers (backup, copy, prune, key rotate) where the signing key lives" },
    );
  }
  return readSigningKey(loaded.resolvePath(configured));
}

/**
 * The signing public keys this configuration trusts: keys.signingPublicKey (one, or a list during a
 * rotation), and the public half of keys.signingKey and of a rotation's next key when present.
 * A reader needs no private key: keys.signingPublicKey alone is enough.
 */
export async function trustedKeysOf(loaded: LoadedConfig): Promise<string[]> {
  const k = loaded.config.keys;
  const pinned = k.signingPublicKey === undefined ? [] : [k.signingPublicKey].flat();
  const keys = [...pinned];
  if (k.signingKey !== undefined) {
    const path = loaded.resolvePath(k.signingKey);
    const own = await readSigningKey(path).catch((e: StrongboxError) => {
      // A reader with pinned keys does not need the private key to be there.
      if (e.code === "SIGNING_KEY_MISSING" && pinned.length > 0) return undefined;
      if (e.code === "SIGNING_KEY_MISSING") {
        throw new StrongboxError("SIGNING_KEY_MISSING", `${e.message}, and no keys.signingPublicKey is set`, {
          hint: "a reader (restore host) needs only the public key: set keys.signingPublicKey (from init's <signingKey>.pub)",
        });
      }
      throw e;
    });
    if (own) keys.push(own.publicKey);
    const next = await readSigningKey(nextSigningKeyPath(path)).catch(() => undefined);
    if (next) keys.push(next.publicKey);
  }
  return [...new Set(keys)];
}

/** The identity (private key) for restore, show and verify --read-data: --identity, else keys.identity. */
export async function identitiesOf(
  loaded: LoadedConfig | undefined,
  explicit?: string,
): Promise<AgeIdentity[]> {
  const k = loaded?.config.keys;
  if (k?.passphraseFile && !explicit) {
    const passphrase = await readSecretFile(loaded!.resolvePath(k.passphraseFile), "passphrase file");
    return [{ type: "scrypt", passphrase }];
  }
  const path = explicit ?? (k?.identity ? loaded!.resolvePath(k.identity) : undefined);
  if (!path) {
    throw new StrongboxError("IDENTITY_NEEDED", "no identity to decrypt with", {
      hint: "pass --identity FILE (the age identity kept off the backup host)",
    });
  }
  const text = await readSecretFile(path, "identity file").catch((e: StrongboxError) => {
    if (e.code === "FILE_MISSING") {
      throw new StrongboxError("IDENTITY_MISSING", `identity file ${path} is missing`, {
        hint: "pass --identity FILE",
      });
    }
    throw e;
  });
  return parseIdentities(text);
}

/** The storage options of a configured repository, its paths resolved against the config's directory. */
export function storageSpecOf(rc: RepositoryConfig, loaded: LoadedConfig): StorageSpec {
  const s = rc.storage;
  switch (s.type) {
    case "local":
      return { type: "local", path: loaded.resolvePath(s.path) };
    case "sftp":
      return {
        type: "sftp",
        host: s.host,
        port: s.port,
        user: s.user,
        path: s.path,
        ...(s.privateKey ? { privateKeyFile: loaded.resolvePath(s.privateKey) } : {}),
        ...(s.sshAgent !== undefined ? { agentSocket: agentSocketOf(loaded, s.sshAgent) } : {}),
        ...(s.passphraseFile ? { passphraseFile: loaded.resolvePath(s.passphraseFile) } : {}),
        ...(s.hostKey !== undefined ? { hostKey: s.hostKey } : {}),
        ...(s.knownHostsFile ? { knownHostsFile: loaded.resolvePath(s.knownHostsFile) } : {}),
        readOnlyFiles: s.readOnlyFiles,
        connectTimeoutMs: parseDuration(s.connectTimeout),
      };
    case "s3":
      return {
        type: "s3",
        bucket: s.bucket,
        prefix: s.prefix,
        ...(s.endpoint ? { endpoint: s.endpoint } : {}),
        region: s.region,
        forcePathStyle: s.forcePathStyle,
        ...(s.credentialsFile ? { credentialsFile: loaded.resolvePath(s.credentialsFile) } : {}),
        ...(s.profile ? { profile: s.profile } : {}),
        ...(s.caFile ? { caFile: loaded.resolvePath(s.caFile) } : {}),
        allowInsecureHttp: s.allowInsecureHttp,
        ...(s.serverSideEncryption ? { serverSideEncryption: s.serverSideEncryption } : {}),
        ...(s.objectLock ? { objectLock: s.objectLock } : {}),
        partSize: parseSize(s.partSize),
        concurrency: s.concurrency,
        conditionalWrites: s.conditionalWrites,
      };
  }
}

export function repositoryConfig(loaded: LoadedConfig, name?: string): RepositoryConfig {
  const repos = loaded.config.repositories;
  const wanted = name ?? loaded.config.defaultRepository ?? repos[0]!.name;
  const repo = repos.find((r) => r.name === wanted);
  if (!repo) {
    throw new StrongboxError("REPO_UNKNOWN", `no repository named "${wanted}" in ${loaded.path}`, {
      hint: `configured: ${repos.map((r) => r.name).join(", ")}`,
    });
  }
  return repo;
}

/** Local state of this host (desync markers, run catalog): config.stateDir, else "state" beside the config. */
export function stateDirOf(loaded: LoadedConfig): string {
  return loaded.resolvePath(loaded.config.stateDir ?? "state");
}
