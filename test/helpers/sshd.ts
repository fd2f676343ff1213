// A real OpenSSH sshd for tests: generated host and user keys, a generated config, a free loopback
// port, no chroot. start() / stop() can be called again (same port, same keys) to simulate an outage.

import { type ChildProcess, execFile, spawn } from "node:child_process";
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { answersSsh } from "../../src/sandbox/sshd.ts";
import type { SftpStorageOptions } from "../../src/storage/sftp.ts";
import { descendants } from "../../src/util/liveness.ts";

const run = promisify(execFile);
const SSHD = "/usr/sbin/sshd";

export interface SshdOptions {
  /** Account to log in as (default: the current user). */
  user?: string;
  /** Extra arguments of `internal-sftp`, e.g. "-P remove,rmdir" for an append-only account. */
  sftpArgs?: string;
  /** Passphrase of the generated user key (default: none). */
  passphrase?: string;
  /** Run this for the user key whatever the client asks (authorized_keys `restrict,command="…"`). */
  forcedCommand?: string;
}

export interface SshServer {
  readonly dir: string;
  readonly host: string;
  readonly port: number;
  readonly user: string;
  /** "ssh-ed25519 AAAA…" of the server. */
  readonly hostKeyLine: string;
  /** "SHA256:…" of the server's key. */
  readonly hostKeyFingerprint: string;
  /** known_hosts with a "[127.0.0.1]:port" entry for the server. */
  readonly knownHostsFile: string;
  /** Authorized user key (0600). */
  readonly userKeyFile: string;
  /** Passphrase file of userKeyFile when a passphrase was asked for. */
  readonly passphraseFile: string | undefined;
  /** A valid key that is NOT authorized. */
  readonly otherKeyFile: string;
  /** A different ed25519 host key line (for mismatch tests). */
  readonly otherHostKeyLine: string;
  readonly running: boolean;
  start(): Promise<void>;
  /** Stops sshd and every session process it started (as a crash or reboot would). */
  stop(): Promise<void>;
  /** stop() and remove the temp directory. */
  destroy(): Promise<void>;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() =>
        typeof address === "object" && address ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

async function keygen(path: string, passphrase = ""): Promise<string> {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", passphrase, "-C", "strongbox-test", "-f", path]);
  return (await readFile(`${path}.pub`, "utf8")).trim();
}

/** Resolves when the port answers with an SSH banner. */
async function waitForBanner(port: number, child: ChildProcess, stderr: () => string): Promise<void> {
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`sshd exited (${child.exitCode ?? child.signalCode}): ${stderr()}`);
    }
    if (await answersSsh("127.0.0.1", port)) return;
    await delay(50);
  }
  throw new Error(`sshd did not answer on port ${port}: ${stderr()}`);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

