// The audit as a whole: every check, accepted findings marked, sorted worst first, the exit code.
import type { LoadedConfig } from "../config/load.ts";
import { adminFindings, gatherNodes, grantFindings, nodeSettingFindings } from "./database.ts";
import { fileFindings } from "./files.ts";
import { historyFindings, monitoringFindings } from "./history.ts";
import { encryptionFindings, offsiteConfigFindings, storageFindings } from "./repositories.ts";
import { type AuditFinding, type AuditSeverity, auditExitCode, sortFindings } from "./types.ts";

export interface AuditOptions {
  /** Connect to the nodes (default true); without it only the config, files and history are checked. */
  connect?: boolean;
  now?: number;
}

export interface AuditReport {
  findings: AuditFinding[];
  counts: Record<AuditSeverity, number>;
  exitCode: 0 | 1 | 2;
  checkedNodes: string[];
}

export async function runAudit(loaded: LoadedConfig, o: AuditOptions = {}): Promise<AuditReport> {
  const findings: AuditFinding[] = [];
  findings.push(...(await fileFindings(loaded)));
  findings.push(...(await encryptionFindings(loaded)));
  findings.push(...storageFindings(loaded));
  findings.push(...offsiteConfigFindings(loaded));
  findings.push(...historyFindings(loaded, o.now));
  findings.push(...monitoringFindings(loaded));
  let checkedNodes: string[] = [];
  if (o.connect ?? true) {
    const { facts } = await gatherNodes(loaded, findings);
    checkedNodes = facts.map((f) => f.name);
    const methods = [...(loaded.config.security?.backupMethods ?? ["physical", "logical"])];
    findings.push(...grantFindings(facts, methods, loaded.config.cluster.credentials.backup.user));
    findings.push(...(await adminFindings(loaded)));
    findings.push(...(await nodeSettingFindings(loaded, facts)));
  }
  const accepted = new Set(loaded.config.security?.acceptFindings ?? []);
  for (const f of findings) if (accepted.has(f.id)) f.accepted = true;
  sortFindings(findings);
  const counts: Record<AuditSeverity, number> = { critical: 0, high: 0, medium: 0, low: 0, info: 0 };
  for (const f of findings) if (!f.accepted) counts[f.severity]++;
  return { findings, counts, exitCode: auditExitCode(findings), checkedNodes };
}
