// status: health per repository for people and for monitoring (Nagios exit codes 0/1/2/3).
import type { GlobalOptions } from "../cli/args.ts";
import { loadConfig } from "../config/load.ts";
import { formatHealth } from "../monitor/health.ts";
import { statusOf } from "../monitor/monitor.ts";

export async function status(g: GlobalOptions): Promise<void> {
  const loaded = await loadConfig(g.config);
  const report = statusOf(loaded);
  process.stdout.write(g.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatHealth(report)}\n`);
  process.exitCode = report.exitCode;
}
