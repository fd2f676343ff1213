// Large uploads of the SFTP backend through an OpenSSH child (`ssh -s … sftp`), against a real sshd:
// the bytes, the modes, the create-if-absent, a child killed in the middle, a full disk, and the
// cases that keep the upload on ssh2.
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createReadStream, existsSync, readFileSync } from "node:fs";
import { mkdtemp, readFile, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { after, before, describe, test } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { fingerprintOf } from "../../src/ssh/hostkey.ts";
import { SftpStorage, type SftpStorageOptions } from "../../src/storage/sftp.ts";
import { type SshServer, sftpOptionsOf, startSshd } from "../helpers/sshd.ts";
import { filesUnder, getBytes } from "./conformance.ts";

const MiB = 1024 * 1024;
let server: SshServer;
let local: string;
let counter = 0;

before(async () => {
  server = await startSshd();
  local = await mkdtemp(join(tmpdir(), "strongbox-bulk-"));
});
after(async () => {
  await server?.destroy();
  await rm(local, { recursive: true, force: true });
});

function options(path: string, extra: Partial<SftpStorageOptions> = {}): SftpStorageOptions {
  return sftpOptionsOf(server, path, extra);
}

/** A local file of `bytes` random bytes, as the spool holds a sealed part. */
async function localFile(bytes: number): Promise<{ path: string; data: Buffer }> {
  const data = randomBytes(bytes);
  const path = join(local, `part-${++counter}`);
  await writeFile(path, data, { mode: 0o600 });
  return { path, data };
}

/** Puts the file as the spool does: a reopenable stream, its size, and its path. */
function putFile(storage: SftpStorage, key: string, file: { path: string; data: Buffer }, ifAbsent = true) {
  return storage.put(key, createReadStream(file.path), { size: file.data.length, file: file.path, ifAbsent });
}

/** This process's `ssh` children. */
function sshChildren(): number[] {
  try {
    return execFileSync("/usr/bin/pgrep", ["-P", String(process.pid), "-x", "ssh"], { encoding: "utf8" })
      .trim()
      .split("\n")
      .map(Number);
  } catch (error) {
    if ((error as { status?: number }).status === 1) return []; // pgrep: nothing matches
    throw error;
  }
}

describe("sftp: large uploads through OpenSSH", () => {
  test("a part of known size goes through an ssh child: same bytes, mode 0600, no temp file, child gone on close", async () => {
    const path = join(server.dir, `repo-${++counter}`);
    const storage = await SftpStorage.open(options(path));
    try {
      assert.equal(storage.largeUploads, "none yet");
      const file = await localFile(20 * MiB + 12345);
      assert.deepEqual(await putFile(storage, "backups/b1/part-000001", file), { size: file.data.length });
      assert.equal(storage.largeUploads, "openssh");
      const children = sshChildren();
      assert.equal(children.length, 1, "one ssh child carries the uploads");
      // Its command line names the key file and a known_hosts file, which is gone once connected.
      const argv = readFileSync(`/proc/${children[0]}/cmdline`, "utf8").split("\0");
      assert.ok(argv.includes(`IdentityFile=${server.userKeyFile}`), argv.join(" "));
      const knownHosts = argv.find((a) => a.startsWith("UserKnownHostsFile="))?.slice(19);
      assert.ok(knownHosts?.includes("strongbox-ssh-"), argv.join(" "));
      assert.equal(existsSync(knownHosts!), false, "the known_hosts file is removed after the handshake");
      // A second part reuses it.
      const second = await localFile(5 * MiB);
      await putFile(storage, "backups/b1/part-000002", second);
      assert.equal(sshChildren().length, 1);
      assert.deepEqual(await readFile(join(path, "backups/b1/part-000001")), file.data);
      assert.deepEqual(await getBytes(storage, "backups/b1/part-000002"), second.data);
      assert.equal((await stat(join(path, "backups/b1/part-000001"))).mode & 0o777, 0o600);
      assert.deepEqual(await filesUnder(path), ["backups/b1/part-000001", "backups/b1/part-000002"]);
      // A stream of known size (a part being copied from another repository) goes the same way.
      const copied = randomBytes(6 * MiB);
      await storage.put(
        "backups/b1/part-000003",
        Readable.from([copied.subarray(0, MiB), copied.subarray(MiB)]),
        {
          size: copied.length,
        },
      );
      assert.deepEqual(await readFile(join(path, "backups/b1/part-000003")), copied);
      assert.equal(sshChildren().length, 1);
      assert.equal((await filesUnder(path)).length, 3, "no temp file left");
      // Small objects stay on ssh2.
      await storage.put("backups/b1/manifest.json", Buffer.from("{}"), { ifAbsent: true });
    } finally {
      await storage.close();
    }
    assert.deepEqual(sshChildren(), [], "the child exits with the storage");
  });

  test("create-if-absent holds on the OpenSSH path: an existing part is never replaced", async () => {
    const path = join(server.dir, `repo-${++counter}`);
    const storage = await SftpStorage.open(options(path));
    try {
      const first = await localFile(6 * MiB);
      await putFile(storage, "p", first);
      const other = await localFile(6 * MiB);
      await assert.rejects(putFile(storage, "p", other), { code: "STORAGE_EXISTS" });
      assert.deepEqual(await readFile(join(path, "p")), first.data);
      assert.deepEqual(await filesUnder(path), ["p"]);
      // Without ifAbsent the object is replaced atomically (posix-rename), as over ssh2.
      await putFile(storage, "p", other, false);
      assert.deepEqual(await readFile(join(path, "p")), other.data);
      assert.equal(storage.largeUploads, "openssh");
    } finally {
      await storage.close();
    }
  });

  test("the ssh child killed mid-upload: STORAGE_UNAVAILABLE, temp file removed, the next upload starts a new child", async () => {
    const path = join(server.dir, `repo-${++counter}`);
    const storage = await SftpStorage.open(options(path));
    try {
      await putFile(storage, "warm", await localFile(4 * MiB));
      const [child] = sshChildren();
      assert.ok(child, "an ssh child runs");
      const big = await localFile(256 * MiB);
      const put = putFile(storage, "parts/big", big);
      // Kill it once the temp file on the server has grown past 8 MiB.
      for (let i = 0; i < 400; i++) {
        const temps = (await filesUnder(path)).filter((f) => f.includes(".tmp-"));
        const size = temps[0] ? (await stat(join(path, temps[0])).catch(() => undefined))?.size : 0;
        if ((size ?? 0) > 8 * MiB) break;
        await delay(10);
      }
      process.kill(child, "SIGKILL");
      await assert.rejects(put, (error: Error & { code?: string }) => {
        assert.equal(error.code, "STORAGE_UNAVAILABLE", String(error));
        assert.match(error.message, /connection lost/);
        return true;
      });
      assert.deepEqual(await filesUnder(path), ["warm"], "nothing half-written is left");
      const again = await localFile(8 * MiB);
      await putFile(storage, "parts/big", again);
      assert.deepEqual(await readFile(join(path, "parts/big")), again.data);
      const now = sshChildren();
      assert.equal(now.length, 1);
      assert.notEqual(now[0], child, "a new child");
    } finally {
      await storage.close();
    }
  });

  test("a host key pinned by fingerprint, or STRONGBOX_SFTP_OPENSSH=0: large uploads stay on ssh2, still verified", async () => {
    const blob = Buffer.from(server.hostKeyLine.split(/\s+/)[1]!, "base64");
    const path = join(server.dir, `repo-${++counter}`);
    const byFingerprint = await SftpStorage.open(options(path, { hostKey: fingerprintOf(blob) }));
    try {
      const file = await localFile(6 * MiB);
      await putFile(byFingerprint, "f", file);
      assert.match(byFingerprint.largeUploads, /^ssh2 \(the host key is pinned by fingerprint only\)$/);
      assert.deepEqual(sshChildren(), []);
      assert.deepEqual(await readFile(join(path, "f")), file.data);
    } finally {
      await byFingerprint.close();
    }
    process.env.STRONGBOX_SFTP_OPENSSH = "0";
    const disabled = await SftpStorage.open(options(path));
    try {
      await putFile(disabled, "g", await localFile(6 * MiB));
      assert.match(disabled.largeUploads, /STRONGBOX_SFTP_OPENSSH=0/);
      assert.deepEqual(sshChildren(), []);
    } finally {
      delete process.env.STRONGBOX_SFTP_OPENSSH;
      await disabled.close();
    }
  });
  test("no ssh binary, or an ssh that cannot log in: the part goes over ssh2, and largeUploads says why", async () => {
    const path = join(server.dir, `repo-${++counter}`);
    const empty = await mkdtemp(join(tmpdir(), "strongbox-nossh-"));
    const failing = await mkdtemp(join(tmpdir(), "strongbox-badssh-"));
    // A fault injected in place of OpenSSH: it refuses the key, as a server would.
    await writeFile(
      join(failing, "ssh"),
      '#!/bin/sh\necho "strongbox@127.0.0.1: Permission denied (publickey)." >&2\nexit 255\n',
      { mode: 0o700 },
    );
    const saved = process.env.PATH;
    try {
      for (const [bin, why] of [
        [empty, /^ssh2 \(ssh did not start: spawn ssh ENOENT\)$/],
        [failing, /^ssh2 \(ssh did not start: connection lost: .*Permission denied \(publickey\)\.\)$/],
      ] as const) {
        process.env.PATH = bin;
        const storage = await SftpStorage.open(options(path));
        try {
          const file = await localFile(5 * MiB);
          await putFile(storage, `p-${bin === empty ? "none" : "bad"}`, file);
          assert.match(storage.largeUploads, why);
          assert.deepEqual(await getBytes(storage, `p-${bin === empty ? "none" : "bad"}`), file.data);
          assert.deepEqual(sshChildren(), []);
        } finally {
          await storage.close();
        }
      }
      assert.deepEqual(await filesUnder(path), ["p-bad", "p-none"], "no temp file left");
    } finally {
      process.env.PATH = saved;
      await rm(empty, { recursive: true, force: true });
      await rm(failing, { recursive: true, force: true });
    }
  });
});
