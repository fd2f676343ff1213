// A real S3 server for tests: Ceph's RADOS Gateway (Debian's `radosgw`), on a one-OSD Ceph cluster
// that lives in a temp directory (a monitor, one OSD on the in-memory object store, no auth inside
// the cluster), listening on loopback over HTTP and over HTTPS with a generated CA. RGW implements
// multipart uploads, If-None-Match on PUT, SSE-KMS (with its "testing" key backend), Object Lock,
// versioning and bucket policies; see docs/storage.md for what Ceph 16 does not do.
// stopGateway()/startGateway() take only the S3 endpoint down and up again (an outage).
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { request } from "node:http";
import { type AddressInfo, createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { setTimeout as delay } from "node:timers/promises";
import { promisify } from "node:util";
import { CreateBucketCommand, PutBucketPolicyCommand, S3Client } from "@aws-sdk/client-s3";

const run = promisify(execFile);

export interface S3User {
  accessKeyId: string;
  secretAccessKey: string;
  /** A 0600 credentials file for S3Storage. */
  credentialsFile: string;
}

export interface S3Server extends S3User {
  readonly dir: string;
  /** http://127.0.0.1:port */
  readonly endpoint: string;
  /** https://127.0.0.1:port, certificate signed by caFile. */
  readonly httpsEndpoint: string;
  readonly caFile: string;
  readonly region: string;
  /** Key id accepted for aws:kms server-side encryption. */
  readonly kmsKeyId: string;
  /** SDK client of the first user, for setting up buckets and looking at what was stored. */
  readonly admin: S3Client;
  readonly gatewayRunning: boolean;
  createBucket(name: string, options?: { objectLock?: boolean }): Promise<void>;
  createUser(uid: string): Promise<S3User>;
  /** radosgw-admin with the cluster's config. */
  radosgwAdmin(args: string[]): Promise<string>;
  stopGateway(): Promise<void>;
  startGateway(): Promise<void>;
  /** Stops every daemon and removes the directory. */
  destroy(): Promise<void>;
}

interface Daemon {
  name: string;
  child: ChildProcess;
  tail: () => string;
}

function startDaemon(name: string, command: string, args: string[]): Daemon {
  const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
  let tail = "";
  const keep = (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  return { name, child, tail: () => tail };
}

async function stopDaemon(daemon: Daemon | undefined): Promise<void> {
  if (!daemon) return;
  const { child } = daemon;
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
  await exited;
  clearTimeout(timer);
}

function exitedEarly(daemon: Daemon): Error | undefined {
  const { child } = daemon;
  if (child.exitCode === null && child.signalCode === null) return undefined;
  return new Error(`${daemon.name} exited (${child.exitCode ?? child.signalCode}): ${daemon.tail()}`);
}

async function waitFor(what: string, daemon: Daemon, check: () => Promise<boolean>, timeoutMs = 90_000) {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const early = exitedEarly(daemon);
    if (early) throw early;
    if (await check().catch(() => false)) return;
    await delay(200);
  }
  throw new Error(`${what} did not come up within ${timeoutMs / 1000} s: ${daemon.tail()}`);
}

function httpUp(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = request({ host: "127.0.0.1", port, path: "/", method: "GET", timeout: 1000 }, (res) => {
      res.resume();
      resolve(res.statusCode !== undefined && res.statusCode < 500);
    });
    req.on("error", () => resolve(false));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function writeCredentials(path: string, user: { accessKeyId: string; secretAccessKey: string }) {
  await writeFile(
    path,
    `# test credentials\naccess_key_id = ${user.accessKeyId}\nsecret_access_key = ${user.secretAccessKey}\n`,
    { mode: 0o600 },
  );
}

async function makeCertificates(dir: string): Promise<{ ca: string; cert: string; key: string }> {
  const ca = join(dir, "ca.pem");
  const caKey = join(dir, "ca.key");
  const cert = join(dir, "server.pem");
  const key = join(dir, "server.key");
  const csr = join(dir, "server.csr");
  const ext = join(dir, "server.ext");
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  await run("openssl", [
    "req",
    "-x509",
    ...ec,
    "-keyout",
    caKey,
    "-out",
    ca,
    "-days",
    "3",
    "-subj",
    "/CN=strongbox test CA",
  ]);
  await run("openssl", ["req", ...ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"]);
  await writeFile(ext, "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    csr,
    "-CA",
    ca,
    "-CAkey",
    caKey,
    "-CAcreateserial",
    "-out",
    cert,
    "-days",
    "3",
    "-extfile",
    ext,
  ]);
  return { ca, cert, key };
}

/** `count` distinct free loopback ports (all held open at once, so none is handed out twice). */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: count }, () => {
      return new Promise<Server>((resolve, reject) => {
        const server = createServer();
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve(server));
      });
    }),
  );
  const ports = servers.map((s) => (s.address() as AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

/** Starts a Ceph cluster with RGW; a start that fails is tried once more from scratch. */
export async function startS3Server(): Promise<S3Server> {
  try {
    return await startS3ServerOnce();
  } catch (error) {
    process.stderr.write(`s3server: first start failed, trying again: ${String(error)}\n`);
    return startS3ServerOnce();
  }
}

async function startS3ServerOnce(): Promise<S3Server> {
  const dir = await mkdtemp(join(tmpdir(), "strongbox-s3-"));
  for (const sub of ["run", "log", "mon", "osd"]) await mkdir(join(dir, sub), { recursive: true });
  const [monPort, httpPort, httpsPort] = (await freePorts(3)) as [number, number, number];
  const tls = await makeCertificates(dir);
  const fsid = randomUUID();
  const conf = join(dir, "ceph.conf");
  const kmsKeyId = "testkey-1";
  await writeFile(
    conf,
    `[global]
fsid = ${fsid}
mon host = v1:127.0.0.1:${monPort}
mon initial members = a
ms bind msgr2 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
auth cluster required = none
auth service required = none
auth client required = none
auth allow insecure global id reclaim = true
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
osd pool default pg autoscale mode = off
osd crush chooseleaf type = 0
osd objectstore = memstore
memstore device bytes = 8589934592
mon allow pool size one = true
mon allow pool delete = true
mon max pg per osd = 1000
mon warn on pool no redundancy = false
mon data avail warn = 2
mon data avail crit = 1
run dir = ${dir}/run
admin socket = ${dir}/run/$name.asok
log file = ${dir}/log/$name.log
pid file = ${dir}/run/$name.pid
keyring = ${dir}/keyring
mon data = ${dir}/mon/$cluster-$id
osd data = ${dir}/osd/$cluster-$id

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:${httpPort} ssl_endpoint=127.0.0.1:${httpsPort} ssl_certificate=${tls.cert} ssl_private_key=${tls.key} tcp_nodelay=1
rgw dns name = localhost
rgw crypt require ssl = false
rgw crypt s3 kms backend = testing
rgw crypt s3 kms encryption keys = ${kmsKeyId}=${randomBytes(32).toString("base64")}
rgw enable usage log = false
# No lifecycle threads: from 00:00 to 06:00 UTC (rgw lifecycle work time) they retry locks with
# 5 s sleeps, and a SIGTERM then waits for them, so a gateway restart took 5 s instead of 0.2 s.
rgw enable lc threads = false
`,
  );
  const cephArgs = ["-c", conf];
  const ceph = async (args: string[]) => (await run("ceph", [...cephArgs, ...args])).stdout.trim();
  const daemons: Daemon[] = [];
  let gateway: Daemon | undefined;
  const stopAll = async () => {
    await stopDaemon(gateway);
    for (const daemon of daemons.reverse()) await stopDaemon(daemon);
  };
  try {
    await run("ceph-authtool", [
      "--create-keyring",
      join(dir, "keyring"),
      "--gen-key",
      "-n",
      "mon.",
      "--cap",
      "mon",
      "allow *",
    ]);
    await run("monmaptool", [
      "--create",
      "--add",
      "a",
      `v1:127.0.0.1:${monPort}`,
      "--fsid",
      fsid,
      join(dir, "monmap"),
    ]);
    await run("ceph-mon", [
      ...cephArgs,
      "--mkfs",
      "-i",
      "a",
      "--monmap",
      join(dir, "monmap"),
      "--keyring",
      join(dir, "keyring"),
    ]);
    const mon = startDaemon("ceph-mon", "ceph-mon", [...cephArgs, "-f", "-i", "a"]);
    daemons.push(mon);
    await waitFor("ceph-mon", mon, async () => (await ceph(["mon", "stat"])).includes("quorum"));
    const osdUuid = randomUUID();
    const osdId = await ceph(["osd", "new", osdUuid]);
    await mkdir(join(dir, "osd", `ceph-${osdId}`), { recursive: true });
    await run("ceph-osd", [...cephArgs, "-i", osdId, "--mkfs", "--osd-uuid", osdUuid]);
    for (let attempt = 1; ; attempt++) {
      const osd = startDaemon("ceph-osd", "ceph-osd", [...cephArgs, "-f", "-i", osdId]);
      daemons.push(osd);
      try {
        await waitFor(
          "ceph-osd",
          osd,
          async () => JSON.parse(await ceph(["osd", "stat", "-f", "json"])).num_up_osds === 1,
        );
        break;
      } catch (error) {
        // A race in Ceph 16: a freshly started OSD may send its first command before it has the
        // monitor map, with an all-zero fsid, and exits on the "wrong fsid" refusal. Start it again.
        if (attempt >= 3 || !osd.tail().includes("wrong fsid")) throw error;
        await stopDaemon(osd);
      }
    }
  } catch (error) {
    await stopAll();
    if (!process.env.STRONGBOX_KEEP_S3_DIR) await rm(dir, { recursive: true, force: true });
    throw error;
  }

  const radosgwAdmin = async (args: string[]) =>
    (await run("radosgw-admin", [...cephArgs, "-n", "client.admin", ...args])).stdout;
  const startGateway = async () => {
    if (gateway && exitedEarly(gateway) === undefined) return;
    const started = startDaemon("radosgw", "radosgw", [...cephArgs, "-f", "-n", "client.rgw"]);
    gateway = started;
    await waitFor("radosgw", started, () => httpUp(httpPort));
  };
  const createUser = async (uid: string): Promise<S3User> => {
    const user = {
      accessKeyId: `AK${randomBytes(9).toString("hex").toUpperCase()}`,
      secretAccessKey: randomBytes(24).toString("base64url"),
    };
    await radosgwAdmin([
      "user",
      "create",
      "--uid",
      uid,
      "--display-name",
      uid,
      "--access-key",
      user.accessKeyId,
      "--secret",
      user.secretAccessKey,
    ]);
    const credentialsFile = join(dir, `credentials-${uid}`);
    await writeCredentials(credentialsFile, user);
    return { ...user, credentialsFile };
  };

  let first: S3User;
  let admin: S3Client;
  try {
    await startGateway();
    first = await createUser("strongbox");
    admin = new S3Client({
      region: "us-east-1",
      endpoint: `http://127.0.0.1:${httpPort}`,
      forcePathStyle: true,
      credentials: { accessKeyId: first.accessKeyId, secretAccessKey: first.secretAccessKey },
    });
  } catch (error) {
    await stopAll();
    await rm(dir, { recursive: true, force: true });
    throw error;
  }

  return {
    ...first,
    dir,
    endpoint: `http://127.0.0.1:${httpPort}`,
    httpsEndpoint: `https://127.0.0.1:${httpsPort}`,
    caFile: tls.ca,
    region: "us-east-1",
    kmsKeyId,
    admin,
    get gatewayRunning() {
      return gateway !== undefined && exitedEarly(gateway) === undefined;
    },
    async createBucket(name, options = {}) {
      await admin.send(
        new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: options.objectLock ?? false }),
      );
    },
    createUser,
    radosgwAdmin,
    async stopGateway() {
      await stopDaemon(gateway);
    },
    startGateway,
    async destroy() {
      admin.destroy();
      await stopAll();
      await rm(dir, { recursive: true, force: true });
    },
  };
}

