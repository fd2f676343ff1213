// MariaDB GTIDs (domain-server-sequence) and GTID position lists, as binlogs and manifests hold them.
import { StrongboxError } from "../errors.ts";

export interface Gtid {
  domain: number;
  server: number;
  seq: number;
}

const GTID_RE = /^(\d+)-(\d+)-(\d+)$/;

export function parseGtid(text: string): Gtid {
  const m = GTID_RE.exec(text.trim());
  if (!m) {
    throw new StrongboxError(
      "GTID_INVALID",
      `"${text}" is not a GTID (expected domain-server-sequence, e.g. 1-1-194)`,
    );
  }
  return { domain: Number(m[1]), server: Number(m[2]), seq: Number(m[3]) };
}

export function formatGtid(g: Gtid): string {
  return `${g.domain}-${g.server}-${g.seq}`;
}

/**
 * The GTID of `domain` in a GTID position list such as "1-1-194,101-1-3" (what manifests and
 * @@gtid_binlog_pos hold), or undefined when that domain is not in it.
 */
export function gtidInList(list: string, domain: number): Gtid | undefined {
  for (const part of list.split(",")) {
    const t = part.trim();
    if (!t) continue;
    const g = parseGtid(t);
    if (g.domain === domain) return g;
  }
  return undefined;
}
