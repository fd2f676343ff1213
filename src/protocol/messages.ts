// What the backup host and a node's agent say to each other, on top of frames.ts. Three operations:
// a physical backup streamed back as age-encrypted parts; a restore of a chain into a directory on
// the node; a restore-test on the node. The agent runs only what this protocol names; there is no
// shell behind it.
import { isErrorCode } from "../error-codes.ts";
import { StrongboxError } from "../errors.ts";
import type { Credentials } from "../galera/connection.ts";
import type { PhysicalPosition } from "../mariadb/backup-tools.ts";
import type { Manifest, ManifestDetails } from "../repository/manifest.ts";

export const AGENT_PROTOCOL = 1;

export interface Hello {
  protocol: number;
  /** The strongbox version on that side. */
  version: string;
  /** The agent's host name and OS account (agent → backup host only). */
  host?: string;
  user?: string;
}

/** A physical backup on the node. Credentials travel only inside SSH, never in argv or files left behind. */
export interface BackupRequest {
  op: "backup";
  mariabackupPath: string;
  /** How the agent reaches the server: its socket (unix-socket auth works), or host and port. */
  node: {
    name: string;
    host: string;
    port: number;
    socket?: string | undefined;
    datadir?: string | undefined;
    defaultsFile?: string | undefined;
  };
  creds: Credentials;
  /**
   * The CA that signed the server's certificate, as PEM text: the backup host's path to it means
   * nothing on the node. Client certificates are not sent (their keys stay on the backup host).
   */
  tlsCaPem?: string | undefined;
  parallel: number;
  incrementalLsn?: number | undefined;
  /** Compressed bytes per part. */
  partSize: number;
  compressionLevel: number;
  compressionThreads: number;
  /** age1… recipients the parts are encrypted to: the node holds no private key. */
  recipients: string[];
  account?: string | undefined;
}

/**
 * A restore of a physical chain into `targetDir` on the node, prepared, with grastate.dat. The
 * backup host sends each backup's decrypted, still compressed stream after the request, in chain
 * order (partStart {index}, data, partEnd); the identity never leaves the host that restores.
 */
export interface RestoreRequest {
  op: "restore";
  /** The chain, full first: manifests whose signatures the backup host checked. */
  chain: Manifest[];
  targetDir: string;
  force: boolean;
  prepare: boolean;
  mariabackupPath: string;
}

/** A restore-test on the node: the chain restored into scratch space there, started, checked. */
export interface RestoreTestRequest {
  op: "restore-test";
  chain: Manifest[];
  inventory: ManifestDetails["inventory"];
  mariabackupPath: string;
  assertions: { name: string; sql: string; expect: string }[];
  rowCountTolerance: { exact: number; estimate: number };
  bufferPool: string;
}

export type AgentRequest = BackupRequest | RestoreRequest | RestoreTestRequest;

/** A progress line from the agent (agent → backup host), shown to the operator. */
export interface LogLine {
  message: string;
}

export interface PartStart {
  index: number;
}

export interface PartEnd {
  index: number;
  /** Compressed bytes in the part, before encryption. */
  plainSize: number;
}

export interface BackupResult {
  rawBytes: number;
  position: PhysicalPosition;
}

export interface AgentError {
  code: string;
  message: string;
  hint?: string | undefined;
}

/** An error frame from the agent as the error it was there. */
export function agentErrorOf(e: AgentError, node: string): StrongboxError {
  const code = isErrorCode(e.code) ? e.code : "AGENT_PROTOCOL";
  return new StrongboxError(code, `${node}: ${e.message}`, {
    stage: "agent",
    ...(e.hint ? { hint: e.hint } : {}),
  });
}
