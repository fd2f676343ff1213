// Least privilege on the backup host's disk: modes and owners of the config, the credential and
// key files, the directories that hold them, and the objects of local repositories.
import { lstat, readdir, readFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { LoadedConfig } from "../config/load.ts";
import { catalogPathOf } from "../config/monitoring.ts";
import type { AuditFinding } from "./types.ts";

/** secret: nobody else may read it. integrity: others may read it, nobody else may change it. */
type FileKind = "config" | "secret" | "integrity" | "private";

interface Watched {
  path: string;
  what: string;
  kind: FileKind;
  /** Absence is expected (the identity) or harmless (a catalog not written yet). */
  mayBeMissing?: boolean;
}

function watchedFiles(loaded: LoadedConfig): Watched[] {
  const c = loaded.config;
  const r = (p: string) => loaded.resolvePath(p);
  const out: Watched[] = [{ path: loaded.path, what: "config file", kind: "config" }];
  for (const which of ["backup", "admin"] as const) {
    const f = c.cluster.credentials[which]?.passwordFile;
    if (f) out.push({ path: r(f), what: `${which} account password file`, kind: "secret" });
  }
  if (c.cluster.tls?.key)
    out.push({ path: r(c.cluster.tls.key), what: "database TLS client key", kind: "secret" });
  if (c.cluster.tls?.cert)
    out.push({ path: r(c.cluster.tls.cert), what: "database TLS client certificate", kind: "integrity" });
  if (c.cluster.tls?.ca) out.push({ path: r(c.cluster.tls.ca), what: "database TLS CA", kind: "integrity" });
  if (c.keys.signingKey)
    out.push({ path: r(c.keys.signingKey), what: "manifest signing key", kind: "secret" });
  if (c.keys.passphraseFile)
    out.push({ path: r(c.keys.passphraseFile), what: "passphrase file", kind: "secret" });
  if (c.keys.recipientsFile)
    out.push({ path: r(c.keys.recipientsFile), what: "recipients file", kind: "integrity" });
  if (c.keys.identity) {
    out.push({
      path: r(c.keys.identity),
      what: "age identity (private key)",
      kind: "secret",
      mayBeMissing: true,
    });
  }
  for (const repo of c.repositories) {
    const s = repo.storage;
    if (s.type === "sftp") {
      if (s.privateKey) {
        out.push({ path: r(s.privateKey), what: `SSH key of repository ${repo.name}`, kind: "secret" });
      }
      if (s.passphraseFile) {
        out.push({
          path: r(s.passphraseFile),
          what: `SSH key passphrase of repository ${repo.name}`,
          kind: "secret",
        });
      }
      if (s.knownHostsFile) {
        out.push({
          path: r(s.knownHostsFile),
          what: `known_hosts of repository ${repo.name}`,
          kind: "integrity",
        });
      }
    } else if (s.type === "s3") {
      if (s.credentialsFile) {
        out.push({
          path: r(s.credentialsFile),
          what: `S3 credentials of repository ${repo.name}`,
          kind: "secret",
        });
      }
      if (s.caFile)
        out.push({ path: r(s.caFile), what: `S3 CA of repository ${repo.name}`, kind: "integrity" });
    }
  }
  const a = c.monitoring?.alerts;
  if (a?.webhook?.tokenFile)
    out.push({ path: r(a.webhook.tokenFile), what: "webhook token file", kind: "secret" });
  if (a?.email?.passwordFile)
    out.push({ path: r(a.email.passwordFile), what: "SMTP password file", kind: "secret" });
  if (c.serve?.tokenFile)
    out.push({ path: r(c.serve.tokenFile), what: "dashboard token file", kind: "secret" });
  out.push({ path: catalogPathOf(loaded), what: "run catalog", kind: "private", mayBeMissing: true });
  return out;
}

/** A node's my.cnf counts as a secret when it holds a password (wsrep_sst_auth, password=). */
async function nodeCnfs(loaded: LoadedConfig): Promise<Watched[]> {
  const out: Watched[] = [];
  for (const n of loaded.config.cluster.nodes) {
    if (!n.defaultsFile) continue;
    const path = loaded.resolvePath(n.defaultsFile);
    const text = await readFile(path, "utf8").catch(() => "");
    if (/^\s*(password|wsrep[-_]sst[-_]auth)\s*=/im.test(text)) {
      out.push({ path, what: `my.cnf of ${n.name} (holds a password)`, kind: "secret" });
    }
  }
  return out;
}

const mode8 = (m: number) => (m & 0o7777).toString(8).padStart(4, "0");

/** "readable by every user", "readable and writable by its group", … */
function access(mode: number): string {
  const who = (bits: number, name: string) => {
    const can = [bits & 4 ? "readable" : "", bits & 2 ? "writable" : ""].filter(Boolean).join(" and ");
    return can ? `${can} by ${name}` : "";
  };
  return (
    [who((mode >> 3) & 7, "its group"), who(mode & 7, "every user")].filter(Boolean).join(", ") ||
    "open to its group or others"
  );
}

export async function fileFindings(loaded: LoadedConfig): Promise<AuditFinding[]> {
  const findings: AuditFinding[] = [];
  const euid = process.geteuid?.() ?? -1;
  const seen = new Set<string>();
  const dirs = new Map<string, string>();
  for (const w of [...watchedFiles(loaded), ...(await nodeCnfs(loaded))]) {
    if (seen.has(w.path)) continue;
    seen.add(w.path);
    let st: Awaited<ReturnType<typeof lstat>>;
    try {
      st = await lstat(w.path);
    } catch (e) {
      if (w.mayBeMissing) continue;
      findings.push({
        id: "file-missing",
        severity: "medium",
        practice: "least-privilege",
        title: `the ${w.what} named in the config does not exist`,
        evidence: `${w.path}: ${(e as NodeJS.ErrnoException).code}`,
        fix: "create it (mode 0600) or correct the path in the config",
        subject: w.path,
      });
      continue;
    }
    if (w.kind === "secret" || w.kind === "private") dirs.set(dirname(w.path), w.what);
    const mode = st.mode & 0o777;
    const others = mode & 0o007;
    const group = mode & 0o070;
    const writable = mode & 0o022;
    let severity: AuditFinding["severity"] | undefined;
    let why = "";
    if (w.kind === "secret" || w.kind === "config" || w.kind === "private") {
      if (others || group) {
        severity =
          w.kind === "secret"
            ? others
              ? "high"
              : "medium"
            : writable
              ? "high"
              : w.kind === "config"
                ? "medium"
                : "low";
        why = access(mode);
      }
    } else if (writable) {
      // Whoever can change the recipients can read every future backup.
      severity = w.what === "recipients file" ? "high" : "medium";
      why = access(mode & 0o022);
    }
    if (severity) {
      findings.push({
        id: "file-mode",
        severity,
        practice: "least-privilege",
        title: `the ${w.what} is ${why}`,
        evidence: `${w.path}: mode ${mode8(st.mode)}`,
        fix: w.kind === "integrity" ? `chmod go-w ${w.path}` : `chmod 600 ${w.path}`,
        subject: w.path,
      });
    }
    if (euid >= 0 && st.uid !== euid && st.uid !== 0) {
      findings.push({
        id: "file-owner",
        severity: "medium",
        practice: "least-privilege",
        title: `the ${w.what} belongs to another user`,
        evidence: `${w.path}: owner uid ${st.uid}, strongbox runs as uid ${euid}`,
        fix: `chown the file to the account that runs strongbox (or root): that other user can read or replace it`,
        subject: w.path,
      });
    }
  }
  for (const [dir, what] of dirs) {
    try {
      const st = await lstat(dir);
      const sticky = (st.mode & 0o1000) !== 0;
      if ((st.mode & 0o022) !== 0 && !sticky) {
        findings.push({
          id: "dir-writable",
          severity: "medium",
          practice: "least-privilege",
          title: "a directory holding secrets is writable by others",
          evidence: `${dir} (holds the ${what}): mode ${mode8(st.mode)}`,
          fix: `chmod go-w ${dir}: whoever can write it can swap the files in it`,
          subject: dir,
        });
      }
    } catch {
      // Reported through the files themselves.
    }
  }
  findings.push(...(await identityFinding(loaded)));
  for (const repo of loaded.config.repositories) {
    if (repo.storage.type !== "local") continue;
    const f = await repositoryModes(loaded.resolvePath(repo.storage.path), repo.name);
    if (f) findings.push(f);
  }
  return findings;
}

/** Files of up to 64 KiB in these directories that hold an age identity (AGE-SECRET-KEY-1…). */
async function identityFilesIn(dirs: Iterable<string>): Promise<string[]> {
  const out: string[] = [];
  for (const dir of dirs) {
    const names = await readdir(dir).catch(() => [] as string[]);
    for (const name of names) {
      const p = join(dir, name);
      const st = await lstat(p).catch(() => undefined);
      if (!st?.isFile() || st.size > 65536) continue;
      const text = await readFile(p, "utf8").catch(() => "");
      if (/^AGE-SECRET-KEY-1[0-9A-Z]+$/m.test(text)) out.push(p);
    }
  }
  return out;
}

async function identityFinding(loaded: LoadedConfig): Promise<AuditFinding[]> {
  const k = loaded.config.keys;
  const r = (p: string) => loaded.resolvePath(p);
  const configured = k.identity ? r(k.identity) : undefined;
  // Where keys live: the config's directory and those of the key files it names.
  const dirs = new Set(
    [loaded.path, k.signingKey && r(k.signingKey), k.recipientsFile && r(k.recipientsFile), configured]
      .filter((p): p is string => typeof p === "string")
      .map((p) => dirname(p)),
  );
  const found = await identityFilesIn(dirs);
  const findings: AuditFinding[] = found.map((path) => ({
    id: "identity-on-host",
    severity: "high",
    practice: "encryption",
    title: "the private age identity is on the backup host",
    evidence: `${path} holds an age identity (AGE-SECRET-KEY-1…)${path === configured ? ", named by keys.identity" : ""}: whoever takes this host can decrypt every backup`,
    fix: "move the identity offline (a safe, the restore host), remove keys.identity from this config, pass --identity for restores",
    subject: path,
  }));
  if (configured && !found.includes(configured)) {
    const present = await lstat(configured).then(
      () => true,
      () => false,
    );
    findings.push(
      present
        ? {
            id: "identity-on-host",
            severity: "high",
            practice: "encryption",
            title: "the private age identity is on the backup host",
            evidence: `keys.identity: ${configured} exists`,
            fix: "move the identity offline (a safe, the restore host), remove keys.identity from this config, pass --identity for restores",
            subject: configured,
          }
        : {
            id: "identity-configured",
            severity: "info",
            practice: "encryption",
            title: "keys.identity names an identity that is not on this host",
            evidence: `keys.identity: ${k.identity} (absent)`,
            fix: "remove keys.identity from the backup host's config; pass --identity where you restore",
          },
    );
  }
  return findings;
}

/** Files must be 0600 and directories 0700 (SPEC: created with that mode). */
async function repositoryModes(root: string, name: string): Promise<AuditFinding | undefined> {
  let total = 0;
  const open: string[] = [];
  const limit = 200_000;
  const walk = async (dir: string): Promise<void> => {
    let entries: import("node:fs").Dirent[];
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (total >= limit) return;
      const p = join(dir, e.name);
      total++;
      const st = await lstat(p).catch(() => undefined);
      if (!st) continue;
      if ((st.mode & 0o077) !== 0) open.push(`${p} (${mode8(st.mode)})`);
      if (e.isDirectory()) await walk(p);
    }
  };
  const rootSt = await lstat(root).catch(() => undefined);
  if (!rootSt) return undefined;
  if ((rootSt.mode & 0o077) !== 0) open.push(`${root} (${mode8(rootSt.mode)})`);
  await walk(root);
  if (open.length === 0) return undefined;
  return {
    id: "repo-object-mode",
    severity: "medium",
    practice: "least-privilege",
    title: `objects of repository ${name} are accessible by group or others`,
    evidence: `${open.length} of ${total + 1} entries, e.g. ${open.slice(0, 3).join(", ")}`,
    fix: `chmod -R go-rwx ${root} (the contents are encrypted, but manifests and sizes are not all secret, and others could delete them)`,
    subject: name,
  };
}
