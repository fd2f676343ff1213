// Where alerts go: a webhook (JSON POST with a Slack-compatible `text`) and e-mail over SMTP. Each
// channel only knows how to send one message once; retries with backoff are added by withRetry.
import { isIP } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { StrongboxError } from "../errors.ts";
import type { Incident, NotificationEvent } from "./catalog-types.ts";
import type { EmailSettings, WebhookSettings } from "./settings.ts";

export interface AlertMessage {
  event: NotificationEvent;
  incident: Incident;
  /** The host that sent it. */
  host: string;
  /** Short: the e-mail subject. */
  title: string;
  /** One paragraph: the webhook `text`, the first lines of the e-mail. */
  text: string;
}

export interface AlertChannel {
  /** Stable name, recorded with each notification ("webhook", "email"). */
  readonly name: string;
  send(message: AlertMessage, signal?: AbortSignal): Promise<void>;
}

/** An error that another attempt will not fix (a 4xx answer, a rejected login). */
export class PermanentDeliveryError extends StrongboxError {
  constructor(message: string, cause?: unknown) {
    super("ALERT_REJECTED", message, { cause, stage: "alert" });
    this.name = "PermanentDeliveryError";
  }
}

export interface RetryOptions {
  attempts: number;
  /** Wait before the second attempt; doubled after every further failure. */
  backoffMs: number;
  signal?: AbortSignal | undefined;
  /** Called after each failed attempt, for logs. */
  onFailure?: (attempt: number, error: unknown) => void;
}

export interface RetryOutcome {
  ok: boolean;
  attempts: number;
  error?: unknown;
}

/** Runs fn until it succeeds, fails permanently, or runs out of attempts. Never throws. */
export async function withRetry(fn: () => Promise<void>, o: RetryOptions): Promise<RetryOutcome> {
  let error: unknown;
  for (let attempt = 1; attempt <= Math.max(1, o.attempts); attempt++) {
    try {
      await fn();
      return { ok: true, attempts: attempt };
    } catch (e) {
      error = e;
      o.onFailure?.(attempt, e);
      if (e instanceof PermanentDeliveryError || o.signal?.aborted || attempt >= o.attempts) {
        return { ok: false, attempts: attempt, error };
      }
      // Full jitter would make tests slow to reason about; ±20 % keeps many hosts from marching in step.
      const wait = o.backoffMs * 2 ** (attempt - 1) * (0.8 + Math.random() * 0.4);
      try {
        await sleep(wait, undefined, { signal: o.signal });
      } catch {
        return { ok: false, attempts: attempt, error };
      }
    }
  }
  return { ok: false, attempts: o.attempts, error };
}

/** Slack treats &, < and > in `text` as markup. */
function slackEscape(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** The JSON body of a webhook: Slack reads `text`; other receivers can use the structured fields. */
export function webhookPayload(m: AlertMessage): Record<string, unknown> {
  const i = m.incident;
  return {
    text: slackEscape(m.text),
    event: m.event,
    status: m.event === "open" ? "firing" : "resolved",
    severity: i.severity,
    rule: i.rule,
    repository: i.repository,
    subject: i.subject,
    message: i.message,
    title: m.title,
    host: m.host,
    incidentId: i.id,
    openedAt: new Date(i.openedAt).toISOString(),
    closedAt: i.closedAt === null ? null : new Date(i.closedAt).toISOString(),
    details: i.details ?? {},
    source: "strongbox",
  };
}

export function webhookChannel(s: WebhookSettings, name = "webhook"): AlertChannel {
  return {
    name,
    async send(m, signal) {
      const timeout = AbortSignal.timeout(s.timeoutMs);
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "user-agent": "strongbox-alerts",
      };
      if (s.token) headers.authorization = `Bearer ${s.token}`;
      let res: Response;
      try {
        res = await fetch(s.url, {
          method: "POST",
          headers,
          body: JSON.stringify(webhookPayload(m)),
          signal: signal ? AbortSignal.any([signal, timeout]) : timeout,
          redirect: "error",
        });
      } catch (e) {
        throw new StrongboxError("ALERT_WEBHOOK", `webhook ${safeUrl(s.url)} unreachable: ${causeText(e)}`, {
          cause: e,
          stage: "alert",
        });
      }
      const body = (await res.text().catch(() => "")).slice(0, 200).replace(/\s+/g, " ");
      if (res.ok) return;
      const msg = `webhook ${safeUrl(s.url)} answered ${res.status}${body ? `: ${body}` : ""}`;
      // 408 and 429 say "later"; other 4xx say the request itself is wrong.
      if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
        throw new PermanentDeliveryError(msg);
      }
      throw new StrongboxError("ALERT_WEBHOOK", msg, { stage: "alert" });
    },
  };
}

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

export function emailBody(m: AlertMessage): string {
  const i = m.incident;
  const lines = [
    m.text,
    "",
    `rule:       ${i.rule}`,
    `repository: ${i.repository}`,
    `subject:    ${i.subject}`,
    `severity:   ${i.severity}`,
    `opened:     ${new Date(i.openedAt).toISOString()}`,
  ];
  if (i.closedAt !== null) lines.push(`resolved:   ${new Date(i.closedAt).toISOString()}`);
  lines.push(`host:       ${m.host}`, `incident:   ${i.id}`);
  for (const [k, v] of Object.entries(i.details ?? {})) {
    if (v !== null && v !== undefined) lines.push(`${`${k}:`.padEnd(12)}${String(v)}`);
  }
  lines.push("", "Run `strongbox status` on the backup host for the whole picture.", "");
  return lines.join("\n");
}

export function emailChannel(s: EmailSettings, name = "email"): AlertChannel {
  return {
    name,
    async send(m, signal) {
      if (signal?.aborted) throw signal.reason;
      // Loaded on the first alert: nodemailer is ~120 ms of start-up that a backup rarely needs.
      const { createTransport } = await import("nodemailer");
      const transport = createTransport({
        host: s.host,
        port: s.port,
        secure: s.secure,
        // A password never crosses the network in clear text; on the loopback interface it may.
        requireTLS: !s.secure && s.user !== undefined && !isLoopback(s.host),
        auth: s.user ? { user: s.user, pass: s.password ?? "" } : undefined,
        connectionTimeout: 15_000,
        greetingTimeout: 15_000,
        socketTimeout: 30_000,
      });
      try {
        await transport.sendMail({ from: s.from, to: s.to, subject: m.title, text: emailBody(m) });
      } catch (e) {
        const code = (e as { responseCode?: number }).responseCode;
        const msg = `SMTP ${s.host}:${s.port} refused the alert: ${causeText(e)}`;
        // 5xx replies (bad login, unknown recipient) are permanent; 4xx and network errors are not.
        if (code !== undefined && code >= 500) throw new PermanentDeliveryError(msg, e);
        throw new StrongboxError("ALERT_EMAIL", msg, { cause: e, stage: "alert" });
      } finally {
        // A fresh connection per message: alerts are rare, and no socket lingers in a CLI run.
        transport.close();
      }
    },
  };
}

function causeText(e: unknown): string {
  const err = e as { message?: string; cause?: { code?: string; message?: string } };
  const cause = err.cause?.code ?? err.cause?.message;
  return `${err.message ?? String(e)}${cause ? ` (${cause})` : ""}`.replace(/\s+/g, " ");
}

/** A URL without its query string and credentials: Slack hooks carry their secret in the path. */
function safeUrl(url: string): string {
  try {
    const u = new URL(url);
    const path = u.pathname.length > 12 ? `${u.pathname.slice(0, 12)}…` : u.pathname;
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return "(invalid URL)";
  }
}
