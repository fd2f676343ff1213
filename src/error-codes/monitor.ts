// Error codes of monitoring, alerts, dashboard.
import { type ErrorSpec, ExitCode, FAIL } from "./spec.ts";

export const MONITOR_ERRORS = {
  title: "Monitoring, alerts, dashboard",
  codes: {
    CATALOG_OPEN: {
      exit: FAIL,
      meaning: "the run catalog cannot be opened or is not a strongbox catalog",
      hint: "move it aside; a new one is created",
    },
    CATALOG_MODE: {
      exit: FAIL,
      meaning: "the run catalog cannot be made private (mode 0600)",
      hint: "chmod 600 the catalog",
    },
    CATALOG_TOO_NEW: {
      exit: FAIL,
      meaning: "the run catalog was written by a newer strongbox",
      hint: "upgrade strongbox",
    },
    RUN_UNKNOWN: { exit: FAIL, meaning: "no run with that id in the catalog", hint: "" },
    ALERT_WEBHOOK: {
      exit: FAIL,
      meaning: "the alert webhook is unreachable or answered with an error",
      hint: "check monitoring.alerts.webhook",
    },
    ALERT_EMAIL: {
      exit: FAIL,
      meaning: "the alert e-mail could not be sent",
      hint: "check monitoring.alerts.email and the SMTP server",
    },
    ALERT_NO_CHANNEL: {
      exit: ExitCode.config,
      meaning: "alert test: the configuration names no alert channel",
      hint: "add monitoring.alerts.webhook or monitoring.alerts.email",
    },
    ALERT_REJECTED: {
      exit: FAIL,
      meaning: "the alert receiver refused the alert for good (no retry helps)",
      hint: "",
    },
    SMTP_CONFIG: {
      exit: FAIL,
      meaning: "the SMTP settings are inconsistent (a password without a user)",
      hint: "add monitoring.alerts.email.user",
    },
    SERVE_NEEDS_TOKEN: {
      exit: ExitCode.usage,
      meaning: "the dashboard would listen beyond loopback without a token",
      hint: "set serve.tokenFile, or bind to 127.0.0.1",
    },
    SERVE_LISTEN: {
      exit: FAIL,
      meaning: "the dashboard cannot listen on the address and port",
      hint: "is the port taken?",
    },
    BAD_TOKEN_FILE: {
      exit: FAIL,
      meaning: "the dashboard token file does not hold one token of at least 16 characters",
      hint: "openssl rand -hex 24 > FILE && chmod 600 FILE",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
