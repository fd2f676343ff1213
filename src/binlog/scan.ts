// Reading what a binary log file holds: its GTIDs and their event times, from the text that
// `mariadb-binlog` prints (one "#YYMMDD HH:MM:SS server id … GTID d-s-n" header per transaction).
// Only the headers are needed, so rows are not decoded (--base64-output=decode-rows without -v).
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { StrongboxError } from "../errors.ts";
import type { Gtid } from "../mariadb/gtid.ts";
import { TailBuffer } from "../util/proc.ts";

export interface GtidEvent {
  gtid: Gtid;
  /** Event time from the header: whole seconds, UTC, as epoch milliseconds. */
  at: number;
}

export interface BinlogScan {
  /** GTIDs of the cluster domain, in file order. */
  events: GtidEvent[];
  /** GTIDs of other domains (node-local writes): counted, not replayed specially. */
  otherDomains: number;
}

// "#261126 18:56:06 server id 1  end_log_pos 385 CRC32 0x3f2a…	GTID 1-1-5 trans" (hour may be
// space-padded). "Gtid list [...]" lines are not transactions and do not match (case matters).
const HEADER_RE =
  /^#(\d\d)(\d\d)(\d\d)\s+(\d{1,2}):(\d\d):(\d\d)\s+server id\s+\d+\s+end_log_pos\s+\d+.*\tGTID (\d+)-(\d+)-(\d+)\b/;

/** One header line → its GTID event, or undefined for any other line. Times are read as UTC. */
export function parseHeaderLine(line: string): GtidEvent | undefined {
  const m = HEADER_RE.exec(line);
  if (!m) return undefined;
  const n = m.slice(1).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const at = Date.UTC(2000 + n[0], n[1] - 1, n[2], n[3], n[4], n[5]);
  return { gtid: { domain: n[6], server: n[7], seq: n[8] }, at };
}

/** Runs `mariadb-binlog` on a local file (TZ=UTC, so header times are UTC) and collects its GTIDs. */
export async function scanBinlogFile(
  path: string,
  domain: number,
  o: { mariadbBinlog?: string; signal?: AbortSignal } = {},
): Promise<BinlogScan> {
  const cmd = o.mariadbBinlog ?? "mariadb-binlog";
  const child = spawn(cmd, ["--no-defaults", "--base64-output=decode-rows", path], {
    env: { ...process.env, TZ: "UTC" },
    stdio: ["ignore", "pipe", "pipe"],
    signal: o.signal,
  });
  const err = new TailBuffer();
  child.stderr.on("data", (c: Buffer) => err.push(c));
  const result: BinlogScan = { events: [], otherDomains: 0 };
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new StrongboxError(
          "CHILD_NOT_FOUND",
          `mariadb-binlog: ${e.code === "ENOENT" ? "command not found" : e.message}`,
          {
            hint: "install the MariaDB client package",
            cause: e,
          },
        ),
      ),
    );
    child.once("close", (code) => resolve(code));
  });
  for await (const line of createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.charCodeAt(0) !== 35 /* # */) continue;
    const e = parseHeaderLine(line);
    if (!e) continue;
    if (e.gtid.domain === domain) result.events.push(e);
    else result.otherDomains++;
  }
  const code = await exited;
  if (code !== 0) {
    throw new StrongboxError(
      "BINLOG_SCAN_FAILED",
      `mariadb-binlog could not read ${path}: ${err.lastLines() || `exit ${code}`}`,
      {
        stage: "mariadb-binlog",
      },
    );
  }
  return result;
}
