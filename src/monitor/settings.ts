// The `monitoring` section of strongbox.yaml turned into plain numbers (milliseconds) for the rules,
// and into channel settings with their secrets read from 0600 files.
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { stateDirOf } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { type MonitoringConfig, monitoringSchema } from "../config/schema.ts";
import { StrongboxError } from "../errors.ts";
import { parseDuration } from "../util/duration.ts";
import { assertPrivateFile } from "../util/private-file.ts";

export interface LongRunSettings {
  k: number;
  minHistory: number;
  /** How many recent successful runs form the history. */
  window: number;
  minRelativeSpread: number;
  minSpreadMs: number;
}

export interface SizeSettings {
  lowFactor: number;
  highFactor: number;
  minHistory: number;
  window: number;
}

export interface RuleSettings {
  maxBackupAgeMs: number;
  /** undefined: the check is off. */
  maxVerifyAgeMs: number | undefined;
  maxRestoreTestAgeMs: number | undefined;
  maxCopyAgeMs: number | undefined;
  longRun: LongRunSettings;
  size: SizeSettings;
  /** Repositories the age rules apply to; undefined: all that are evaluated. */
  ageRepositories: string[] | undefined;
}

export interface WebhookSettings {
  url: string;
  token?: string | undefined;
  timeoutMs: number;
}

export interface EmailSettings {
  host: string;
  port: number;
  secure: boolean;
  user?: string | undefined;
  password?: string | undefined;
  from: string;
  to: string[];
}

export interface AlertSettings {
  webhook?: WebhookSettings | undefined;
  email?: EmailSettings | undefined;
  attempts: number;
  backoffMs: number;
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
