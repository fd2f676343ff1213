// TLS of a Galera node beyond its client connections: group communication and IST (the
// provider's socket.ssl_* options) and SST (the [sst] section). What a node is configured with,
// and whether its certificate files can work: readable, the key matching the certificate, within
// their validity, signed by the CA the peers trust, valid for the names SST verifies. Galera
// itself reports a bad certificate only as a peer that never answers ("failed to reach primary
// view"), so these checks are what names the node and the setting.
import { createPrivateKey, X509Certificate } from "node:crypto";
import { readFile } from "node:fs/promises";
import { isIP } from "node:net";
import { readCnfSection } from "../util/cnf.ts";

/** wsrep_provider_options as a map (keys lower case). */
export function parseProviderOptions(text: string): Map<string, string> {
  return new Map(
    text
      .split(";")
      .map((kv) => kv.split("="))
      .filter((p) => p.length >= 2)
      .map(([k, ...v]) => [k!.trim().toLowerCase(), v.join("=").trim()]),
  );
}

/** Whether [sst] makes the mariabackup/rsync SST scripts encrypt, and how. */
export function sstEncrypted(sst: Map<string, string>): { encrypted: boolean; how: string } {
  const encrypt = sst.get("encrypt");
  if (encrypt !== undefined && encrypt !== "0") return { encrypted: true, how: `[sst] encrypt=${encrypt}` };
  const mode = sst.get("ssl-mode");
  if (mode !== undefined && mode.toUpperCase() !== "DISABLED")
    return { encrypted: true, how: `[sst] ssl-mode=${mode}` };
  if (sst.get("tcert") || sst.get("tkey")) return { encrypted: true, how: "[sst] tcert/tkey" };
  return {
    encrypted: false,
    how: encrypt !== undefined ? `[sst] encrypt=${encrypt}` : "no encrypt or ssl-mode in [sst]",
  };
}

export interface TlsFiles {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

/** A node's Galera TLS as its my.cnf sets it: gcomm/IST files and the [sst] ones. */
export interface NodeTlsConfig {
  gcomm: TlsFiles;
  /** socket.dynamic: plain-text peers still accepted (only while rolling TLS in). */
  dynamic: boolean;
  sst: TlsFiles & { mode: string };
}

export async function readNodeTls(cnf: string): Promise<NodeTlsConfig | undefined> {
  const mysqld = await readCnfSection(cnf, "mysqld");
  const sst = await readCnfSection(cnf, "sst");
  if (!mysqld || !sst) return undefined;
  const opts = parseProviderOptions(
    (mysqld.get("wsrep-provider-options") ?? "").replace(/^(["'])(.*)\1$/, "$2"),
  );
  return {
    gcomm: {
      ca: opts.get("socket.ssl_ca"),
      cert: opts.get("socket.ssl_cert"),
      key: opts.get("socket.ssl_key"),
    },
    dynamic: /^(yes|true|1|on)$/i.test(opts.get("socket.dynamic") ?? ""),
    sst: {
      mode: (sst.get("ssl-mode") ?? "DISABLED").toUpperCase(),
      ca: sst.get("ssl-ca") ?? mysqld.get("ssl-ca"),
      cert: sst.get("ssl-cert") ?? mysqld.get("ssl-cert"),
      key: sst.get("ssl-key") ?? mysqld.get("ssl-key"),
    },
  };
}

export interface TlsProblem {
  /** The setting to fix, e.g. "socket.ssl_cert" or "[sst] ssl-cert". */
  setting: string;
  message: string;
}

async function load(path: string): Promise<Buffer | string> {
  try {
    return await readFile(path);
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "ENOENT"
      ? "does not exist"
      : `cannot be read (${(e as Error).message})`;
  }
}

/**
 * Problems of one certificate/key/CA triple, named by the settings they come from. `names` are
 * the host names or addresses the certificate must be valid for (SST with VERIFY_IDENTITY).
 */
export async function checkTlsFiles(
  files: TlsFiles,
  settings: { ca: string; cert: string; key: string },
  o: { names?: readonly string[]; now?: Date } = {},
): Promise<TlsProblem[]> {
  const problems: TlsProblem[] = [];
  const p = (setting: string, message: string) => problems.push({ setting, message });
  const now = o.now ?? new Date();
  let cert: X509Certificate | undefined;
  if (!files.cert) p(settings.cert, "is not set");
  else {
    const bytes = await load(files.cert);
    if (typeof bytes === "string") p(settings.cert, `${files.cert} ${bytes}`);
    else {
      try {
        cert = new X509Certificate(bytes);
      } catch {
        p(settings.cert, `${files.cert} is not a PEM certificate`);
      }
    }
  }
  if (cert) {
    if (new Date(cert.validTo) < now)
      p(settings.cert, `${files.cert} expired on ${new Date(cert.validTo).toISOString()}`);
    else if (new Date(cert.validFrom) > now)
      p(settings.cert, `${files.cert} is not valid before ${new Date(cert.validFrom).toISOString()}`);
    const missing = (o.names ?? []).filter((n) => (isIP(n) ? !cert!.checkIP(n) : !cert!.checkHost(n)));
    if (missing.length > 0)
      p(
        settings.cert,
        `${files.cert} is not valid for ${missing.join(", ")} (its names: ${cert.subjectAltName ?? cert.subject})`,
      );
  }
  if (!files.key) p(settings.key, "is not set");
  else {
    const bytes = await load(files.key);
    if (typeof bytes === "string") p(settings.key, `${files.key} ${bytes}`);
    else if (cert) {
      try {
        if (!cert.checkPrivateKey(createPrivateKey(bytes)))
          p(settings.key, `${files.key} is not the key of ${files.cert}`);
      } catch {
        p(settings.key, `${files.key} is not a PEM private key`);
      }
    }
  }
  if (files.ca) {
    const bytes = await load(files.ca);
    if (typeof bytes === "string") p(settings.ca, `${files.ca} ${bytes}`);
    else if (cert) {
      try {
        const ca = new X509Certificate(bytes);
        if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey))
          p(
            settings.ca,
            `${files.ca} (${ca.subject.replace(/\n/g, ", ")}) did not sign ${files.cert} (issuer ${cert.issuer.replace(/\n/g, ", ")})`,
          );
        else if (new Date(ca.validTo) < now)
          p(settings.ca, `${files.ca} expired on ${new Date(ca.validTo).toISOString()}`);
      } catch {
        p(settings.ca, `${files.ca} is not a PEM certificate`);
      }
    }
  }
  return problems;
}

/** Whether `ca` (a file) signed the certificate in `certFile`: the peers of a node must pass this. */
export async function signedBy(certFile: string, caFile: string): Promise<boolean> {
  try {
    const cert = new X509Certificate(await readFile(certFile));
    const ca = new X509Certificate(await readFile(caFile));
    return cert.checkIssued(ca) && cert.verify(ca.publicKey);
  } catch {
    return false;
  }
}
