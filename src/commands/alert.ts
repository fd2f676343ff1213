// alert test: one clearly marked test message through every configured channel, with the
// configured retries; exit 2 when one channel did not deliver it.
import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { StrongboxError } from "../errors.ts";
import { sendTestAlert } from "../monitor/monitor.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";

export async function alertTest(g: GlobalOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const alerts = loaded.config.monitoring?.alerts;
  if (!alerts?.webhook && !alerts?.email) {
    throw new StrongboxError("ALERT_NO_CHANNEL", `${loaded.path} configures no alert channel`, {
      hint: "add monitoring.alerts.webhook or monitoring.alerts.email",
    });
  }
  const deliveries = await sendTestAlert(monitorSettingsOf(loaded));
  const exitCode = deliveries.every((d) => d.ok) ? 0 : 2;
  const result = { deliveries, exitCode };
  out.result(result, () =>
    deliveries
      .map((d) =>
        d.ok
          ? `${d.channel}: test message delivered`
          : `${d.channel}: NOT delivered after ${d.attempts} attempt(s): ${d.error ?? "?"}`,
      )
      .join("\n"),
  );
  return { exitCode, result };
}
