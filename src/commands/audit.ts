// audit: the deployment against the five practices. Exit 0 (nothing, or info only), 1 (worst is
// low or medium), 2 (worst is high or critical).

import { runAudit } from "../audit/audit.ts";
import type { AuditFinding } from "../audit/types.ts";
import { loadConfig } from "../config/load.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";

export interface AuditCommandOptions {
  /** commander's --no-connect sets this false. */
  connect?: boolean;
}

function render(f: AuditFinding): string {
  const tag = `${f.severity.toUpperCase()}${f.accepted ? " (accepted)" : ""}`;
  return [
    `${tag.padEnd(9)} ${f.id}: ${f.title}`,
    `          evidence: ${f.evidence}`,
    `          fix: ${f.fix}`,
  ].join("\n");
}

export async function audit(g: GlobalOptions, o: AuditCommandOptions, out: Output): Promise<CommandResult> {
  // The config's own mode is a finding here, not a reason to refuse.
  const loaded = await loadConfig(g.config, { checkMode: false });
  const report = await runAudit(loaded, { connect: o.connect ?? true });
  const c = report.counts;
  const summary =
    report.findings.length === 0
      ? "no findings"
      : `${report.findings.length} finding(s): ${c.critical} critical, ${c.high} high, ${c.medium} medium, ${c.low} low, ${c.info} info`;
  const result = { ...report, config: loaded.path };
  out.result(result, () =>
    [...report.findings.map(render), `${summary} (exit ${report.exitCode})`].join("\n"),
  );
  return { exitCode: report.exitCode, result };
}
