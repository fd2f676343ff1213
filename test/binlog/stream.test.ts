// Continuous binlog archiving (binlog archive --follow) against a real 3-node cluster and real
// storage: segments on local, SFTP (OpenSSH) and S3 (Ceph RGW) repositories, the streaming node's
// mariadbd killed with -9, the SFTP server stopped, the archiver killed with -9, and a restore to
// the newest sealed segment.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fetchDecrypted } from "../../src/binlog/apply.ts";
import { completeTransactions } from "../../src/binlog/cut.ts";
import { streamFollow } from "../../src/binlog/follow.ts";
import { verifyBinlogArchive } from "../../src/binlog/verify.ts";
import { openConfiguredRepository } from "../../src/commands/repo.ts";
import {
  clusterNodes,
  credentialsFor,
  identitiesOf,
  recipientsOf,
  signingKeyOf,
} from "../../src/config/context.ts";
import type { StrongboxError } from "../../src/errors.ts";
import type { Connection } from "../../src/galera/connection.ts";
import { parseGtid } from "../../src/mariadb/gtid.ts";
import { startScratchServer } from "../../src/mariadb/scratch.ts";
import { type BinlogEntry, readIndex } from "../../src/repository/binlog-index.ts";
import { startNode } from "../../src/sandbox/cluster.ts";
import { descendants, pidAlive } from "../../src/util/liveness.ts";
import { sleep } from "../../src/util/proc.ts";
import { cli, editConfig, startCli } from "../helpers/cli.ts";
import { useCluster } from "../helpers/cluster.ts";
import { useS3Server } from "../helpers/s3server.ts";
import { sshFieldsOf, useSshd } from "../helpers/sshd.ts";

const LONG = { timeout: 600_000 };