/**
 * The bucket policy of docs/storage.md for append-only credentials: user `uid` may list, read and
 * write (and set retention, for Object Lock), and is denied deletes and policy changes.
 */
export async function denyDeletes(server: S3Server, bucket: string, uid: string): Promise<void> {
  const principal = { AWS: [`arn:aws:iam:::user/${uid}`] };
  const resource = [`arn:aws:s3:::${bucket}`, `arn:aws:s3:::${bucket}/*`];
  const allow = ["s3:ListBucket", "s3:ListBucketMultipartUploads", "s3:GetObject", "s3:PutObject"];
  allow.push("s3:GetObjectRetention", "s3:PutObjectRetention", "s3:AbortMultipartUpload");
  allow.push("s3:ListMultipartUploadParts");
  const deny = ["s3:DeleteObject", "s3:DeleteObjectVersion", "s3:BypassGovernanceRetention"];
  deny.push("s3:PutBucketPolicy", "s3:PutLifecycleConfiguration");
  const statement = (Effect: string, Action: string[]) => ({
    Effect,
    Principal: principal,
    Action,
    Resource: resource,
  });
  await server.admin.send(
    new PutBucketPolicyCommand({
      Bucket: bucket,
      Policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [statement("Allow", allow), statement("Deny", deny)],
      }),
    }),
  );
}

/** Starts one S3 server for the calling test file (before) and removes it (after). */
export function useS3Server(): { server: S3Server } {
  const holder = {} as { server: S3Server };
  before(
    async () => {
      holder.server = await startS3Server();
    },
    { timeout: 180_000 },
  );
  after(async () => {
    await holder.server?.destroy();
  });
  return holder;
}
