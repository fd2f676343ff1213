// Offsite every day on storage that refuses deletes and overwrites: an SFTP account restricted by
// `internal-sftp -P …` (OpenSSH) and an Object-Lock bucket under a deny-delete policy (Ceph RGW).
// Day after day of `backup` with copyTo and `copy`, a writer killed on another host whose lock
// must expire there, and the server gone in the middle of a copy.
import assert from "node:assert/strict";
import { execFileSync, spawn } from "node:child_process";
import { once } from "node:events";
import { chownSync, mkdirSync, readdirSync, renameSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { ListObjectsV2Command } from "@aws-sdk/client-s3";
import { loadDataset } from "../../src/sandbox/dataset.ts";
import { BIN, cli, editConfig, waitsOnFifo } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { startCutProxy } from "../helpers/cut-proxy.ts";
import { denyDeletes, useS3Server } from "../helpers/s3server.ts";
import { sshFieldsOf, useSshd } from "../helpers/sshd.ts";

const DENIED = "remove,rmdir,posix-rename,setstat,fsetstat,lsetstat,hardlink,symlink,copy-data";
const BUCKET = "strongbox-offsite-locked";
const PREFIX = "prod/";

describe("offsite copies on append-only storage, day after day", () => {
  const cluster = useCluster({ nodes: 1 });
  // A non-root account: root would ignore the 0400 mode that keeps files from being rewritten.
  const sshd = useSshd({ user: "nobody", sftpArgs: `-P ${DENIED}` });
  const s3 = useS3Server();
  let cfg = "";
  let noAuto = "";
  const sftpRoot = () => join(sshd.server.dir, "repo");
  const run = (config: string, ...args: string[]) => cli(["--config", config, ...args]);
  const ids = async (repo: string) => {
    const r = await run(cfg, "list", "--repo", repo, "--json");
    assert.equal(r.code, 0, r.stderr);
    return (JSON.parse(r.stdout).backups as { id: string }[]).map((b) => b.id);
  };
  const s3Keys = async (prefix: string) => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.server.admin.send(
        new ListObjectsV2Command({ Bucket: BUCKET, Prefix: `${PREFIX}${prefix}`, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((o) => o.Key!.slice(PREFIX.length)));
      token = page.NextContinuationToken;
    } while (token);
    return keys.sort();
  };
  const lockRecords = async (repo: "sftp" | "s3") =>
    repo === "sftp"
      ? readdirSync(join(sftpRoot(), "locks/writer"))
          .map((f) => `locks/writer/${f}`)
          .sort()
      : await s3Keys("locks/writer/");

  it("sets up the SFTP account's directory and the locked bucket under a deny-delete policy", async () => {
    mkdirSync(sftpRoot(), { mode: 0o700 });
    chownSync(sftpRoot(), 65534, 65534);
    const s = s3.server;
    await s.createBucket(BUCKET, { objectLock: true });
    const writer = await s.createUser("offsite-writer");
    await denyDeletes(s, BUCKET, "offsite-writer");
    const c = await cluster.connect(1);
    await loadDataset(c, { sizeBytes: 3_000_000, seed: 20 });
    await c.end();
    cfg = editConfig(cluster.configPath, join(cluster.dir, "offsite.yaml"), (c) => {
      c.backup.partSize = "1MiB";
      c.backup.copyTo = ["sftp", "s3"];
      c.repositories.push(
        {
          name: "sftp",
          appendOnly: true,
          storage: {
            type: "sftp",
            ...sshFieldsOf(sshd.server),
            path: sftpRoot(),
            readOnlyFiles: true,
          },
        },
        {
          name: "s3",
          appendOnly: true,
          storage: {
            type: "s3",
            endpoint: s.httpsEndpoint,
            region: s.region,
            bucket: BUCKET,
            prefix: PREFIX,
            forcePathStyle: true,
            credentialsFile: writer.credentialsFile,
            caFile: s.caFile,
            objectLock: { mode: "GOVERNANCE", retainDays: 1 },
          },
        },
      );
    });
    noAuto = editConfig(cfg, join(cluster.dir, "noauto.yaml"), (c) => {
      c.backup.copyTo = [];
    });
    for (const repo of ["local", "sftp", "s3"]) {
      const r = await run(cfg, "init", "--repo", repo);
      assert.equal(r.code, 0, r.stderr);
    }
  });

  it("five days of `backup` with copyTo and of `copy`: every run succeeds and nothing is deleted", async () => {
    const made: string[] = [];
    for (let day = 1; day <= 5; day++) {
      // backup --copy: the backup is copied to both offsite repositories right away.
      let r = await run(cfg, "backup", "--full", "--json");
      assert.equal(r.code, 0, `day ${day}: ${r.stderr}`);
      made.push(JSON.parse(r.stdout).id);
      assert.match(r.stderr, new RegExp(`copied ${made.at(-1)} to sftp`));
      assert.match(r.stderr, new RegExp(`copied ${made.at(-1)} to s3`));
      // A backup without copyTo, then `copy` into each.
      r = await run(noAuto, "backup", "--full", "--json");
      assert.equal(r.code, 0, `day ${day}: ${r.stderr}`);
      made.push(JSON.parse(r.stdout).id);
      for (const to of ["sftp", "s3"]) {
        r = await run(cfg, "copy", "--to", to, "--json");
        assert.equal(r.code, 0, `day ${day}, copy to ${to}: ${r.stderr}`);
        assert.deepEqual(JSON.parse(r.stdout).copied, [made.at(-1)]);
      }
    }
    for (const repo of ["sftp", "s3"] as const) {
      assert.deepEqual(await ids(repo), made, repo);
      // 20 writer sessions on each: every one left its records (take, release; no heartbeat at 2h).
      const records = await lockRecords(repo);
      assert.equal(records.length, 20, `${repo}: ${records.join(", ")}`);
      assert.equal(records.at(-1), "locks/writer/000000000020.json");
    }
    const v = await run(cfg, "verify", "--repo", "s3", "--read-data", "--json");
    assert.equal(v.code, 0, v.stderr);
    assert.equal(JSON.parse(v.stdout).backups.length, 10);
    // status: offsite copies configured and fresh; without copyTo the primary repository warns.
    const offsiteProblems = async (config: string) => {
      const r = await run(config, "status", "--json");
      const report = JSON.parse(r.stdout) as {
        repositories: { problems: { rule: string; message: string }[] }[];
      };
      return report.repositories.flatMap((x) => x.problems).filter((p) => p.rule === "offsite-missing");
    };
    assert.deepEqual(await offsiteProblems(cfg), []);
    const missing = await offsiteProblems(noAuto);
    assert.equal(missing.length, 1);
    assert.match(missing[0]!.message, /repository "local" has no offsite copy configured/);
  });

  for (const target of ["sftp", "s3"] as const) {
    it(`${target}: a writer killed on another host keeps the lock until it expires, then the copy completes`, async () => {
      const shortTtl = editConfig(noAuto, join(cluster.dir, `short-${target}.yaml`), (c) => {
        c.backup.lockTtl = "6s";
      });
      let r = await run(noAuto, "backup", "--full", "--json");
      assert.equal(r.code, 0, r.stderr);
      const m = JSON.parse(r.stdout) as { id: string; parts: { key: string }[] };
      // Its last part becomes a FIFO: the copy blocks reading it, holding the offsite lock.
      const last = join(cluster.dir, "repository", m.parts.at(-1)!.key);
      renameSync(last, `${last}.real`);
      execFileSync("mkfifo", ["-m", "0600", last]);
      const before = await lockRecords(target);
      // Another host: its own UTS namespace with another host name, so its pid means nothing here.
      const writer = spawn(
        "unshare",
        [
          "--uts",
          "sh",
          "-c",
          'hostname db2.example && exec "$@"',
          "sh",
          BIN,
          "--config",
          shortTtl,
          "copy",
          m.id,
          "--to",
          target,
        ],
        { env: { ...process.env, STRONGBOX_NODE: process.execPath }, stdio: "ignore" },
      );
      const exited = once(writer, "exit");
      try {
        // It took the lock, copied the parts before the last one, and now waits on the FIFO.
        while (!waitsOnFifo(writer.pid!)) {
          assert.equal(writer.exitCode, null, "the writer ended before it reached the last part");
          await delay(50);
        }
        assert.ok(
          (await lockRecords(target)).some((k) => !before.includes(k)),
          "its lock record is there",
        );
      } finally {
        writer.kill("SIGKILL");
      }
      await exited;
      rmSync(last);
      renameSync(`${last}.real`, last);
      assert.ok(!(await ids(target)).includes(m.id), "nothing committed by the killed writer");

      r = await run(cfg, "copy", m.id, "--to", target, "--json");
      assert.equal(r.code, 2);
      const error = JSON.parse(r.stdout).error;
      assert.equal(error.code, "REPO_LOCKED");
      assert.match(error.message, /is locked by "copy from local" \(pid \d+ on db2\.example\)/);
      assert.equal(error.details.host, "db2.example");
      // The real condition: the time the record says it expires.
      const wait = Date.parse(error.details.expiresAt) - Date.now();
      if (wait > 0) await delay(wait + 100);
      r = await run(cfg, "copy", m.id, "--to", target, "--json");
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).copied, [m.id]);
      const v = await run(cfg, "verify", m.id, "--repo", target, "--read-data");
      assert.equal(v.code, 0, v.stderr);
      // The dead writer's records are still there: superseded, never deleted.
      const after = await lockRecords(target);
      assert.ok(before.every((k) => after.includes(k)));
    });
  }

  it("sftp: the server gone in the middle of a copy: one clear line, nothing committed; the next copy completes", async () => {
    let r = await run(noAuto, "backup", "--full", "--json");
    assert.equal(r.code, 0, r.stderr);
    const m = JSON.parse(r.stdout) as { id: string; parts: { size: number }[] };
    const stored = m.parts.reduce((n, p) => n + p.size, 0);
    // The server goes away once half of the backup's bytes are on their way.
    const proxy = await startCutProxy(sshd.server, Math.floor(stored / 2));
    try {
      const viaProxy = editConfig(cfg, join(cluster.dir, "via-proxy.yaml"), (c) => {
        c.repositories.find((x: { name: string }) => x.name === "sftp").storage.port = proxy.port;
      });
      r = await run(viaProxy, "copy", m.id, "--to", "sftp");
      await proxy.cut;
      assert.equal(r.code, 2, r.stderr);
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, /(connect|connection|unavailable|refused)/i);
      assert.ok(!(await ids("sftp")).includes(m.id), "nothing committed");
      // Back again: its lock could not be released, but its process is gone (this host): freed at once.
      await proxy.resume();
      r = await run(viaProxy, "copy", m.id, "--to", "sftp", "--json");
      assert.equal(r.code, 0, r.stderr);
      assert.deepEqual(JSON.parse(r.stdout).copied, [m.id]);
    } finally {
      await proxy.close();
    }
    const v = await run(cfg, "verify", m.id, "--repo", "sftp", "--read-data");
    assert.equal(v.code, 0, v.stderr);
  });

  it("sftp: the remote disk full in the middle of a copy: one clear line, nothing committed", async () => {
    // A 256 KiB filesystem as the account's repository directory: room for its config and locks.
    const small = join(sshd.server.dir, "small");
    mkdirSync(small, { mode: 0o700 });
    execFileSync("mount", ["-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", small]);
    try {
      chownSync(small, 65534, 65534);
      const full = editConfig(cfg, join(cluster.dir, "full.yaml"), (c) => {
        const sftp = c.repositories.find((x: { name: string }) => x.name === "sftp");
        c.repositories.push({ ...sftp, name: "small", storage: { ...sftp.storage, path: small } });
      });
      let r = await run(full, "init", "--repo", "small");
      assert.equal(r.code, 0, r.stderr);
      const biggest = (await ids("local")).at(-1)!;
      r = await run(full, "copy", biggest, "--to", "small");
      assert.equal(r.code, 2, r.stderr);
      const errors = r.stderr.split("\n").filter((l) => l.startsWith("strongbox: error:"));
      assert.equal(errors.length, 1, r.stderr);
      assert.match(errors[0]!, /full|no space/i);
      const listed = await run(full, "list", "--repo", "small", "--json");
      assert.equal(listed.code, 0, listed.stderr);
      assert.deepEqual(JSON.parse(listed.stdout).backups, [], "nothing committed");
    } finally {
      execFileSync("umount", [small]);
    }
  });
});
