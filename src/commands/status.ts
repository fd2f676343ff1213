// status: health per repository for people and for monitoring (Nagios exit codes 0/1/2/3).

import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { formatHealth } from "../monitor/health.ts";
import { statusOf } from "../monitor/monitor.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";

export async function status(g: GlobalOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const report = statusOf(monitorSettingsOf(loaded));
  out.result(report, () => formatHealth(report));
  return { exitCode: report.exitCode, result: report };
}
