// Upload throughput of one large object to the local, SFTP and S3 backends, all on this machine:
// a temp directory, an OpenSSH sshd on loopback and Ceph's RADOS Gateway on loopback (the servers the
// tests use). Prints MB/s for each and the ratio remote/local. Not a test: numbers depend on the host.
//
//   node bench/storage-throughput.ts [--size 1GiB] [--part-size 16MiB] [--concurrency 4]
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { parseArgs } from "node:util";
import { LocalStorage } from "../src/storage/local.ts";
import { S3Storage } from "../src/storage/s3.ts";
import { SftpStorage } from "../src/storage/sftp.ts";
import type { Storage } from "../src/storage/types.ts";
import { parseSize } from "../src/util/size.ts";
import { startS3Server } from "../test/helpers/s3server.ts";
import { startSshd } from "../test/helpers/sshd.ts";

const { values } = parseArgs({
  options: {
    size: { type: "string", default: "1GiB" },
    "part-size": { type: "string", default: "16MiB" },
    concurrency: { type: "string", default: "4" },
  },
});
const size = parseSize(values.size);
const partSize = parseSize(values["part-size"]);
const concurrency = Number(values.concurrency);

/** `total` bytes of incompressible data in 1 MiB chunks, from a 64 MiB random pool (cheap to make). */
function source(total: number): Readable {
  const pool = randomBytes(64 * 1024 * 1024);
  const chunk = 1024 * 1024;
  let sent = 0;
  return new Readable({
    highWaterMark: chunk,
    read() {
      if (sent >= total) return void this.push(null);
      const n = Math.min(chunk, total - sent);
      const offset = sent % pool.length;
      this.push(pool.subarray(offset, offset + n));
      sent += n;
    },
  });
}

async function measure(name: string, storage: Storage): Promise<number> {
  const started = process.hrtime.bigint();
  const { size: stored } = await storage.put("bench/object", source(size));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (stored !== size) throw new Error(`${name}: stored ${stored} of ${size} bytes`);
  await storage.delete("bench/object");
  const mbps = size / 1e6 / seconds;
  console.log(`${name.padEnd(12)} ${mbps.toFixed(1).padStart(8)} MB/s  (${seconds.toFixed(2)} s)`);
  return mbps;
}

const dir = await mkdtemp(join(tmpdir(), "strongbox-bench-"));
const sshd = await startSshd();
const s3 = await startS3Server();
try {
  await s3.createBucket("bench");
  console.log(
    `putting ${(size / 2 ** 20).toFixed(0)} MiB to each backend (S3: ${(partSize / 2 ** 20).toFixed(0)} MiB parts, ${concurrency} in parallel)`,
  );
  const local = await LocalStorage.open(join(dir, "local"));
  const sftp = await SftpStorage.open({
    host: sshd.host,
    port: sshd.port,
    user: sshd.user,
    path: join(sshd.dir, "repo"),
    privateKeyFile: sshd.userKeyFile,
    hostKey: sshd.hostKeyLine,
  });
  const s3Options = {
    bucket: "bench",
    region: s3.region,
    forcePathStyle: true,
    credentialsFile: s3.credentialsFile,
    partSize,
    concurrency,
  };
  const s3Http = await S3Storage.open({ ...s3Options, endpoint: s3.endpoint, allowInsecureHttp: true });
  const s3Https = await S3Storage.open({ ...s3Options, endpoint: s3.httpsEndpoint, caFile: s3.caFile });
  const results: [string, number][] = [];
  for (const [name, storage] of [
    ["local", local],
    ["sftp", sftp],
    ["s3 (http)", s3Http],
    ["s3 (https)", s3Https],
  ] as const) {
    results.push([name, await measure(name, storage)]);
    await storage.close();
  }
  const localMbps = results[0]![1];
  console.log("");
  for (const [name, mbps] of results.slice(1)) {
    console.log(`${name.padEnd(12)} local/remote time ratio ${(localMbps / mbps).toFixed(2)}×`);
  }
} finally {
  await s3.destroy();
  await sshd.destroy();
  await rm(dir, { recursive: true, force: true });
}
