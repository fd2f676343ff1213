// The SFTP backend against a real OpenSSH sshd on loopback (test/helpers/sshd.ts).
import assert from "node:assert/strict";
import { execFile, execFileSync, spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { createReadStream } from "node:fs";
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { Client } from "ssh2";
import { openRepositoryStorage } from "../../src/commands/repo.ts";
import type { LoadedConfig } from "../../src/config/load.ts";
import { repositorySchema } from "../../src/config/schema.ts";
import { SftpStorage, type SftpStorageOptions } from "../../src/storage/sftp.ts";
import type { Storage } from "../../src/storage/types.ts";
import { wrapStorage } from "../../src/storage/wrap.ts";
import { type SshServer, sftpOptionsOf, startSshd } from "../helpers/sshd.ts";
import { byteStream, filesUnder, getBytes, listAll, storageConformance } from "./conformance.ts";

const run = promisify(execFile);
const MiB = 1024 * 1024;

let server: SshServer;
let counter = 0;

before(async () => {
  server = await startSshd();
});
after(async () => {
  await server?.destroy();
});

function options(path: string, extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions {
  return sftpOptionsOf(server, path, extra);
}

/** A fresh repository directory on the (local) server. */
function repoPath(): string {
  return join(server.dir, `repo-${++counter}`);
}

/** Pseudo-random bytes produced lazily, `total` in all; `onChunk` sees each chunk and the total so far. */
function lazyStream(total: number, onChunk?: (read: number, chunk: Buffer) => void): Readable {
  let produced = 0;
  const block = randomBytes(MiB);
  return new Readable({
    read() {
      if (produced >= total) return void this.push(null);
      const n = Math.min(256 * 1024, total - produced);
      const offset = produced % MiB;
      const chunk = Buffer.from(block.subarray(offset, Math.min(MiB, offset + n)));
      produced += chunk.length;
      onChunk?.(produced, chunk);
      this.push(chunk);
    },
  });
}

storageConformance("sftp", async () => {
  const path = repoPath();
  return {
    storage: await SftpStorage.open(options(path)),
    cleanup: () => rm(path, { recursive: true, force: true }),
  };
});

storageConformance("sftp, wrapped by the core", async () => {
  const path = repoPath();
  return {
    storage: wrapStorage(await SftpStorage.open(options(path)), { retry: { attempts: 3, baseDelayMs: 10 } }),
    cleanup: () => rm(path, { recursive: true, force: true }),
  };
});

describe("sftp storage", () => {
  test("a configured sftp repository opens through openRepositoryStorage (paths relative to the config)", async () => {
    const path = repoPath();
    const repository = repositorySchema.parse({
      name: "offsite",
      storage: {
        type: "sftp",
        host: server.host,
        port: server.port,
        user: server.user,
        path,
        privateKey: "id_user",
        knownHostsFile: "known_hosts",
      },
    });
    const loaded = {
      dir: server.dir,
      resolvePath: (p: string) => (p.startsWith("/") ? p : join(server.dir, p)),
    };
    const storage = await openRepositoryStorage(repository, loaded as unknown as LoadedConfig);
    try {
      assert.match(storage.description, /^sftp:\/\//);
      await storage.put("backups/b1/manifest", Buffer.from("m"));
      assert.equal((await getBytes(storage, "backups/b1/manifest")).toString(), "m");
    } finally {
      await storage.close();
    }
  });

  test("files are created 0600 and folders 0700; readOnlyFiles makes files 0400", async () => {
    const path = repoPath();
    const storage = await SftpStorage.open(options(path));
    try {
      await storage.put("backups/2024/part-1", Buffer.from("secret"));
      await storage.put("backups/2024/part-2", byteStream(randomBytes(300_000)));
      await storage.put("locks/writer.json", Buffer.from("{}"), { ifAbsent: true });
      for (const d of [path, join(path, "backups"), join(path, "backups/2024"), join(path, "locks")]) {
        assert.equal((await stat(d)).mode & 0o777, 0o700, d);
      }
      for (const f of ["backups/2024/part-1", "backups/2024/part-2", "locks/writer.json"]) {
        assert.equal((await stat(join(path, f))).mode & 0o777, 0o600, f);
      }
    } finally {
      await storage.close();
    }
    const readOnly = await SftpStorage.open(options(repoPath(), { readOnlyFiles: true }));
    try {
      await readOnly.put("a/b", Buffer.from("x"));
      assert.equal((await stat(join(readOnly.root, "a/b"))).mode & 0o777, 0o400);
      // Overwriting (rename over it) and deleting still work for a normal account.
      await readOnly.put("a/b", Buffer.from("y"));
      assert.equal((await getBytes(readOnly, "a/b")).toString(), "y");
      await readOnly.delete("a/b");
    } finally {
      await readOnly.close();
    }
  });

  test("the description names user, host, port and path, never a secret", async () => {
    const storage = await SftpStorage.open(options(repoPath()));
    try {
      assert.match(storage.description, new RegExp(`^sftp://${server.user}@127\\.0\\.0\\.1:${server.port}/`));
      assert.ok(!storage.description.includes("PRIVATE"));
    } finally {
      await storage.close();
    }
  });

  test("a pinned SHA256 fingerprint and a known_hosts file are accepted", async () => {
    const byFingerprint = await SftpStorage.open(options(repoPath(), { hostKey: server.hostKeyFingerprint }));
    await byFingerprint.put("x", Buffer.from("1"));
    await byFingerprint.close();
    const byKnownHosts = await SftpStorage.open(
      options(repoPath(), { hostKey: undefined, knownHostsFile: server.knownHostsFile }),
    );
    await byKnownHosts.put("x", Buffer.from("1"));
    await byKnownHosts.close();
    // Hashed entries (ssh-keygen -H) work too.
    const hashed = join(server.dir, "known_hosts.hashed");
    await writeFile(hashed, await readFile(server.knownHostsFile));
    await run("ssh-keygen", ["-H", "-f", hashed]);
    assert.match(await readFile(hashed, "utf8"), /^\|1\|/);
    const byHashed = await SftpStorage.open(
      options(repoPath(), { hostKey: undefined, knownHostsFile: hashed }),
    );
    await byHashed.close();
  });

  test("a host key that does not match is refused with STORAGE_HOST_KEY and the presented fingerprint", async () => {
    const check = (error: Error & { code?: string; hint?: string }) => {
      assert.equal(error.code, "STORAGE_HOST_KEY");
      assert.ok(error.message.includes(server.hostKeyFingerprint), error.message);
      assert.match(error.hint ?? "", /fingerprint/);
      return true;
    };
    await assert.rejects(SftpStorage.open(options(repoPath(), { hostKey: server.otherHostKeyLine })), check);
    await assert.rejects(
      SftpStorage.open(
        options(repoPath(), { hostKey: "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA" }),
      ),
      check,
    );
    const wrong = join(server.dir, "known_hosts.wrong");
    await writeFile(wrong, `[127.0.0.1]:${server.port} ${server.otherHostKeyLine}\n`);
    await assert.rejects(
      SftpStorage.open(options(repoPath(), { hostKey: undefined, knownHostsFile: wrong })),
      check,
    );
    // Known for another port only: unknown here, refused too (no trust on first use).
    const otherPort = join(server.dir, "known_hosts.other-port");
    await writeFile(otherPort, `[127.0.0.1]:${server.port + 1} ${server.hostKeyLine}\n`);
    await assert.rejects(
      SftpStorage.open(options(repoPath(), { hostKey: undefined, knownHostsFile: otherPort })),
      (error: Error & { code?: string }) => {
        check(error);
        assert.match(error.message, /no key is known/);
        return true;
      },
    );
    const revoked = join(server.dir, "known_hosts.revoked");
    await writeFile(
      revoked,
      `[127.0.0.1]:${server.port} ${server.hostKeyLine}\n@revoked * ${server.hostKeyLine}\n`,
    );
    await assert.rejects(
      SftpStorage.open(options(repoPath(), { hostKey: undefined, knownHostsFile: revoked })),
      check,
    );
  });

  test("without any host key configured nothing is accepted", async () => {
    await assert.rejects(SftpStorage.open(options(repoPath(), { hostKey: undefined })), {
      code: "STORAGE_CONFIG",
    });
  });

  test("a user key the server does not accept fails with STORAGE_AUTH naming the key", async () => {
    await assert.rejects(
      SftpStorage.open(options(repoPath(), { privateKeyFile: server.otherKeyFile })),
      (error: Error & { code?: string; hint?: string }) => {
        assert.equal(error.code, "STORAGE_AUTH");
        assert.ok(error.message.includes(server.otherKeyFile), error.message);
        assert.match(error.hint ?? "", /authorized_keys/);
        return true;
      },
    );
    await assert.rejects(SftpStorage.open(options(repoPath(), { user: "nosuchuser" })), {
      code: "STORAGE_AUTH",
    });
  });

  test("key files: passphrase file, missing passphrase, too open", async () => {
    const dir = await mkdtemp(join(tmpdir(), "strongbox-sftp-keys-"));
    try {
      const key = join(dir, "id_protected");
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "correct horse", "-f", key]);
      await appendFile(join(server.dir, "authorized_keys"), await readFile(`${key}.pub`));
      const passphraseFile = join(dir, "passphrase");
      await writeFile(passphraseFile, "correct horse\n", { mode: 0o600 });
      const storage = await SftpStorage.open(options(repoPath(), { privateKeyFile: key, passphraseFile }));
      await storage.put("x", Buffer.from("1"));
      await storage.close();
      await assert.rejects(
        SftpStorage.open(options(repoPath(), { privateKeyFile: key })),
        (error: Error & { code?: string; hint?: string }) => {
          assert.equal(error.code, "STORAGE_CONFIG");
          assert.match(error.hint ?? "", /passphraseFile/);
          return true;
        },
      );
      await chmod(key, 0o644);
      await assert.rejects(SftpStorage.open(options(repoPath(), { privateKeyFile: key, passphraseFile })), {
        code: "FILE_TOO_OPEN",
      });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  test("nothing listening: STORAGE_UNAVAILABLE (retried by the core)", async () => {
    const { freePort } = await import("../helpers/sshd.ts");
    await assert.rejects(SftpStorage.open(options(repoPath(), { port: await freePort() })), {
      code: "STORAGE_UNAVAILABLE",
    });
  });

  test("open without create refuses a missing directory", async () => {
    await assert.rejects(SftpStorage.open(options(join(server.dir, "absent", "repo"), { create: false })), {
      code: "STORAGE_NOT_FOUND",
    });
  });

  test("large streamed put: bounded, verified, no temp file left", async () => {
    const path = repoPath();
    const storage = await SftpStorage.open(options(path));
    try {
      const hash = createHash("sha256");
      const source = lazyStream(64 * MiB, (_read, chunk) => hash.update(chunk));
      const { size } = await storage.put("big/part-000001", source);
      assert.equal(size, 64 * MiB);
      const back = createHash("sha256");
      for await (const chunk of await storage.get("big/part-000001")) back.update(chunk as Buffer);
      assert.equal(back.digest("hex"), hash.digest("hex"));
      assert.deepEqual(await filesUnder(path), ["big/part-000001"]);
    } finally {
      await storage.close();
    }
  });

  test("sshd stopped in the middle of a put: clean failure, nothing committed, later puts succeed", async () => {
    const path = repoPath();
    const storage = await SftpStorage.open(options(path));
    try {
      await storage.put("keep", Buffer.from("before"));
      let stopping: Promise<void> | undefined;
      const source = lazyStream(256 * MiB, (read) => {
        if (read >= 16 * MiB && !stopping) stopping = server.stop();
      });
      await assert.rejects(storage.put("parts/p1", source), (error: Error & { code?: string }) => {
        assert.equal(error.code, "STORAGE_UNAVAILABLE", String(error));
        return true;
      });
      await stopping;
      // While it is down: operations fail fast and are retryable.
      await assert.rejects(storage.stat("keep"), { code: "STORAGE_UNAVAILABLE" });
      await server.start();
      // The next operation reconnects and first removes the temp file the failed put left behind.
      assert.equal(await storage.stat("parts/p1"), undefined);
      assert.deepEqual(await filesUnder(path), ["keep"]);
      const data = randomBytes(3 * MiB);
      await storage.put("parts/p1", byteStream(data));
      assert.deepEqual(await getBytes(storage, "parts/p1"), data);
    } finally {
      if (!server.running) await server.start();
      await storage.close();
    }
  });

  test("the core's retry carries a put across an sshd restart", async () => {
    const path = repoPath();
    const retries: number[] = [];
    const storage = wrapStorage(await SftpStorage.open(options(path)), {
      retry: { attempts: 8, baseDelayMs: 200, maxDelayMs: 1000 },
      onRetry: (event) => retries.push(event.attempt),
    });
    let restarted: Promise<void> | undefined;
    try {
      const data = randomBytes(40 * MiB);
      let attempts = 0;
      const put = storage.put("parts/p2", () => {
        const attempt = ++attempts;
        return Readable.from(
          (async function* () {
            const chunk = 256 * 1024;
            for (let offset = 0; offset < data.length; offset += chunk) {
              // The first attempt loses its server after 8 MiB (stopped before the next byte is
              // offered, so the put cannot finish first); it comes back half a second later.
              if (attempt === 1 && offset === 8 * MiB) {
                await server.stop();
                restarted = delay(500).then(() => server.start());
              }
              yield data.subarray(offset, offset + chunk);
            }
          })(),
        );
      });
      assert.deepEqual(await put, { size: data.length });
      assert.ok(retries.length >= 1, "at least one retry");
      assert.deepEqual(await getBytes(storage, "parts/p2"), data);
      assert.deepEqual(await filesUnder(path), ["parts/p2"]);
    } finally {
      await restarted?.catch(() => {});
      if (!server.running) await server.start();
      await storage.close();
    }
  });
});

describe("sftp storage on a full filesystem", () => {
  let mountPoint: string;
  let mounted = false;
  before(async () => {
    mountPoint = await mkdtemp(join(tmpdir(), "strongbox-sftp-full-"));
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", mountPoint], { stdio: "pipe" });
    mounted = true;
  });
  after(async () => {
    if (mounted) execFileSync("umount", [mountPoint], { stdio: "pipe" });
    await rm(mountPoint, { recursive: true, force: true });
  });

  test("a full disk on the server becomes STORAGE_FULL and the temp file is removed", async () => {
    const root = join(mountPoint, "repo");
    const storage = await SftpStorage.open(options(root));
    try {
      await storage.put("small", Buffer.from("fits"));
      await assert.rejects(
        storage.put("parts/big", byteStream(randomBytes(2 * MiB))),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "STORAGE_FULL", String(error));
          return true;
        },
      );
      assert.deepEqual(await filesUnder(root), ["small"]);
      await storage.put("parts/after", randomBytes(256 * 1024));
    } finally {
      await storage.close();
    }
  });

  test("through the OpenSSH child too (a spooled part): STORAGE_FULL, the temp file removed", async () => {
    const root = join(mountPoint, "repo-bulk");
    const storage = await SftpStorage.open(options(root));
    const part = join(mountPoint, "..", `strongbox-part-${process.pid}`);
    try {
      await writeFile(part, randomBytes(5 * MiB), { mode: 0o600 });
      await storage.put("small", Buffer.from("fits"));
      await assert.rejects(
        storage.put("parts/big", createReadStream(part), { size: 5 * MiB, file: part }),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, "STORAGE_FULL", String(error));
          return true;
        },
      );
      assert.equal(storage.largeUploads, "openssh");
      assert.deepEqual(await filesUnder(root), ["small"]);
    } finally {
      await storage.close();
      await rm(part, { force: true });
    }
  });
});

