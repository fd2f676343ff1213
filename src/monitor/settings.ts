// What monitoring needs to know, in plain numbers (milliseconds) and resolved paths: the rules'
// thresholds, the catalog's place, the repositories reported on, and the alert channels.
// config/monitoring.ts makes these from strongbox.yaml.

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
  /** The binlog archive's lag limit; undefined: the check is off. */
  binlogLagMaxMs: number | undefined;
  longRun: LongRunSettings;
  size: SizeSettings;
  /** Repositories the age rules apply to; undefined: all that are evaluated. */
  ageRepositories: string[] | undefined;
  /**
   * The offsite rule: the repository backups go into and the repositories they are copied to
   * (backup.copyTo). Undefined: the rule is off.
   */
  offsite?: { primary: string; targets: string[] } | undefined;
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

export interface MonitorSettings {
  /** The run catalog's SQLite file. */
  catalogPath: string;
  /** The repositories monitoring reports on. */
  repositories: string[];
  rules: RuleSettings;
  /** The channels; reading them reads the secret files, so it is done only when alerts are sent. */
  alerts(): Promise<AlertSettings>;
}
