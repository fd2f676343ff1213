// An SSH client connection (ssh2): public key authentication only, with a key file or the keys of
// an ssh-agent (SSH_AUTH_SOCK, as OpenSSH users expect), and the server's host key checked
// against pinned keys or a known_hosts file, never trusted on first use. Used by the SFTP backend
// and by the backup host to reach the node agents; each names its failures with its own codes.
import { readFile, stat } from "node:fs/promises";
import ssh2, { type Client } from "ssh2";
import type { ErrorCode } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import { isNetworkError, messageOf } from "../util/error-kinds.ts";
import { assertPrivateFile } from "../util/private-file.ts";
import {
  checkHostKey,
  fingerprintOf,
  type HostKeyPin,
  hostKeyAlgorithms,
  keyTypeOf,
  parseHostKeyPin,
  parseKnownHosts,
} from "./hostkey.ts";

// ssh2 is CommonJS: `utils` is not visible as a named export to Node's ESM loader.
const { Client: SshClient, utils } = ssh2;

export interface SshOptions {
  host: string;
  /** Default 22. */
  port?: number;
  user: string;
  /** OpenSSH private key file (mode 0600). Without it, the keys of the ssh-agent at `agentSocket`. */
  privateKeyFile?: string | undefined;
  /**
   * The ssh-agent's socket: its keys are offered (before the key file, as OpenSSH does). Default
   * without privateKeyFile: $SSH_AUTH_SOCK.
   */
  agentSocket?: string | undefined;
  /** File holding the private key's passphrase (mode 0600). */
  passphraseFile?: string;
  /** Accepted host key(s): "ssh-ed25519 AAAA…" lines or "SHA256:…" fingerprints. */
  hostKey?: string | readonly string[];
  /** A known_hosts file (plain or hashed entries; @revoked honoured, @cert-authority ignored). */
  knownHostsFile?: string;
  /** Handshake timeout (default 20 s). */
  connectTimeoutMs?: number;
  /** SSH keepalive interval; three unanswered ones drop the connection (default 15 s). */
  keepaliveIntervalMs?: number;
}

/** The codes and stage SSH failures are reported with. */
export interface SshErrorCodes {
  stage: string;
  /** The host key is not an accepted one. */
  hostKey: ErrorCode;
  /** The server refused our key. */
  auth: ErrorCode;
  /** No connection (refused, unreachable, timed out, dropped in the handshake). */
  unavailable: ErrorCode;
  /** The options cannot work (unreadable key, no host key given). */
  config: ErrorCode;
  /** Anything else. */
  io: ErrorCode;
}

/** The key and the accepted host keys, read once; every connection uses them. */
export interface SshIdentity {
  privateKey: Buffer | undefined;
  /** The ssh-agent socket whose keys are offered. */
  agent: string | undefined;
  passphrase: string | undefined;
  pins: HostKeyPin[];
  revoked: HostKeyPin[];
}

async function readPrivateFile(path: string, what: string): Promise<Buffer> {
  assertPrivateFile(path, what);
  return readFile(path);
}

/** A dropped or refused connection, as ssh2 and the socket report it. */
export function isSshConnectionError(error: unknown): boolean {
  if (isNetworkError(error)) return true;
  const level = (error as { level?: unknown } | undefined)?.level;
  if (level === "client-socket" || level === "client-timeout") return true;
  return /No response from server|Not connected|connection lost|Channel not open|socket hang up/i.test(
    messageOf(error),
  );
}

/** Reads the private key (and its passphrase) and the accepted host keys. */
export async function loadSshIdentity(o: SshOptions, codes: SshErrorCodes): Promise<SshIdentity> {
  const fail = (message: string, extra: { hint?: string; cause?: unknown } = {}) =>
    new StrongboxError(codes.config, message, { stage: codes.stage, ...extra });
  const agent = o.agentSocket ?? (o.privateKeyFile ? undefined : process.env.SSH_AUTH_SOCK || undefined);
  if (!o.privateKeyFile && !agent) {
    throw fail(
      `no SSH key for ${o.user}@${o.host}: no privateKey is configured and no ssh-agent runs (SSH_AUTH_SOCK is not set)`,
      {
        hint: "set privateKey to an OpenSSH key file (mode 0600), or start strongbox where ssh-agent runs (eval $(ssh-agent); ssh-add)",
      },
    );
  }
  if (agent) await assertAgentSocket(agent, fail);
  let privateKey: Buffer | undefined;
  let passphrase: string | undefined;
  if (o.privateKeyFile) {
    privateKey = await readPrivateFile(o.privateKeyFile, "SSH private key");
    passphrase = o.passphraseFile
      ? (await readPrivateFile(o.passphraseFile, "SSH key passphrase file"))
          .toString("utf8")
          .replace(/\r?\n$/, "")
      : undefined;
    const parsed = utils.parseKey(privateKey, passphrase);
    if (parsed instanceof Error) {
      throw fail(`cannot use the SSH private key ${o.privateKeyFile}: ${parsed.message}`, {
        hint: /passphrase/i.test(parsed.message)
          ? "set passphraseFile to a file holding the key's passphrase"
          : "give an OpenSSH private key (ssh-keygen -t ed25519)",
        cause: parsed,
      });
    }
  }
  const port = o.port ?? 22;
  const pins = [o.hostKey ?? []].flat().map((pin) => parseHostKeyPin(pin, codes.config));
  const revoked: HostKeyPin[] = [];
  if (o.knownHostsFile) {
    let text: string;
    try {
      text = await readFile(o.knownHostsFile, "utf8");
    } catch (error) {
      throw fail(`cannot read known_hosts file ${o.knownHostsFile}: ${messageOf(error)}`, { cause: error });
    }
    const known = parseKnownHosts(text, o.host, port);
    pins.push(...known.pins);
    revoked.push(...known.revoked);
  }
  if (pins.length === 0 && !o.knownHostsFile) {
    throw fail(`no host key for ${o.host}: set hostKey or knownHostsFile (keys are never accepted blindly)`, {
      hint: `get it on a trusted path, e.g. ssh-keyscan -p ${port} ${o.host}, and compare fingerprints`,
    });
  }
  return { privateKey, passphrase, agent, pins, revoked };
}

