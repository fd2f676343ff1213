// Certificates for a sandbox with TLS: one cluster CA, a node certificate (CN localhost, names
// localhost and the nodes' addresses) used for client connections, Galera replication and IST
// (gcomm) and SST, and a client certificate, made with the openssl CLI. Keys are 0600 in a 0700
// directory. tlsCnf() is what every node's my.cnf gets: docs/galera-tls.md explains each line.
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { checkTlsFiles, type NodeTlsConfig, readNodeTls, signedBy } from "../galera/tls.ts";
import { run } from "../util/proc.ts";
import type { SandboxNode } from "./layout.ts";

export interface SandboxTls {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** The node certificate's names: SST verifies "localhost" for a loopback peer (wsrep_sst_common). */
export function nodeCertNames(addresses: readonly string[] = ["127.0.0.1"]): string {
  const ips = [...new Set(["127.0.0.1", ...addresses])];
  return `subjectAltName=DNS:localhost,${ips.map((a) => `IP:${a}`).join(",")}`;
}

export async function makeSandboxTls(
  dir: string,
  o: { addresses?: readonly string[]; days?: number } = {},
): Promise<SandboxTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const p = (f: string) => join(dir, f);
  const t: SandboxTls = {
    dir,
    ca: p("ca.pem"),
    serverCert: p("server-cert.pem"),
    serverKey: p("server-key.pem"),
    clientCert: p("client-cert.pem"),
    clientKey: p("client-key.pem"),
  };
  const ossl = (args: string[]) => run("openssl", args, { label: "openssl", timeoutMs: 60_000 });
  const newKey = ["-newkey", "rsa:2048", "-nodes"];
  await ossl([
    "req",
    "-x509",
    ...newKey,
    "-days",
    "3650",
    "-subj",
    "/CN=Strongbox sandbox CA",
    "-keyout",
    p("ca-key.pem"),
    "-out",
    t.ca,
  ]);
  for (const [name, cn, ext] of [
    ["server", "localhost", nodeCertNames(o.addresses)],
    ["client", "strongbox", "extendedKeyUsage=clientAuth"],
  ] as const) {
    await ossl([
      "req",
      ...newKey,
      "-subj",
      `/CN=${cn}`,
      "-keyout",
      p(`${name}-key.pem`),
      "-out",
      p(`${name}.csr`),
    ]);
    await writeFile(p(`${name}.ext`), `${ext}\n`, { mode: 0o600 });
    await ossl([
      "x509",
      "-req",
      "-in",
      p(`${name}.csr`),
      "-CA",
      t.ca,
      "-CAkey",
      p("ca-key.pem"),
      "-CAcreateserial",
      "-days",
      String(o.days ?? 3650),
      "-out",
      p(`${name}-cert.pem`),
      "-extfile",
      p(`${name}.ext`),
    ]);
  }
  return t;
}

/** A node's own copy of the CA, its certificate and key (not the CA's key), in `dir` (0700). */
export async function copyNodeTls(t: SandboxTls, dir: string): Promise<SandboxTls> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const copy = async (from: string, name: string) => {
    await writeFile(join(dir, name), await readFile(from), { mode: 0o600, flag: "wx" });
    return join(dir, name);
  };
  return {
    dir,
    ca: await copy(t.ca, "ca.pem"),
    serverCert: await copy(t.serverCert, "server-cert.pem"),
    serverKey: await copy(t.serverKey, "server-key.pem"),
    clientCert: t.clientCert,
    clientKey: t.clientKey,
  };
}

/** my.cnf lines of a TLS node: client connections, gcomm and IST (provider options), and SST. */
export function tlsCnf(t: SandboxTls): { mysqld: string[]; provider: string[]; sst: string[] } {
  return {
    mysqld: [
      `ssl_ca=${t.ca}`,
      `ssl_cert=${t.serverCert}`,
      `ssl_key=${t.serverKey}`,
      "require_secure_transport=ON",
    ],
    // Galera's group communication and IST: a peer must present a certificate of the same CA.
    provider: [`socket.ssl_ca=${t.ca}`, `socket.ssl_cert=${t.serverCert}`, `socket.ssl_key=${t.serverKey}`],
    // SST with mariabackup over socat+OpenSSL; VERIFY_IDENTITY checks the joiner's name too, and
    // the script refuses to fall back to plain text when the certificates are unusable.
    sst: ["ssl-mode=VERIFY_IDENTITY", `ssl-ca=${t.ca}`, `ssl-cert=${t.serverCert}`, `ssl-key=${t.serverKey}`],
  };
}

const GCOMM = { ca: "socket.ssl_ca", cert: "socket.ssl_cert", key: "socket.ssl_key" };
const SST = { ca: "[sst] ssl-ca", cert: "[sst] ssl-cert", key: "[sst] ssl-key" };

/**
 * Before a node starts next to running peers: its Galera TLS checked against its own files and
 * the peers'. Galera reports a mismatch only as a peer that never answers, after
 * pc.wait_prim_timeout; this names the node and the setting at once. `names`: what SST verifies
 * the joiner's certificate for (localhost on loopback).
 */
export async function checkJoinTls(
  node: SandboxNode,
  peers: SandboxNode[],
  names: readonly string[] = ["localhost"],
): Promise<void> {
  const mine = await readNodeTls(node.cnf);
  if (!mine) return;
  const problems: string[] = [];
  const on = (t: NodeTlsConfig) => Boolean(t.gcomm.cert);
  // Its own files first: an expired or wrong-name certificate is the likelier story.
  const said = (ps: { setting: string; message: string }[]) => ps.map((x) => `${x.setting} ${x.message}`);
  if (on(mine)) problems.push(...said(await checkTlsFiles(mine.gcomm, GCOMM)));
  if (mine.sst.mode !== "DISABLED")
    problems.push(
      ...said(await checkTlsFiles(mine.sst, SST, mine.sst.mode === "VERIFY_IDENTITY" ? { names } : {})),
    );
  for (const peer of peers) {
    const theirs = await readNodeTls(peer.cnf);
    if (!theirs || mine.dynamic || theirs.dynamic) continue;
    if (on(theirs) && !on(mine))
      problems.push(`wsrep_provider_options has no socket.ssl_cert, but ${peer.name} runs Galera with TLS`);
    else if (!on(theirs) && on(mine))
      problems.push(
        `it has socket.ssl_cert, but ${peer.name} runs Galera without TLS (socket.dynamic=YES on both while rolling TLS in)`,
      );
    else if (on(mine) && on(theirs)) {
      if (!(await signedBy(theirs.gcomm.cert!, mine.gcomm.ca ?? mine.gcomm.cert!)))
        problems.push(
          `socket.ssl_ca ${mine.gcomm.ca} did not sign ${peer.name}'s certificate ${theirs.gcomm.cert}`,
        );
      if (!(await signedBy(mine.gcomm.cert!, theirs.gcomm.ca ?? theirs.gcomm.cert!)))
        problems.push(
          `socket.ssl_cert ${mine.gcomm.cert} is not signed by ${peer.name}'s socket.ssl_ca ${theirs.gcomm.ca}`,
        );
    }
  }
  if (problems.length > 0) {
    throw new StrongboxError(
      "SANDBOX_NODE_TLS",
      `${node.name} cannot join: ${[...new Set(problems)].join("; ")}`,
      {
        hint: `fix ${node.cnf} (docs/galera-tls.md); Galera never falls back to plain text`,
      },
    );
  }
}