describe("sftp storage on an append-only account (internal-sftp -P …)", () => {
  let appendOnly: SshServer;
  let root: string;
  const denied = "remove,rmdir,posix-rename,setstat,fsetstat,lsetstat,hardlink,symlink,copy-data";
  before(async () => {
    // A non-root account: root would ignore the 0400 mode that keeps files from being rewritten.
    appendOnly = await startSshd({ user: "nobody", sftpArgs: `-P ${denied}` });
    root = join(appendOnly.dir, "repo");
    await mkdir(root, { mode: 0o700 });
    await chown(root, 65534, 65534);
  });
  after(async () => {
    await appendOnly?.destroy();
  });

  test("new objects are written; overwrites, deletes and rewrites in place are refused by the server", async () => {
    const storage = await SftpStorage.open({
      host: appendOnly.host,
      port: appendOnly.port,
      user: appendOnly.user,
      path: root,
      privateKeyFile: appendOnly.userKeyFile,
      hostKey: appendOnly.hostKeyLine,
      readOnlyFiles: true,
    });
    try {
      await storage.put("backups/b1/part-1", Buffer.from("original"));
      await storage.put("backups/b1/manifest", Buffer.from("m"), { ifAbsent: true });
      assert.deepEqual(
        (await listAll(storage, "")).map((i) => i.key),
        ["backups/b1/manifest", "backups/b1/part-1"],
      );
      await assert.rejects(storage.put("backups/b1/part-1", Buffer.from("evil")), {
        code: "STORAGE_PERMISSION",
      });
      await assert.rejects(storage.put("backups/b1/part-1", Buffer.from("evil"), { ifAbsent: true }), {
        code: "STORAGE_EXISTS",
      });
      await assert.rejects(storage.delete("backups/b1/part-1"), { code: "STORAGE_PERMISSION" });
      assert.equal((await getBytes(storage, "backups/b1/part-1")).toString(), "original");
      // The account cannot reopen an existing file for writing either (mode 0400, chmod refused).
      await assert.rejects(rawOpenForWrite(appendOnly, join(root, "backups/b1/part-1")), /denied/i);
      assert.equal((await readFile(join(root, "backups/b1/part-1"))).toString(), "original");
    } finally {
      await storage.close();
    }
  });
});