/** The agent's socket must be one: a stale SSH_AUTH_SOCK otherwise fails later as "auth failed". */
async function assertAgentSocket(
  path: string,
  fail: (message: string, extra?: { hint?: string; cause?: unknown }) => StrongboxError,
): Promise<void> {
  try {
    if ((await stat(path)).isSocket()) return;
  } catch (error) {
    throw fail(`the ssh-agent socket ${path} cannot be used: ${messageOf(error)}`, {
      hint: "is ssh-agent running? (SSH_AUTH_SOCK names its socket)",
      cause: error,
    });
  }
  throw fail(`the ssh-agent socket ${path} is not a socket`, {
    hint: "SSH_AUTH_SOCK names the agent's socket",
  });
}

/** What authenticates us, for messages: the key file, the agent's keys, or both. */
function credentialName(o: SshOptions, id: SshIdentity): string {
  const agent = id.agent ? `the keys of the ssh-agent at ${id.agent}` : "";
  if (!o.privateKeyFile) return agent;
  return agent ? `${agent} and the key ${o.privateKeyFile}` : `the key ${o.privateKeyFile}`;
}

/** Connects and authenticates; resolves with the ready client, or rejects with a mapped error. */
export function sshConnect(o: SshOptions, id: SshIdentity, codes: SshErrorCodes): Promise<Client> {
  return new Promise<Client>((resolve, reject) => {
    const client = new SshClient();
    let presented: Buffer | undefined;
    let refusal: string | undefined;
    let settled = false;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      client.end();
      reject(connectError(o, id, codes, error, presented, refusal));
    };
    client.on("error", fail);
    client.on("close", () => fail(new Error("the server closed the connection during the handshake")));
    client.once("ready", () => {
      if (settled) return;
      settled = true;
      resolve(client);
    });
    const serverHostKey = hostKeyAlgorithms(id.pins);
    client.connect({
      host: o.host,
      port: o.port ?? 22,
      username: o.user,
      ...(id.privateKey ? { privateKey: id.privateKey } : {}),
      ...(id.agent ? { agent: id.agent } : {}),
      ...(id.passphrase !== undefined ? { passphrase: id.passphrase } : {}),
      hostVerifier: (key: Buffer): boolean => {
        presented = key;
        const check = checkHostKey(key, id.pins, id.revoked);
        if (!check.ok) refusal = check.reason;
        return check.ok;
      },
      ...(serverHostKey ? { algorithms: { serverHostKey: serverHostKey as never } } : {}),
      readyTimeout: o.connectTimeoutMs ?? 20_000,
      keepaliveInterval: o.keepaliveIntervalMs ?? 15_000,
      keepaliveCountMax: 3,
    });
    // Without TCP_NODELAY, Nagle holds back the small window-adjust packets of a channel that
    // only receives (a backup through an agent, an SFTP read): measured on loopback, 117 MB took
    // 2.8-4.3 s instead of 0.5-0.7 s.
    client.setNoDelay(true);
  });
}

function connectError(
  o: SshOptions,
  id: SshIdentity,
  codes: SshErrorCodes,
  error: unknown,
  presented: Buffer | undefined,
  refusal: string | undefined,
): StrongboxError {
  const where = `${o.user}@${o.host}:${o.port ?? 22}`;
  const stage = codes.stage;
  if (refusal !== undefined && presented) {
    const fingerprint = fingerprintOf(presented);
    return new StrongboxError(
      codes.hostKey,
      `host key verification failed for ${where}: the server presented ${fingerprint}, and ${refusal}`,
      {
        stage,
        hint: "if the server's key was changed on purpose, compare this fingerprint with `ssh-keygen -lf` of its host key on the server itself, then update hostKey or the known_hosts file; otherwise someone may be intercepting the connection",
        cause: error,
        details: { presentedFingerprint: fingerprint, keyType: keyTypeOf(presented) },
      },
    );
  }
  const level = (error as { level?: unknown }).level;
  if (level === "client-authentication") {
    return new StrongboxError(codes.auth, `the SSH server ${where} refused ${credentialName(o, id)}`, {
      stage,
      hint: o.privateKeyFile
        ? `add the public key (ssh-keygen -y -f ${o.privateKeyFile}) to ~${o.user}/.ssh/authorized_keys on the server, and check the user name`
        : `add one of the agent's public keys (ssh-add -L) to ~${o.user}/.ssh/authorized_keys on the server, and check the user name`,
      cause: error,
    });
  }
  if (
    isSshConnectionError(error) ||
    level === "client-dns" ||
    level === "protocol" ||
    level === "handshake"
  ) {
    return new StrongboxError(codes.unavailable, `cannot connect to ${where}: ${messageOf(error)}`, {
      stage,
      hint: "is the SSH server running and reachable?",
      cause: error,
    });
  }
  return new StrongboxError(codes.io, `SSH connection to ${where} failed: ${messageOf(error)}`, {
    stage,
    cause: error,
  });
}
