// Credentials removed from text that is stored or shown: recorded errors end up in alerts, on the
// dashboard and in logs.
import { errorMessage } from "../errors.ts";

const SECRET_PATTERNS: [RegExp, string][] = [
  [/-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(-----END [A-Z ]*PRIVATE KEY-----|$)/g, "[private key]"],
  [/AGE-SECRET-KEY-1[0-9A-Z]+/gi, "AGE-SECRET-KEY-[redacted]"],
  [/\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s/@]+@/gi, "$1[redacted]@"],
  [/\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}/gi, "$1 [redacted]"],
  [
    /\b(password|passwd|pwd|passphrase|secret|token|api[_-]?key|auth)(["']?\s*[=:]\s*["']?)[^\s"',;&]+/gi,
    "$1$2[redacted]",
  ],
];

/** Removes what looks like a credential: recorded errors end up in alerts and on the dashboard. */
export function redact(text: string): string {
  let out = text;
  for (const [re, by] of SECRET_PATTERNS) out = out.replace(re, by);
  return out;
}

/** An error as one redacted line of at most `max` characters. */
export function oneLineError(error: unknown, max = 500): string {
  const line = redact(errorMessage(error))
    .replace(/\s*[\r\n]+\s*/g, " ")
    .trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line || "unknown error";
}
