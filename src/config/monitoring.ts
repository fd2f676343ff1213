// The `monitoring` section of strongbox.yaml turned into MonitorSettings: plain numbers
// (milliseconds) for the rules, and channel settings with their secrets read from 0600 files.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { AlertSettings, MonitorSettings, RuleSettings } from "../monitor/settings.ts";
import { parseDuration } from "../util/duration.ts";
import { assertPrivateFile } from "../util/private-file.ts";
import { repositoryConfig, stateDirOf } from "./context.ts";
import type { LoadedConfig } from "./load.ts";
import { type MonitoringConfig, monitoringSchema } from "./schema.ts";

/** Everything monitoring reads of the configuration. */
export function monitorSettingsOf(loaded: LoadedConfig): MonitorSettings {
  return {
    catalogPath: catalogPathOf(loaded),
    repositories: repositoriesOf(loaded),
    rules: { ...ruleSettings(monitoringConfigOf(loaded.config)), offsite: offsiteOf(loaded) },
    alerts: () => alertSettings(loaded),
  };
}

/** The offsite rule's repositories: the default one and where its backups are copied to. */
function offsiteOf(loaded: LoadedConfig): RuleSettings["offsite"] {
  if (!monitoringConfigOf(loaded.config).rules.requireOffsite) return undefined;
  const primary = repositoryConfig(loaded).name;
  return { primary, targets: loaded.config.backup.copyTo.filter((t) => t !== primary) };
}

function optionalAge(v: string): number | undefined {
  return v === "off" ? undefined : parseDuration(v);
}

/** The monitoring section with every default filled in (also when the section is absent). */
export function monitoringConfigOf(config: { monitoring?: MonitoringConfig | undefined }): MonitoringConfig {
  return config.monitoring ?? monitoringSchema.parse({});
}

export function ruleSettings(monitoring?: MonitoringConfig): RuleSettings {
  const r = (monitoring ?? monitoringSchema.parse({})).rules;
  return {
    maxBackupAgeMs: parseDuration(r.maxBackupAge),
    maxVerifyAgeMs: optionalAge(r.maxVerifyAge),
    maxRestoreTestAgeMs: optionalAge(r.maxRestoreTestAge),
    maxCopyAgeMs: optionalAge(r.maxCopyAge),
    binlogLagMaxMs: optionalAge(r.binlogLagMax),
    longRun: {
      k: r.longRun.k,
      minHistory: r.longRun.minHistory,
      window: r.longRun.window,
      minRelativeSpread: r.longRun.minRelativeSpread,
      minSpreadMs: parseDuration(r.longRun.minSpread),
    },
    size: { ...r.size },
    ageRepositories: r.repositories,
  };
}

/** Where the catalog lives: monitoring.catalog, else catalog.db in the state directory. */
export function catalogPathOf(loaded: LoadedConfig): string {
  const p = loaded.config.monitoring?.catalog;
  return p ? loaded.resolvePath(p) : join(stateDirOf(loaded), "catalog.db");
}

/** Names of the configured repositories, the ones monitoring reports on. */
export function repositoriesOf(loaded: LoadedConfig): string[] {
  return loaded.config.repositories.map((r) => r.name);
}

async function secret(path: string, what: string): Promise<string> {
  assertPrivateFile(path, what);
  const text = (await readFile(path, "utf8")).replace(/\r?\n$/, "");
  if (!text) throw new StrongboxError("SECRET_EMPTY", `${what} ${path} is empty`);
  return text;
}

/** Channel settings; reads the webhook token and SMTP password files (refused unless mode 0600). */
export async function alertSettings(loaded: LoadedConfig): Promise<AlertSettings> {
  const a = monitoringConfigOf(loaded.config).alerts;
  const out: AlertSettings = { attempts: a.attempts, backoffMs: parseDuration(a.backoff) };
  if (a.webhook) {
    out.webhook = {
      url: a.webhook.url,
      token: a.webhook.tokenFile
        ? await secret(loaded.resolvePath(a.webhook.tokenFile), "webhook token file")
        : undefined,
      timeoutMs: parseDuration(a.webhook.timeout),
    };
  }
  if (a.email) {
    if (a.email.passwordFile && !a.email.user) {
      throw new StrongboxError("SMTP_CONFIG", "monitoring.alerts.email.passwordFile is set without a user", {
        hint: "add monitoring.alerts.email.user",
      });
    }
    out.email = {
      host: a.email.host,
      port: a.email.port,
      secure: a.email.secure,
      user: a.email.user,
      password: a.email.passwordFile
        ? await secret(loaded.resolvePath(a.email.passwordFile), "SMTP password file")
        : undefined,
      from: a.email.from,
      to: a.email.to,
    };
  }
  return out;
}
