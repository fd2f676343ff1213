// The manifest: everything known about one backup, signed (Ed25519) so tampering is detected.
// Sensitive details (host names, schema and table inventory) are an age blob inside it.
import { createHash, randomBytes } from "node:crypto";
import { canonicalJson, sign, signedByTrusted } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import type { PartRecord } from "../pipeline/parts.ts";

export const MANIFEST_FORMAT = 1;

export type BackupType = "full" | "incremental" | "logical";

export interface Manifest {
  format: number;
  id: string;
  type: BackupType;
  /** Incremental: the backup this one applies on top of. */
  parent: string | null;
  /** The full backup at the root of this chain (itself for a full). */
  chainRoot: string;
  cluster: { name: string; uuid: string | null; seqno: number | null; size: number };
  donor: string;
  serverVersion: string | null;
  gtid: string | null;
  binlog: { file: string; position: number } | null;
  lsn: { from: number; to: number; last: number } | null;
  startedAt: string;
  finishedAt: string;
  durations: Record<string, number>;
  bytes: { raw: number; compressed: number; stored: number };
  compression: { algorithm: "zstd"; level: number };
  encryption: { format: "age-v1"; recipients: string[]; passphrase: boolean };
  parts: PartRecord[];
  /** age-encrypted JSON of ManifestDetails, base64. */
  details: string;
  tool: { name: "strongbox"; version: string; backupTool: string };
  signature?: { algorithm: "ed25519"; publicKey: string; value: string };
}

export interface InventoryTable {
  schema: string;
  table: string;
  engine: string | null;
  type: string;
  rows: number | null;
  /** `rows` is InnoDB's estimate, not an exact count (tables above backup.exactCountMaxRows). */
  estimated?: true;
}

export interface ManifestDetails {
  donorHost: string;
  donorPort: number;
  nodes: { name: string; host: string; port: number }[];
  inventory: {
    schemas: string[];
    tables: InventoryTable[];
    routines: number;
    triggers: number;
    events: number;
  };
}

/** Sortable, unique, and safe as a storage key: 20261126T171300Z-3f9a1c. */
/**
 * A backup id: its start time in UTC to the millisecond, then 6 random hex digits. Ids sort in the
 * order the backups were taken, which listings, chains and planning rely on: to the second only,
 * two small backups of the same second sorted by their random part.
 */
export function newBackupId(now = new Date()): string {
  const ts = now.toISOString().replace(/[-:]/g, "");
  return `${ts}-${randomBytes(3).toString("hex")}`;
}

/** Ids of this version have milliseconds; those of earlier ones (to the second) are still read. */
export const BACKUP_ID_RE = /^\d{8}T\d{6}(\.\d{3})?Z-[0-9a-f]{6}$/;

export function signedBytes(m: Manifest): Buffer {
  const { signature: _ignored, ...rest } = m;
  return Buffer.from(canonicalJson(rest), "utf8");
}

export function signManifest(m: Manifest, privateKeyPem: string, publicKey: string): Manifest {
  const unsigned = { ...m, signature: undefined };
  delete unsigned.signature;
  return {
    ...unsigned,
    signature: { algorithm: "ed25519", publicKey, value: sign(privateKeyPem, signedBytes(unsigned)) },
  };
}

/** SHA-256 (hex) of the whole manifest, signature included: what the evidence log records. */
export function manifestDigest(m: Manifest): string {
  return createHash("sha256").update(canonicalJson(m)).digest("hex");
}

/**
 * Throws MANIFEST_UNSIGNED or MANIFEST_TAMPERED unless the signature is valid for one of the
 * trusted public keys (one, or a list while a signing key rotation runs).
 */
export function verifyManifest(m: Manifest, trusted: string | readonly string[]): void {
  const sig = m.signature;
  if (!sig) throw new StrongboxError("MANIFEST_UNSIGNED", `manifest of backup ${m.id} has no signature`);
  if (!signedByTrusted(sig, trusted, () => signedBytes(m))) {
    throw new StrongboxError(
      "MANIFEST_TAMPERED",
      `manifest of backup ${m.id} fails its signature check: it was modified or signed by another key`,
      { hint: "do not trust this backup; compare with an offsite copy" },
    );
  }
}

export function parseManifest(text: string, key: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(text) as Manifest;
  } catch {
    throw new StrongboxError("MANIFEST_CORRUPT", `manifest ${key} is not valid JSON`);
  }
  if (typeof m !== "object" || m === null || m.format !== MANIFEST_FORMAT || typeof m.id !== "string") {
    throw new StrongboxError(
      "MANIFEST_CORRUPT",
      `manifest ${key} is not a Strongbox manifest of format ${MANIFEST_FORMAT}`,
    );
  }
  return m;
}