/** Opens a file for writing with a plain ssh2 client, as a compromised backup host could. */
function rawOpenForWrite(target: SshServer, path: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const client = new Client();
    client.on("error", reject);
    client.on("ready", () => {
      client.sftp((error, sftp) => {
        if (error) return reject(error);
        sftp.open(path, "r+", (openError) => {
          client.end();
          if (openError) reject(openError);
          else resolve();
        });
      });
    });
    readFile(target.userKeyFile).then((privateKey) =>
      client.connect({
        host: target.host,
        port: target.port,
        username: target.user,
        privateKey,
        hostVerifier: () => true, // a test of the server's refusal, not of host key checking
      }),
    );
  });
}

describe("sftp storage through a real ssh-agent (no key file)", () => {
  let agentDir: string;
  let socket: string;
  let agent: ReturnType<typeof spawn> | undefined;
  const withoutKey = (path: string, extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions => {
    const { privateKeyFile: _none, ...o } = options(path, extra);
    return o;
  };
  /** Runs fn with SSH_AUTH_SOCK set to `sock` (or unset), then restores it. */
  async function withAuthSock<T>(sock: string | undefined, fn: () => Promise<T>): Promise<T> {
    const saved = process.env.SSH_AUTH_SOCK;
    if (sock === undefined) delete process.env.SSH_AUTH_SOCK;
    else process.env.SSH_AUTH_SOCK = sock;
    try {
      return await fn();
    } finally {
      if (saved === undefined) delete process.env.SSH_AUTH_SOCK;
      else process.env.SSH_AUTH_SOCK = saved;
    }
  }
  /** Writes an object through the storage, reads it back, closes it. */
  async function roundTrip(storage: Storage): Promise<void> {
    try {
      await storage.put("backups/a/manifest", Buffer.from("through the agent"));
      assert.equal((await getBytes(storage, "backups/a/manifest")).toString(), "through the agent");
    } finally {
      await storage.close();
    }
  }
  const sshAdd = (...args: string[]) =>
    run("ssh-add", args, { env: { ...process.env, SSH_AUTH_SOCK: socket } });

  before(async () => {
    agentDir = await mkdtemp(join(tmpdir(), "sb-ssh-agent-"));
    socket = join(agentDir, "agent.sock");
    agent = spawn("ssh-agent", ["-D", "-a", socket], { stdio: "ignore" });
    for (let i = 0; i < 200; i++) {
      if (
        await stat(socket).then(
          (s) => s.isSocket(),
          () => false,
        )
      )
        break;
      await delay(25);
    }
  });
  after(async () => {
    agent?.kill();
    await rm(agentDir, { recursive: true, force: true });
  });

  test("with SSH_AUTH_SOCK and no privateKey, the agent's key logs in", async () => {
    await sshAdd(server.userKeyFile);
    const path = repoPath();
    await withAuthSock(socket, async () => roundTrip(await SftpStorage.open(withoutKey(path))));
  });

  test("sshAgent: <socket> in the config, no privateKey: opens through that agent", async () => {
    const repository = repositorySchema.parse({
      name: "offsite",
      storage: {
        type: "sftp",
        host: server.host,
        port: server.port,
        user: server.user,
        path: repoPath(),
        sshAgent: socket,
        hostKey: server.hostKeyLine,
      },
    });
    const loaded = { dir: server.dir, resolvePath: (p: string) => p };
    await withAuthSock(undefined, async () =>
      roundTrip(await openRepositoryStorage(repository, loaded as unknown as LoadedConfig)),
    );
  });

  test("an agent holding only keys the server does not accept: STORAGE_AUTH naming the agent", async () => {
    await sshAdd("-D");
    await sshAdd(server.otherKeyFile);
    await withAuthSock(socket, async () => {
      await assert.rejects(
        SftpStorage.open(withoutKey(repoPath())),
        (e: Error & { code?: string; hint?: string }) => {
          assert.equal(e.code, "STORAGE_AUTH");
          assert.match(e.message, new RegExp(`refused the keys of the ssh-agent at ${socket}$`));
          assert.match(e.hint ?? "", /ssh-add -L/);
          return true;
        },
      );
    });
  });

  test("no privateKey and no agent, or a stale SSH_AUTH_SOCK: one clear STORAGE_CONFIG line", async () => {
    await withAuthSock(undefined, async () => {
      await assert.rejects(SftpStorage.open(withoutKey(repoPath())), (e: Error & { code?: string }) => {
        assert.equal(e.code, "STORAGE_CONFIG");
        assert.match(
          e.message,
          /no privateKey is configured and no ssh-agent runs \(SSH_AUTH_SOCK is not set\)/,
        );
        return true;
      });
    });
    await withAuthSock(join(agentDir, "gone.sock"), async () => {
      await assert.rejects(SftpStorage.open(withoutKey(repoPath())), (e: Error & { code?: string }) => {
        assert.equal(e.code, "STORAGE_CONFIG");
        assert.match(e.message, /the ssh-agent socket .*gone\.sock cannot be used: .*ENOENT/);
        return true;
      });
    });
  });
});