describe("continuous binlog archiving", () => {
  const cluster = useCluster({ nodes: 3 });
  const sshd = useSshd();
  const s3 = useS3Server();
  let work = "";
  let config = "";
  let writer: Connection;
  let rows = 0;
  /** GTID sequence number of the newest row written. */
  let lastSeq = 0;
  let backupGtid = "";

  before(async () => {
    work = await mkdtemp(join(tmpdir(), "strongbox-stream-test-"));
  });
  after(async () => {
    await writer?.end().catch(() => {});
    if (work) await rm(work, { recursive: true, force: true });
  });

  /** Inserts n rows, one transaction each; returns the GTID sequence number of the last. */
  const write = async (n: number): Promise<number> => {
    let last = 0;
    for (let i = 0; i < n; i++) {
      rows++;
      const [results] = (await writer.query("INSERT INTO s.t (seq) VALUES (?); SELECT @@last_gtid AS g", [
        rows,
      ])) as unknown as [[unknown, { g: string }[]]];
      const g = results[1][0]!;
      last = parseGtid(g.g).seq;
      lastSeq = last;
    }
    return last;
  };

  const options = async (repoName?: string) => {
    const opened = await openConfiguredRepository(config, repoName);
    const loaded = opened.loaded;
    return {
      opened,
      base: {
        repo: opened.repo,
        nodes: clusterNodes(loaded),
        creds: (await credentialsFor(loaded, "admin"))!,
        preferNode: loaded.config.cluster.backupNode,
        writerNode: loaded.config.cluster.writerNode,
        recipients: (await recipientsOf(loaded)).age,
        recipientNames: (await recipientsOf(loaded)).names,
        signing: await signingKeyOf(loaded),
        maxDelayMs: 1000,
        spoolMaxBytes: 64 * 1024 * 1024,
        checkpointMs: 2000,
      },
    };
  };

  /** Runs streamFollow until `until` holds for the durable entries; returns them and the errors. */
  const follow = async (
    repoName: string | undefined,
    extra: Partial<Parameters<typeof streamFollow>[0]>,
    during: (state: { durable: BinlogEntry[]; errors: StrongboxError[] }) => Promise<number>,
  ) => {
    const { opened, base } = await options(repoName);
    const spoolParent = await mkdtemp(join(work, "spool-"));
    const ac = new AbortController();
    const state = { durable: [] as BinlogEntry[], errors: [] as StrongboxError[] };
    const waiters: (() => void)[] = [];
    const loop = streamFollow({
      ...base,
      spoolParent,
      signal: ac.signal,
      onDurable: (e) => {
        state.durable.push(e);
        for (const w of waiters) w();
      },
      onError: (e) => state.errors.push(e as StrongboxError),
      ...extra,
    });
    let failed: unknown;
    try {
      const target = await during(state);
      // Wait on the real condition: the index holds the last transaction written.
      while (!state.durable.some((e) => e.gtidLast && parseGtid(e.gtidLast).seq >= target)) {
        await new Promise<void>((resolve) => waiters.push(resolve));
      }
    } catch (e) {
      failed = e;
    }
    ac.abort();
    const ended = await loop.then(
      () => undefined,
      (e: unknown) => e,
    );
    if (failed) throw failed;
    if (ended) throw ended;
    assert.deepEqual(await readdir(spoolParent).then((d) => d.length), 0, "the spool is removed on exit");
    const idx = await readIndex(opened.repo, base.signing.publicKey);
    await opened.close();
    return { ...state, entries: idx.entries, bad: idx.bad };
  };

  /** The stored files' GTID ranges, in order, run without a hole and without overlap. */
  const assertContinuous = (entries: BinlogEntry[], from: number, to: number) => {
    const files = entries
      .filter((e) => e.kind === "file" && e.gtidFirst)
      .map((e) => [parseGtid(e.gtidFirst!).seq, parseGtid(e.gtidLast!).seq, `${e.seq}:${e.key}`] as const)
      .sort((a, b) => a[0] - b[0]);
    const all = files.map((f) => `${f[0]}-${f[1]} (${f[2]})`).join(", ");
    let next: number | undefined;
    for (const [a, b] of files) {
      if (b < from) continue;
      if (next === undefined) assert.ok(a <= from, `the archive holds ${from}: ${all}`);
      else
        assert.equal(
          a,
          next,
          `${a}-${b} starts right after what came before (no hole, no duplicate): ${all}`,
        );
      next = b + 1;
    }
    assert.ok(next !== undefined && next > to, `the archive reaches ${to} (ends before ${next}): ${all}`);
    assert.deepEqual(
      entries.filter((e) => e.kind === "gap"),
      [],
    );
  };

  it("streams segments to local, SFTP and S3 repositories, sealed in order, compacted", LONG, async () => {
    writer = await cluster.connect(1);
    await writer.query(
      "CREATE DATABASE s; CREATE TABLE s.t (id INT AUTO_INCREMENT PRIMARY KEY, seq INT NOT NULL)",
    );
    const bucket = "strongbox-stream";
    await s3.server.createBucket(bucket);
    config = editConfig(cluster.configPath, join(cluster.dir, "stream.yaml"), (c) => {
      const s = sshd.server;
      c.repositories.push({
        name: "sftp",
        storage: {
          type: "sftp",
          ...sshFieldsOf(s),
          path: join(s.dir, "repo"),
        },
      });
      c.repositories.push({
        name: "s3",
        storage: {
          type: "s3",
          endpoint: s3.server.httpsEndpoint,
          region: s3.server.region,
          bucket,
          forcePathStyle: true,
          credentialsFile: s3.server.credentialsFile,
          caFile: s3.server.caFile,
        },
      });
      c.binlog = { maxDelay: "1s", checkpointInterval: "2s" };
    });
    for (const repo of ["local", "sftp", "s3"]) {
      const r = await cli(["--config", config, "init", "--repo", repo]);
      assert.equal(r.code, 0, r.stderr);
    }
    const b = await cli(["--config", config, "backup", "--full", "--json"]);
    assert.equal(b.code, 0, b.stderr);
    backupGtid = JSON.parse(b.stdout).gtid;

    for (const repo of ["local", "sftp", "s3"]) {
      const r = await follow(repo, { rollup: { maxBytes: 1 << 30, maxAgeMs: 2500 } }, async () => {
        let last = 0;
        for (let i = 0; i < 6; i++) {
          last = await write(10);
          await sleep(600); // spread over several seals: several segments, then a rollup
        }
        return last;
      });
      assert.deepEqual(r.bad, []);
      assert.deepEqual(r.errors, [], `${repo}: no error`);
      const files = r.entries.filter((e) => e.kind === "file");
      assert.ok(
        files.every((e) => e.streamed && e.node === "node3"),
        `${repo}: segments from the backup node`,
      );
      assert.ok(
        files.some((e) => e.key?.includes(".rollup.")),
        `${repo}: segments were compacted into a rollup`,
      );
      assert.ok(
        r.durable.filter((e) => e.kind === "file").length > files.length,
        `${repo}: replaced segments removed`,
      );
      const all = files.flatMap((e) => [parseGtid(e.gtidFirst!).seq, parseGtid(e.gtidLast!).seq]);
      assertContinuous(r.entries, Math.min(...all), Math.max(...all));
      const { opened } = await options(repo);
      const v = await verifyBinlogArchive(opened.repo, (await signingKeyOf(opened.loaded)).publicKey);
      await opened.close();
      assert.deepEqual(v.problems, [], `${repo}: verify finds every segment`);
    }
  });

  it("cuts only complete transactions out of a stream read at any byte", LONG, async () => {
    // A rollup of real events, decrypted: every prefix of it is what a spool can hold mid-write.
    const { opened, base } = await options("local");
    const rollup = (await readIndex(opened.repo, base.signing.publicKey)).entries.find((e) =>
      e.key?.includes(".rollup."),
    )!;
    const path = join(work, "rollup.bin");
    await fetchDecrypted(opened.repo, rollup, await identitiesOf(opened.loaded), path);
    await opened.close();
    const bytes = await readFile(path);
    const all = (await completeTransactions(bytes)).transactions;
    assert.equal(all.length, rollup.transactions, "every transaction of the rollup is found");
    assert.equal(all.at(-1)!.end, bytes.length);
    for (let i = 1; i <= 40; i++) {
      const n = Math.floor((bytes.length * i) / 41) + (i % 7);
      const got = (await completeTransactions(bytes.subarray(0, n))).transactions;
      assert.deepEqual(got, all.slice(0, got.length), `a prefix of the full list at ${n} bytes`);
      assert.ok(got.every((t) => t.end <= n));
      const next = all[got.length];
      assert.ok(
        !next || next.end > n,
        `the next transaction (ending at ${next?.end}) is not complete at ${n}`,
      );
    }
  });

  it("continues on another node when the streaming node's mariadbd is killed -9", LONG, async () => {
    const node3 = cluster.nodes[2]!;
    const r = await follow("local", {}, async (state) => {
      await write(20);
      while (!state.durable.some((e) => e.node === "node3" && e.kind === "file")) await sleep(100);
      const pid = Number((await readFile(node3.pidFile, "utf8")).trim());
      const writes = write(60);
      await sleep(200);
      process.kill(pid, "SIGKILL");
      await writes;
      // The archiver notices (the stream ends) and moves on; what is written now comes from another node.
      while (!state.errors.some((e) => e.code === "BINLOG_STREAM")) await sleep(100);
      return write(30);
    });
    assert.ok(
      r.errors.some((e) => e.code === "BINLOG_STREAM"),
      "the end of the stream is reported",
    );
    const nodes = new Set(r.entries.filter((e) => e.kind === "file").map((e) => e.node));
    assert.ok(nodes.has("node3") && nodes.size >= 2, `segments from node3 and another node: ${[...nodes]}`);
    assertContinuous(
      r.entries,
      parseGtid(backupGtid.split(",").find((g) => g.startsWith("1-"))!).seq,
      lastSeq,
    );
    await startNode(cluster.dir, 3);
  });

  it(
    "holds segments while the SFTP server is down, pauses at spoolMax with an alert, then sends them",
    LONG,
    async () => {
      const r = await follow("sftp", { spoolMaxBytes: 4096 }, async (state) => {
        await write(5);
        while (state.durable.length === 0) await sleep(100);
        await sshd.server.stop();
        let last = await write(40);
        // Both are reported: the storage refusing segments (after the storage's own retries),
        // and receiving paused once spoolMax bytes wait.
        const seen = (code: string) => state.errors.some((e) => e.code === code);
        while (!seen("BINLOG_SPOOL_FULL") || !seen("BINLOG_STORAGE")) {
          last = await write(5);
          await sleep(200);
        }
        await sshd.server.start();
        return last;
      });
      assertContinuous(
        r.entries,
        Math.min(...r.durable.filter((e) => e.gtidFirst).map((e) => parseGtid(e.gtidFirst!).seq)),
        lastSeq,
      );
    },
  );

  it("resumes at the next GTID after the archiver is killed -9, no duplicate", LONG, async () => {
    const { opened, base } = await options("local");
    const entries = async () => (await readIndex(opened.repo, base.signing.publicKey)).entries;
    const reaches = async (seq: number) => {
      while (!(await entries()).some((e) => e.gtidLast && parseGtid(e.gtidLast).seq >= seq)) await sleep(200);
    };
    const first = startCli(["--config", config, "binlog", "archive", "--follow"]);
    let second: ReturnType<typeof startCli> | undefined;
    try {
      await reaches(await write(10));
      const children = descendants(first.child.pid!);
      assert.ok(children.length > 0, "mariadb-binlog runs under the archiver");
      const writes = write(30);
      await sleep(300);
      first.child.kill("SIGKILL");
      await first.result;
      while (children.some((p) => pidAlive(p))) await sleep(50); // dies with its parent (pdeathsig)
      await writes;
      second = startCli(["--config", config, "binlog", "archive", "--follow"]);
      await reaches(await write(10));
      second.child.kill("SIGTERM");
      const done = await second.result;
      assert.equal(done.code, 0, done.stderr);
      assert.match(done.stderr, /receiving binlog events after 1-\d+-\d+/);
      const dead = (await readdir("/dev/shm")).filter((d) =>
        d.startsWith(`strongbox-binlog-${first.child.pid}-`),
      );
      assert.deepEqual(dead, [], "the killed archiver's spool was removed by the next one");
      assertContinuous(
        await entries(),
        parseGtid(backupGtid.split(",").find((g) => g.startsWith("1-"))!).seq,
        lastSeq,
      );
    } finally {
      first.child.kill("SIGKILL");
      second?.child.kill("SIGKILL");
    }
    await opened.close();
  });

  it(
    "restores to the newest sealed segment, and past it to a checkpoint of an idle cluster",
    LONG,
    async () => {
      let idleAt = 0;
      await follow("local", {}, async (state) => {
        const last = await write(15);
        while (!state.durable.some((e) => e.gtidLast && parseGtid(e.gtidLast).seq >= last)) await sleep(100);
        idleAt = Date.now() + 1500;
        // A checkpoint written after idleAt proves the idle cluster had nothing more.
        while (
          !state.durable.some((e) => e.file === "checkpoint" && Date.parse(e.archivedAt) > idleAt + 1000)
        ) {
          await sleep(200);
        }
        return last;
      });
      const dir = join(work, "restored");
      const r = await cli([
        "--config",
        config,
        "restore",
        "--to-time",
        new Date(idleAt).toISOString(),
        "--target-dir",
        dir,
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      const server = await startScratchServer(dir, join(work, "restored-check"));
      try {
        const c = await server.connect();
        const [[got]] = (await c.query(
          "SELECT COUNT(*) AS n, COUNT(DISTINCT seq) AS d, MAX(seq) AS hi FROM s.t",
        )) as unknown as [[{ n: string; d: string; hi: string }]];
        await c.end();
        assert.equal(Number(got.n), rows, "every committed row is back");
        assert.equal(Number(got.d), rows, "no duplicates");
        assert.equal(Number(got.hi), rows);
      } finally {
        await server.stop();
      }
    },
  );

  it(
    "key rotation re-wraps segments and rollups; verify --read-data and a restore use the new key",
    LONG,
    async () => {
      const keyA = join(cluster.dir, "keys/identity.txt");
      const keyB = join(cluster.dir, "keys/b.txt");
      const recipientOf = (file: string) => readFileSync(file, "utf8").match(/age1[0-9a-z]+/)![0];
      const streamed = async () => {
        const { opened, base } = await options("local");
        const { entries } = await readIndex(opened.repo, base.signing.publicKey);
        await opened.close();
        return entries.filter((e) => e.kind === "file" && e.streamed);
      };
      const before = (await streamed()).find((e) => e.recipients)?.recipients ?? [];
      assert.ok(before.includes(recipientOf(keyA)), "segments record the recipients they are encrypted to");
      let r = await cli(["key", "generate", "--out", keyB]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(["--config", config, "key", "add-recipient", recipientOf(keyB)]);
      assert.equal(r.code, 0, r.stderr);
      r = await cli(["--config", config, "key", "rotate", "--repo", "local", "--identity", keyA]);
      assert.equal(r.code, 0, r.stderr);
      const after = await streamed();
      assert.ok(after.length > 0);
      for (const e of after) {
        assert.deepEqual(e.recipients?.sort(), [...before, recipientOf(keyB)].sort());
        const object = join(cluster.dir, "repository", e.key!);
        assert.equal(
          spawnSync("age", ["-d", "-i", keyB, "-o", "/dev/null", object]).status,
          0,
          `${e.key} opens with B`,
        );
      }
      r = await cli([
        "--config",
        config,
        "verify",
        "--repo",
        "local",
        "--read-data",
        "--identity",
        keyB,
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      r = await cli([
        "--config",
        config,
        "restore-test",
        "--to-gtid",
        `1-1-${lastSeq}`,
        "--identity",
        keyB,
        "--json",
      ]);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.equal(JSON.parse(r.stdout).passed, true);
    },
  );

  it(
    "records and reports a gap when no node has the next GTID any more, then goes on after it",
    LONG,
    async () => {
      // While no archiver runs, every node's binlogs holding the next transactions are purged.
      const lost = await write(10);
      for (const k of [1, 2, 3]) {
        const c = await cluster.connect(k);
        await c.query("FLUSH LOCAL BINARY LOGS");
        const [[st]] = (await c.query("SHOW MASTER STATUS")) as unknown as [[{ File: string }]];
        await c.query(`PURGE BINARY LOGS TO '${st.File}'`);
        await c.end();
      }
      const r = await follow("local", {}, async () => write(10));
      const gaps = r.entries.filter((e) => e.kind === "gap");
      assert.equal(gaps.length, 1, "one gap entry");
      assert.ok(parseGtid(gaps[0]!.gap!.after).seq < lost && parseGtid(gaps[0]!.gap!.before).seq > lost);
      assert.ok(
        r.errors.some((e) => e.code === "BINLOG_GAP"),
        "the gap is reported (BINLOG_GAP: the binlog-gap alert)",
      );
      assert.ok(
        r.entries.some((e) => e.kind === "file" && parseGtid(e.gtidLast!).seq === lastSeq),
        "archiving goes on after the gap",
      );
      const { opened } = await options("local");
      const v = await verifyBinlogArchive(opened.repo, (await signingKeyOf(opened.loaded)).publicKey);
      await opened.close();
      assert.deepEqual(
        v.gaps.map((g) => g.recorded),
        [true],
        "verify reports the hole, recorded by the archiver",
      );
    },
  );
});
