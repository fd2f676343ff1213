// serve: the dashboard, JSON API and /metrics until SIGTERM or SIGINT.

import { loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { readToken } from "../web/auth.ts";
import { startServer } from "../web/server.ts";

export interface ServeCommandOptions {
  bind?: string;
  port?: number;
  /** Resolves when the server should stop (default: the first SIGTERM or SIGINT). */
  until?: Promise<unknown>;
}

function firstSignal(): Promise<NodeJS.Signals> {
  return new Promise((resolve) => {
    const on = (sig: NodeJS.Signals) => {
      process.off("SIGTERM", on);
      process.off("SIGINT", on);
      resolve(sig);
    };
    process.on("SIGTERM", on);
    process.on("SIGINT", on);
  });
}

export async function serve(g: GlobalOptions, o: ServeCommandOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const cfg = loaded.config.serve;
  const tokenFile = cfg?.tokenFile;
  const token = tokenFile ? await readToken(loaded.resolvePath(tokenFile)) : undefined;
  const until = o.until ?? firstSignal();
  const running = await startServer({
    monitor: monitorSettingsOf(loaded),
    host: o.bind ?? cfg?.bind ?? "127.0.0.1",
    port: o.port ?? cfg?.port ?? 8484,
    token,
    log: (m) => out.note(`strongbox serve: ${m}`),
  });
  const result = { url: running.url, metrics: `${running.url}metrics`, auth: token !== undefined };
  out.result(result, () =>
    [
      `dashboard: ${running.url}${token ? " (token required: bearer, or basic auth with the token as password)" : ""}`,
      `metrics:   ${running.url}metrics`,
      "stop with Ctrl-C or SIGTERM",
    ].join("\n"),
  );
  await until;
  await running.close();
  return { exitCode: 0, result };
}
