// Encryption and offsite copies as configured: recipients, passphrase, storage transport, a second
// repository, append-only, copies after every backup.
import { recipientsOf } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import type { RepositoryConfig } from "../config/schema.ts";
import { errorMessage } from "../errors.ts";
import { type AuditFinding, isLoopbackHost } from "./types.ts";

export function defaultRepositoryName(loaded: LoadedConfig): string {
  return loaded.config.defaultRepository ?? loaded.config.repositories[0]!.name;
}

/** Every repository but the one backups are written to: where the copies go. */
export function offsiteRepositories(loaded: LoadedConfig): RepositoryConfig[] {
  const primary = defaultRepositoryName(loaded);
  return loaded.config.repositories.filter((r) => r.name !== primary);
}

function describeStorage(r: RepositoryConfig): string {
  const s = r.storage;
  if (s.type === "local") return `local ${s.path}`;
  if (s.type === "sftp") return `sftp ${s.user}@${s.host}:${s.path}`;
  return `s3 ${s.endpoint ?? "aws"}/${s.bucket}/${s.prefix}`;
}

export async function encryptionFindings(loaded: LoadedConfig): Promise<AuditFinding[]> {
  const k = loaded.config.keys;
  if (k.passphraseFile) {
    return [
      {
        id: "encryption-passphrase",
        severity: "medium",
        practice: "encryption",
        title: "backups are encrypted with a passphrase that lives on the backup host",
        evidence: `keys.passphraseFile: ${k.passphraseFile}; whoever reads it can decrypt every backup`,
        fix: "encrypt to X25519 recipients (strongbox key generate on another machine, keys.recipients) and keep the identities offline",
      },
    ];
  }
  try {
    const r = await recipientsOf(loaded);
    if (r.names.length === 1) {
      return [
        {
          id: "encryption-single-recipient",
          severity: "low",
          practice: "encryption",
          title: "backups are encrypted to one recipient only",
          evidence: `recipient: ${r.names[0]}; losing that one identity makes every backup unreadable`,
          fix: "add an escrow recipient kept in a safe: strongbox key add-recipient age1…, then strongbox key rotate",
        },
      ];
    }
    return [];
  } catch (e) {
    return [
      {
        id: "encryption-recipients-invalid",
        severity: "high",
        practice: "encryption",
        title: "the recipients cannot be read, so backups cannot be encrypted",
        evidence: errorMessage(e),
        fix: "fix keys.recipients / keys.recipientsFile",
      },
    ];
  }
}

export function storageFindings(loaded: LoadedConfig): AuditFinding[] {
  const findings: AuditFinding[] = [];
  for (const r of loaded.config.repositories) {
    const s = r.storage;
    if (s.type === "s3" && s.endpoint?.startsWith("http://")) {
      const host = new URL(s.endpoint).hostname;
      findings.push({
        id: "storage-plain-http",
        severity: isLoopbackHost(host) ? "low" : "high",
        practice: "encryption",
        title: `repository ${r.name} is reached over plain HTTP`,
        evidence: `endpoint ${s.endpoint} (allowInsecureHttp: true): the S3 credentials' signatures and every object travel unprotected`,
        fix: "use an https:// endpoint (caFile for a private CA)",
        subject: r.name,
      });
    }
  }
  return findings;
}

export function offsiteConfigFindings(loaded: LoadedConfig): AuditFinding[] {
  const offsite = offsiteRepositories(loaded);
  if (offsite.length === 0) {
    return [
      {
        id: "offsite-none",
        severity: "high",
        practice: "offsite",
        title: "there is no offsite repository: the backups share the fate of one storage",
        evidence: `repositories: ${loaded.config.repositories.map((r) => `${r.name} (${describeStorage(r)})`).join(", ")}`,
        fix: "add a second repository on other storage (sftp or s3), mark it appendOnly and list it in backup.copyTo",
      },
    ];
  }
  const findings: AuditFinding[] = [];
  for (const r of offsite) {
    if (r.storage.type === "local") {
      findings.push({
        id: "offsite-local-path",
        severity: "low",
        practice: "offsite",
        title: `offsite repository ${r.name} is a path on this host`,
        evidence: describeStorage(r),
        fix: "make sure the path is other storage (another disk, an NFS mount in another room), or use sftp/s3",
        subject: r.name,
      });
    }
    const locked = r.storage.type === "s3" && r.storage.objectLock !== undefined;
    if (!r.appendOnly && !locked) {
      findings.push({
        id: "offsite-not-append-only",
        severity: "medium",
        practice: "offsite",
        title: `offsite repository ${r.name} can be deleted from the backup host`,
        evidence: `${describeStorage(r)}: appendOnly is false${r.storage.type === "s3" ? ", no objectLock" : ""}`,
        fix: "set appendOnly: true with credentials that cannot delete (or S3 Object Lock), and run prune there with separate credentials",
        subject: r.name,
      });
    }
    if (!loaded.config.backup.copyTo.includes(r.name)) {
      findings.push({
        id: "offsite-copy-not-configured",
        severity: "medium",
        practice: "offsite",
        title: `nothing copies backups to ${r.name} automatically`,
        evidence: `backup.copyTo: [${loaded.config.backup.copyTo.join(", ")}]`,
        fix: `add ${r.name} to backup.copyTo (copied after every backup, and by the daemon's copy job)`,
        subject: r.name,
      });
    }
  }
  return findings;
}
