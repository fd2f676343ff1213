// The OS accounts of a multi-host sandbox (--hosts): one per node, owning its directory and running
// its mariadbd, sshd sessions and agent; one for the backup host, owning the repository, the
// config and the SSH client key. Made with useradd and removed with userdel; needs root.
import { existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { chown, readdir } from "node:fs/promises";
import { dirname, join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { run, sleep } from "../util/proc.ts";

export interface Account {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The account of that name from /etc/passwd, or undefined. */
export function lookupAccount(name: string): Account | undefined {
  for (const line of readFileSync("/etc/passwd", "utf8").split("\n")) {
    const f = line.split(":");
    if (f[0] === name && f.length >= 7) return { name, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
  }
  return undefined;
}

export function accountOf(name: string): Account {
  const a = lookupAccount(name);
  if (!a) {
    throw new StrongboxError("SANDBOX_HOSTS_ACCOUNT", `the sandbox's OS account ${name} does not exist`, {
      hint: "remove the sandbox with: strongbox sandbox down --purge, and start a new one",
    });
  }
  return a;
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) {
    throw new StrongboxError(
      "SANDBOX_HOSTS_ROOT",
      "sandbox up --hosts needs root: it creates an OS account, a loopback address and an sshd per node",
      { hint: "run it as root (sudo), or without --hosts for a sandbox on one host" },
    );
  }
}

function unreachable(path: string, what: string, where: string, why: string): StrongboxError {
  return new StrongboxError(
    "SANDBOX_HOSTS_UNREACHABLE",
    `${what} ${path} is not reachable by the sandbox's accounts: ${where} ${why}`,
    {
      hint: "put it where every account can read it (e.g. /opt or /srv), or let others search the directories above it (chmod o+x)",
    },
  );
}

/** Throws unless `dir` and every directory above it are searchable by others. */
function assertSearchable(dir: string, path: string, what: string): void {
  for (let d = dir; ; d = dirname(d)) {
    if ((statSync(d).mode & 0o001) === 0) throw unreachable(path, what, d, "is not searchable by others");
    if (d === "/") return;
  }
}

/**
 * Throws unless other accounts can reach the file `path`: every directory above it searchable by
 * others, the file readable (and with `exec`, executable) by them.
 */
export function assertReachableByOthers(path: string, what: string, exec = false): void {
  const real = realpathSync(path);
  assertSearchable(dirname(real), path, what);
  const mode = statSync(real).mode;
  if ((mode & 0o004) === 0) throw unreachable(path, what, real, "is not readable by others");
  if (exec && (mode & 0o001) === 0) throw unreachable(path, what, real, "is not executable by others");
}

/** Throws unless other accounts can pass through the directories down to `dir` (which may not exist yet). */
export function assertDirReachableByOthers(dir: string, what: string): void {
  let existing = dirname(dir);
  while (!existsSync(existing)) existing = dirname(existing);
  assertSearchable(realpathSync(existing), dir, what);
}

/** useradd/userdel take a lock on /etc/passwd; another one running at the same moment is waited for. */
async function withPasswdLock(cmd: string, args: string[]): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    try {
      await run(cmd, args, { timeoutMs: 30_000 });
      return;
    } catch (e) {
      if (attempt >= 40 || !/cannot lock|try again later/i.test((e as Error).message)) throw e;
      await sleep(250);
    }
  }
}

/** A system account with its own group, no password (but not locked: sshd takes keys), home `home`. */
export async function createAccount(name: string, home: string): Promise<Account> {
  if (lookupAccount(name)) {
    throw new StrongboxError("SANDBOX_HOSTS_ACCOUNT", `an OS account named ${name} exists already`, {
      hint: "remove it (userdel) or the sandbox that made it (strongbox sandbox down --purge)",
    });
  }
  await withPasswdLock("useradd", [
    "--system",
    "--user-group",
    "--no-create-home",
    "--home-dir",
    home,
    "--shell",
    "/bin/sh",
    "--password",
    "*",
    "--comment",
    "strongbox sandbox",
    name,
  ]);
  return accountOf(name);
}

export async function removeAccount(name: string): Promise<void> {
  if (!lookupAccount(name)) return;
  await withPasswdLock("userdel", [name]);
}

/** chown -R, not following symbolic links. */
export async function chownTree(path: string, a: Account): Promise<void> {
  await chown(path, a.uid, a.gid);
  if (!statSync(path).isDirectory()) return;
  for (const e of await readdir(path, { withFileTypes: true })) {
    const p = join(path, e.name);
    if (e.isSymbolicLink()) continue;
    if (e.isDirectory()) await chownTree(p, a);
    else await chown(p, a.uid, a.gid);
  }
}
