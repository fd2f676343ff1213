// audit: the deployment against the five practices. Exit 0 (nothing, or info only), 1 (worst is
// low or medium), 2 (worst is high or critical).
import type { GlobalOptions } from "../cli/args.ts";
import { emit } from "../cli/output.ts";
import { loadConfig } from "../config/load.ts";
import { runAudit } from "../security/audit/audit.ts";
import type { Finding } from "../security/audit/types.ts";

export interface AuditCommandOptions {
  /** commander's --no-connect sets this false. */
  connect?: boolean;
}

function render(f: Finding): string {
  const tag = `${f.severity.toUpperCase()}${f.accepted ? " (accepted)" : ""}`;
  return [
    `${tag.padEnd(9)} ${f.id}: ${f.title}`,
    `          evidence: ${f.evidence}`,
    `          fix: ${f.fix}`,
  ].join("\n");
}

export async function audit(g: GlobalOptions, o: AuditCommandOptions): Promise<void> {
  // The config's own mode is a finding here, not a reason to refuse.
  const loaded = await loadConfig(g.config, { checkMode: false });
  const report = await runAudit(loaded, { connect: o.connect ?? true });
  const c = report.counts;
  const summary =
    report.findings.length === 0
      ? "no findings"
      : `${report.findings.length} finding(s): ${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low, ${c.info} info`;
  emit(g, { ...report, config: loaded.path }, () =>
    [...report.findings.map(render), `${summary} (exit ${report.exitCode})`].join("\n"),
  );
  process.exitCode = report.exitCode;
}
