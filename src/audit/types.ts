// What an audit reports: findings with a stable id, a severity, the evidence and the fix.
import { type AuditSeverity, SEVERITY_ORDER } from "../security/grants.ts";

export type { AuditSeverity };

export type Practice = "encryption" | "least-privilege" | "verification" | "offsite" | "monitoring";

export interface AuditFinding {
  /** Stable id (docs/audit.md lists them all); several findings may share one with different subjects. */
  id: string;
  severity: AuditSeverity;
  practice: Practice;
  title: string;
  /** What was seen, with the values read. Never a secret. */
  evidence: string;
  /** What to do about it. */
  fix: string;
  /** What the finding is about when one id can apply to several things (a file, a repository). */
  subject?: string | undefined;
  /** Listed in security.acceptFindings: reported, but not counted in the exit code. */
  accepted?: boolean | undefined;
}

export function severityRank(s: AuditSeverity): number {
  return SEVERITY_ORDER.indexOf(s);
}

/** 0: nothing or only info; 1: low or medium; 2: high or critical. Accepted findings do not count. */
export function auditExitCode(findings: readonly AuditFinding[]): 0 | 1 | 2 {
  let worst = 0;
  for (const f of findings) if (!f.accepted) worst = Math.max(worst, severityRank(f.severity));
  return worst >= severityRank("high") ? 2 : worst >= severityRank("low") ? 1 : 0;
}

export function sortFindings(findings: AuditFinding[]): AuditFinding[] {
  return findings.sort(
    (a, b) =>
      Number(a.accepted ?? false) - Number(b.accepted ?? false) ||
      severityRank(b.severity) - severityRank(a.severity) ||
      a.id.localeCompare(b.id) ||
      (a.subject ?? "").localeCompare(b.subject ?? ""),
  );
}

/** Address only this machine can reach. */
export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(h);
}

/** RFC 1918, CGNAT, IPv6 unique-local and link-local addresses. */
export function isPrivateHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, "").toLowerCase();
  const m = /^(\d{1,3})\.(\d{1,3})\.\d{1,3}\.\d{1,3}$/.exec(h);
  if (m) {
    const a = Number(m[1]);
    const b = Number(m[2]);
    return (
      a === 10 ||
      (a === 172 && b >= 16 && b <= 31) ||
      (a === 192 && b === 168) ||
      (a === 100 && b >= 64 && b <= 127) ||
      (a === 169 && b === 254)
    );
  }
  return /^f[cd][0-9a-f]{2}:/.test(h) || /^fe80:/.test(h);
}

export function ageText(ms: number): string {
  const h = ms / 3_600_000;
  if (h < 48) return `${h.toFixed(1)} h`;
  return `${(h / 24).toFixed(1)} days`;
}
