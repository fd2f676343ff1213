// status: health per repository for people and for monitoring (Nagios exit codes 0/1/2/3): the
// run catalog's rules, and each repository's trust (signatures, evidence log) checked directly.

import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { errorMessage } from "../errors.ts";
import { formatHealth, withFindings } from "../monitor/health.ts";
import { statusOf } from "../monitor/monitor.ts";
import type { Finding } from "../monitor/rules.ts";
import { trustProblems } from "../repository/trusted.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { openRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

/** Untrusted manifests, backups missing or rolled back, a tampered evidence log: CRITICAL. */
async function integrityFindings(loaded: LoadedConfig, names: readonly string[]): Promise<Finding[]> {
  const findings: Finding[] = [];
  const finding = (repository: string, message: string): Finding => ({
    rule: "repository-integrity",
    repository,
    subject: "backup",
    severity: "critical",
    message: `${repository}: ${message}`,
    details: {},
  });
  for (const name of names) {
    if (!loaded.config.repositories.some((r) => r.name === name)) continue;
    try {
      const repo = await openRepository(loaded, name);
      try {
        // The evidence log's tail only (its whole chain is verify's): status stays cheap.
        const set = await (await verifierFor(loaded, repo)).inventory();
        for (const p of trustProblems(set)) findings.push(finding(name, p));
      } finally {
        await repo.storage.close();
      }
    } catch (e) {
      findings.push(finding(name, `cannot be checked: ${errorMessage(e)}`));
    }
  }
  return findings;
}

export async function status(g: GlobalOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const settings = monitorSettingsOf(loaded);
  const report = withFindings(statusOf(settings), await integrityFindings(loaded, settings.repositories));
  out.result(report, () => formatHealth(report));
  return { exitCode: report.exitCode, result: report };
}
