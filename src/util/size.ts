// Byte sizes as people write them ("200MB", "512MiB", "1.5G") and as we print them.
import { StrongboxError } from "../errors.ts";

const KI = 1024;
// Bare K/M/G/T follow MariaDB's my.cnf convention ("256M" is 256 MiB); KB/MB/GB/TB are decimal.
const UNITS: Record<string, number> = {
  "": 1,
  b: 1,
  k: KI,
  kb: 1e3,
  kib: KI,
  m: KI ** 2,
  mb: 1e6,
  mib: KI ** 2,
  g: KI ** 3,
  gb: 1e9,
  gib: KI ** 3,
  t: KI ** 4,
  tb: 1e12,
  tib: KI ** 4,
};

const SIZE_RE = /^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$/i;

function badSize(input: unknown, why: string): StrongboxError {
  return new StrongboxError("BAD_SIZE", `invalid size ${JSON.stringify(input)}: ${why}`, {
    hint: 'write a number of bytes or a number with a unit, e.g. "200MB", "1GB", "512MiB", "1.5G"',
  });
}

/** Parses "200MB" (decimal), "512MiB" (binary), "1.5G" (binary, as in my.cnf) or a plain byte count. */
export function parseSize(input: string | number): number {
  if (typeof input === "number") {
    if (!Number.isSafeInteger(input) || input < 0)
      throw badSize(input, "not a whole, non-negative number of bytes");
    return input;
  }
  if (typeof input !== "string") throw badSize(input, "not a string");
  const m = SIZE_RE.exec(input);
  if (!m) throw badSize(input, "expected a number followed by an optional unit");
  const unit = UNITS[m[2]!.toLowerCase()];
  if (unit === undefined)
    throw badSize(input, `unknown unit "${m[2]}" (use B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)`);
  const bytes = Math.round(Number(m[1]) * unit);
  if (!Number.isSafeInteger(bytes)) throw badSize(input, "too large");
  return bytes;
}

const BINARY_UNITS = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"] as const;

/** 1536 → "1.5 KiB"; binary units, one decimal above bytes. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  const sign = n < 0 ? "-" : "";
  let v = Math.abs(n);
  let i = 0;
  while (v >= KI && i < BINARY_UNITS.length - 1) {
    v /= KI;
    i++;
  }
  // 1023.96 KiB would print as "1024.0 KiB": move up a unit instead.
  if (i > 0 && v.toFixed(1) === "1024.0" && i < BINARY_UNITS.length - 1) {
    v /= KI;
    i++;
  }
  return i === 0 ? `${sign}${Math.round(v)} B` : `${sign}${v.toFixed(1)} ${BINARY_UNITS[i]}`;
}