export async function startSshd(options: SshdOptions = {}): Promise<SshServer> {
  const dir = await mkdtemp(join(tmpdir(), "strongbox-sshd-"));
  await chmod(dir, 0o755); // another account (options.user) must reach its files
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 }); // privilege separation directory
  const port = await freePort();
  const user = options.user ?? userInfo().username;
  const hostKey = join(dir, "ssh_host_ed25519_key");
  const hostKeyLine = (await keygen(hostKey)).split(" ").slice(0, 2).join(" ");
  const otherHostKeyLine = (await keygen(join(dir, "other_host_key"))).split(" ").slice(0, 2).join(" ");
  const userKeyFile = join(dir, "id_user");
  const userPub = await keygen(userKeyFile, options.passphrase);
  const otherKeyFile = join(dir, "id_other");
  await keygen(otherKeyFile);
  let passphraseFile: string | undefined;
  if (options.passphrase) {
    passphraseFile = join(dir, "passphrase");
    await writeFile(passphraseFile, `${options.passphrase}\n`, { mode: 0o600 });
  }
  const authorizedKeys = join(dir, "authorized_keys");
  const keyOptions = options.forcedCommand
    ? `restrict,command="${options.forcedCommand.replace(/["\\]/g, "\\$&")}" `
    : "";
  await writeFile(authorizedKeys, `${keyOptions}${userPub}\n`, { mode: 0o644 });
  const knownHostsFile = join(dir, "known_hosts");
  await writeFile(knownHostsFile, `[127.0.0.1]:${port} ${hostKeyLine}\n`);
  const { stdout: fingerprintOut } = await run("ssh-keygen", ["-l", "-E", "sha256", "-f", `${hostKey}.pub`]);
  const hostKeyFingerprint = fingerprintOut.split(" ")[1]!;
  const config = join(dir, "sshd_config");
  await writeFile(
    config,
    [
      `Port ${port}`,
      "ListenAddress 127.0.0.1",
      `HostKey ${hostKey}`,
      `PidFile ${join(dir, "sshd.pid")}`,
      `AuthorizedKeysFile ${authorizedKeys}`,
      "StrictModes no",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin prohibit-password",
      "UsePAM no",
      `AllowUsers ${user}`,
      "MaxStartups 100",
      "MaxSessions 100",
      "LogLevel ERROR",
      `Subsystem sftp internal-sftp ${options.sftpArgs ?? ""}`.trim(),
      "",
    ].join("\n"),
  );
  // sshd refuses to start when its host key is readable by others.
  await chmod(hostKey, 0o600);

  let child: ChildProcess | undefined;
  let stderrTail = "";
  const server: SshServer = {
    dir,
    host: "127.0.0.1",
    port,
    user,
    hostKeyLine,
    hostKeyFingerprint,
    knownHostsFile,
    userKeyFile,
    passphraseFile,
    otherKeyFile,
    otherHostKeyLine,
    get running() {
      return child !== undefined && child.exitCode === null && child.signalCode === null;
    },
    async start() {
      if (server.running) return;
      stderrTail = "";
      const started = spawn(SSHD, ["-D", "-e", "-f", config], { stdio: ["ignore", "ignore", "pipe"] });
      started.stderr?.on("data", (chunk: Buffer) => {
        stderrTail = (stderrTail + chunk.toString()).slice(-4000);
      });
      child = started;
      try {
        await waitForBanner(port, started, () => stderrTail);
      } catch (error) {
        await server.stop();
        throw error;
      }
    },
    async stop() {
      const stopping = child;
      child = undefined;
      if (!stopping?.pid || stopping.exitCode !== null || stopping.signalCode !== null) return;
      const exited = new Promise<void>((resolve) => stopping.once("exit", () => resolve()));
      const pids = [stopping.pid, ...descendants(stopping.pid)];
      for (const pid of pids) {
        try {
          process.kill(pid, "SIGTERM");
        } catch {}
      }
      await Promise.race([exited, delay(3000)]);
      for (let i = 0; i < 30 && pids.some(alive); i++) await delay(100);
      for (const pid of pids) {
        if (!alive(pid)) continue;
        try {
          process.kill(pid, "SIGKILL");
        } catch {}
      }
    },
    async destroy() {
      await server.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
  await server.start();
  return server;
}

/** Starts one sshd for the calling test file (before) and removes it (after). */
export function useSshd(options: SshdOptions = {}): { server: SshServer } {
  const holder = {} as { server: SshServer };
  before(async () => {
    holder.server = await startSshd(options);
  });
  after(async () => {
    await holder.server?.destroy();
  });
  return holder;
}

/** How a client reaches `server` with its user key and pinned host key: the SSH fields of an SFTP repository's `storage` and of a node's `agent`. */
export function sshFieldsOf(server: SshServer) {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    privateKey: server.userKeyFile,
    hostKey: server.hostKeyLine,
  };
}

/** SftpStorage options for a repository at `path` on `server`, with its user key and pinned host key. */
export function sftpOptionsOf(
  server: SshServer,
  path: string,
  extra: Partial<SftpStorageOptions> = {},
): SftpStorageOptions {
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    path,
    privateKeyFile: server.userKeyFile,
    hostKey: server.hostKeyLine,
    ...extra,
  };
}
