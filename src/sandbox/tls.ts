// Certificates for a sandbox with TLS: a private CA, a server certificate for 127.0.0.1 and a
// client certificate, made with the openssl CLI. Keys are 0600 in a 0700 directory.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { run } from "../util/proc.ts";

export interface SandboxTls {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

export async function makeSandboxTls(dir: string): Promise<SandboxTls> {
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
    ["server", "127.0.0.1", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
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
      "3650",
      "-out",
      p(`${name}-cert.pem`),
      "-extfile",
      p(`${name}.ext`),
    ]);
  }
  return t;
}
