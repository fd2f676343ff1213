// Where the complete transactions end in the bytes a binlog stream has delivered so far, so a
// segment never holds half a transaction. The events are read by `mariadb-binlog` itself (from
// stdin: the bytes never touch a disk), as scan.ts does for whole files; only its text is read
// here: "# at N" (the event's offset), the event header line, and the statement text.
//
// A transaction starts at a GTID event. With "START TRANSACTION" after it (not standalone) it ends
// with an Xid event or a COMMIT/ROLLBACK/XA query; a standalone GTID (DDL) ends with its one query.
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { StrongboxError } from "../errors.ts";
import type { Gtid } from "../mariadb/gtid.ts";
import { TailBuffer } from "../util/proc.ts";
import { parseHeaderLine } from "./scan.ts";

export interface Transaction {
  /** Offsets in the bytes read: its GTID event, and the end of its last event. */
  start: number;
  end: number;
  gtid: Gtid;
  /** Event time (epoch ms, whole seconds). */
  at: number;
}

export interface CutResult {
  /** Complete transactions, in order. */
  transactions: Transaction[];
  /** Offset of the first GTID event (where the file's header events end), if any. */
  firstGtidAt: number | null;
}

const HEADER_TYPE_RE = /^#\d{6}\s+\d{1,2}:\d\d:\d\d\s+server id\s+\d+\s+end_log_pos\s+\d+.*?\t(\S+)/;
const TERMINATING_SQL_RE = /^(COMMIT|ROLLBACK|XA (COMMIT|ROLLBACK|PREPARE))\b/i;
/** The common event header's event_length field: 4 bytes little-endian at offset 9. */
const EVENT_LENGTH_OFFSET = 9;

interface Open {
  start: number;
  gtid: Gtid;
  at: number;
  standalone: boolean;
  /** The query events seen since the GTID: for a standalone one, the first query ends it. */
  lastEventStart: number;
  lastEventType: string;
  lastSql: string[];
}

/** The transactions whose last event is entirely in `bytes` (a binlog file: magic, header events, …). */
export async function completeTransactions(
  bytes: Buffer,
  o: { mariadbBinlog?: string | undefined; signal?: AbortSignal | undefined } = {},
): Promise<CutResult> {
  const child = spawn(
    o.mariadbBinlog ?? "mariadb-binlog",
    ["--no-defaults", "--base64-output=decode-rows", "-"],
    {
      env: { ...process.env, TZ: "UTC" },
      stdio: ["pipe", "pipe", "pipe"],
      signal: o.signal,
    },
  );
  const err = new TailBuffer();
  child.stderr.on("data", (c: Buffer) => err.push(c));
  child.stdin.on("error", () => {});
  child.stdin.end(bytes);
  const exited = new Promise<number | null>((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.name === "AbortError"
          ? e
          : new StrongboxError(
              "CHILD_NOT_FOUND",
              `mariadb-binlog: ${e.code === "ENOENT" ? "command not found" : e.message}`,
              { hint: "install the MariaDB client package", cause: e },
            ),
      ),
    );
    child.once("close", (code) => resolve(code));
  });
  const result: CutResult = { transactions: [], firstGtidAt: null };
  const offsets: number[] = [];
  let open: Open | undefined;
  const endOf = (start: number): number | undefined => {
    if (start + EVENT_LENGTH_OFFSET + 4 > bytes.length) return undefined;
    const end = start + bytes.readUInt32LE(start + EVENT_LENGTH_OFFSET);
    return end <= bytes.length ? end : undefined;
  };
  const close = (t: Open, lastStart: number) => {
    const end = endOf(lastStart);
    if (end !== undefined) result.transactions.push({ start: t.start, end, gtid: t.gtid, at: t.at });
    open = undefined;
  };
  // A query ends the open transaction when its text is COMMIT & co. (or it is a standalone's query).
  const queryDone = () => {
    if (open?.lastEventType !== "Query") return;
    if (open.standalone || open.lastSql.some((l) => TERMINATING_SQL_RE.test(l)))
      close(open, open.lastEventStart);
  };
  for await (const line of createInterface({ input: child.stdout, crlfDelay: Number.POSITIVE_INFINITY })) {
    if (line.startsWith("# at ")) {
      queryDone();
      offsets.push(Number(line.slice(5)));
      continue;
    }
    if (line.charCodeAt(0) === 35 /* # */) {
      const type = HEADER_TYPE_RE.exec(line)?.[1];
      if (type === undefined) continue;
      const start = offsets.shift();
      if (start === undefined) continue;
      const g = type === "GTID" ? parseHeaderLine(line) : undefined;
      if (g) {
        result.firstGtidAt ??= start;
        open = {
          start,
          gtid: g.gtid,
          at: g.at,
          standalone: true,
          lastEventStart: start,
          lastEventType: "GTID",
          lastSql: [],
        };
        continue;
      }
      if (!open) continue;
      open.lastEventStart = start;
      open.lastEventType = type;
      open.lastSql = [];
      if (type === "Xid") close(open, start);
      continue;
    }
    if (!open) continue;
    if (open.lastEventType === "GTID" && /^(START TRANSACTION|BEGIN)\b/.test(line)) open.standalone = false;
    else if (open.lastEventType === "Query") open.lastSql.push(line);
  }
  queryDone();
  const code = await exited;
  // A stream read mid-event ends in a truncated event: mariadb-binlog says so and exits 1; what it
  // printed before is good. Anything else it cannot read is an error.
  if (code !== 0 && !/truncated|read error|Could not read entry/i.test(err.text())) {
    throw new StrongboxError(
      "BINLOG_SCAN_FAILED",
      `mariadb-binlog could not read the streamed binlog: ${err.lastLines() || `exit ${code}`}`,
      { stage: "mariadb-binlog" },
    );
  }
  return result;
}
