// The daemon's log: one JSON object per line (pino) for journald and log shippers, or the same
// events as short readable lines when stdout is a terminal.
import { type Logger, pino } from "pino";

export type { Logger };

const LEVELS: Record<number, string> = {
  10: "TRACE",
  20: "DEBUG",
  30: "INFO",
  40: "WARN",
  50: "ERROR",
  60: "FATAL",
};
const SKIP = new Set(["level", "time", "msg", "pid", "hostname"]);

/** Turns one pino JSON line into "12:00:01 INFO  job end: verify  result=ok durationMs=812". */
export function humanLine(json: string): string {
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json;
  }
  const time = typeof o.time === "string" ? o.time.slice(11, 19) : new Date().toISOString().slice(11, 19);
  const level = (LEVELS[Number(o.level)] ?? String(o.level)).padEnd(5);
  const extra = Object.entries(o)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
    .join(" ");
  return `${time} ${level} ${String(o.msg ?? "")}${extra ? `  ${extra}` : ""}\n`;
}

export interface LogSink {
  write(line: string): void;
}

export function createLogger(o: { sink?: LogSink; human?: boolean } = {}): Logger {
  const human = o.human ?? (o.sink === undefined && process.stdout.isTTY === true);
  const sink: LogSink =
    o.sink ??
    (human
      ? { write: (line: string) => process.stdout.write(humanLine(line)) }
      : pino.destination({ dest: 1, sync: true }));
  return pino(
    { base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime, formatters: {} },
    o.sink && human ? { write: (line: string) => sink.write(humanLine(line)) } : sink,
  );
}
