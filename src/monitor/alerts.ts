// Findings become incidents: a problem that appears opens one incident (and one alert per channel),
// stays quiet while it lasts however many runs fail, and sends one recovery notice when it is gone.
// The notifications are written to the catalog in the same transaction as the incident change (an
// outbox) and delivered afterwards, so a crash or a dead receiver delays an alert but never loses
// it, and two processes evaluating at once do not both alert.
import { hostname } from "node:os";
import { oneLineError } from "../util/redact.ts";
import type { Catalog } from "./catalog.ts";
import type { Incident, NotificationEvent } from "./catalog-types.ts";
import { type AlertChannel, type AlertMessage, emailChannel, webhookChannel, withRetry } from "./channels.ts";
import { type Finding, findingKey, humanDuration } from "./rules.ts";
import type { AlertSettings } from "./settings.ts";

const RULE_TITLES: Record<string, (subject: string) => string> = {
  "run-failed": (s) => `${s} failed`,
  "backup-too-old": () => "no recent backup",
  "verify-too-old": () => "no recent verify",
  "restore-test-too-old": () => "no recent restore-test",
  "copy-too-old": () => "no recent copy",
  "long-run": (s) => `${s} unusually long`,
  "size-anomaly": (s) => `${s} unusual size`,
  "binlog-lag": () => "binlog archive behind",
  "binlog-gap": () => "gap in the binlog archive",
  test: () => "test alert",
};

export function ruleTitle(rule: string, subject: string): string {
  return RULE_TITLES[rule]?.(subject) ?? `${rule} (${subject})`;
}

export function formatAlert(incident: Incident, event: NotificationEvent, host = hostname()): AlertMessage {
  const title = ruleTitle(incident.rule, incident.subject);
  const level = incident.severity.toUpperCase();
  if (event === "open") {
    return {
      event,
      incident,
      host,
      title: `[strongbox] ${level} ${incident.repository}: ${title}`,
      text: `${level} strongbox on ${host}: ${incident.message}`,
    };
  }
  const lasted = humanDuration((incident.closedAt ?? incident.lastSeenAt) - incident.openedAt);
  return {
    event,
    incident,
    host,
    title: `[strongbox] RESOLVED ${incident.repository}: ${title}`,
    text: `RESOLVED strongbox on ${host}: ${title} for repository "${incident.repository}" is healthy again after ${lasted}. It was: ${incident.message}`,
  };
}

export function channelsFrom(settings: AlertSettings): AlertChannel[] {
  const out: AlertChannel[] = [];
  if (settings.webhook) out.push(webhookChannel(settings.webhook));
  if (settings.email) out.push(emailChannel(settings.email));
  return out;
}

export interface IncidentChanges {
  opened: Incident[];
  resolved: Incident[];
  ongoing: Incident[];
}

/**
 * Brings the incident table in line with the current findings, in one write transaction, and
 * queues a notification per channel for each incident opened or resolved. The alert state is
 * judged per channel: an incident still open is announced to every channel that has not heard of
 * it yet (one added to the configuration since), and a recovery goes to those that heard of it. Only incidents of the
 * repositories in `scope` are closed: another process may judge other repositories.
 */
export function applyFindings(
  catalog: Catalog,
  findings: readonly Finding[],
  scope: readonly string[],
  channelNames: readonly string[],
): IncidentChanges {
  return catalog.transaction(() => {
    const changes: IncidentChanges = { opened: [], resolved: [], ongoing: [] };
    const seen = new Set<string>();
    for (const f of findings) {
      const key = findingKey(f);
      if (seen.has(key)) continue;
      seen.add(key);
      const open = catalog.openIncident(f);
      if (open) {
        catalog.touchIncident(open.id, { severity: f.severity, message: f.message, details: f.details });
        // A channel configured after the problem appeared is told about it now, once.
        const told = catalog.notifiedChannels(open.id, "open");
        for (const c of channelNames) if (!told.has(c)) catalog.enqueueNotification(open.id, "open", c);
        changes.ongoing.push(catalog.getIncident(open.id)!);
        continue;
      }
      const incident = catalog.insertIncident({ ...f });
      for (const c of channelNames) catalog.enqueueNotification(incident.id, "open", c);
      changes.opened.push(incident);
    }
    const inScope = new Set(scope);
    for (const i of catalog.openIncidents()) {
      if (!inScope.has(i.repository) || seen.has(findingKey(i))) continue;
      const closed = catalog.closeIncident(i.id);
      // Only a channel that was told of the problem hears that it is over.
      const told = catalog.notifiedChannels(i.id, "open");
      for (const c of channelNames) if (told.has(c)) catalog.enqueueNotification(i.id, "resolved", c);
      changes.resolved.push(closed);
    }
    return changes;
  });
}

export interface Delivery {
  notificationId: number;
  incidentId: number;
  event: NotificationEvent;
  channel: string;
  ok: boolean;
  attempts: number;
  error?: string;
}

export interface DeliveryOptions {
  attempts: number;
  backoffMs: number;
  signal?: AbortSignal | undefined;
  /** Failed notifications older than this are given up (default 24 h): a day-old alert is noise. */
  retryWindowMs?: number;
  /** A claim older than this is taken over: its process died while sending (default 10 min). */
  claimTimeoutMs?: number;
  host?: string;
}

/**
 * Sends every queued notification, each with retries and backoff. Failures are recorded in the
 * catalog (and retried by the next call); nothing here throws for a delivery problem.
 */
export async function deliverNotifications(
  catalog: Catalog,
  channels: readonly AlertChannel[],
  o: DeliveryOptions,
): Promise<Delivery[]> {
  const now = catalog.now();
  const staleBefore = now - (o.claimTimeoutMs ?? 600_000);
  const byName = new Map(channels.map((c) => [c.name, c]));
  const out: Delivery[] = [];
  for (const n of catalog.unsentNotifications(now - (o.retryWindowMs ?? 86_400_000), staleBefore)) {
    if (o.signal?.aborted) break;
    if (!catalog.claimNotification(n.id, staleBefore)) continue;
    const base = { notificationId: n.id, incidentId: n.incidentId, event: n.event, channel: n.channel };
    const channel = byName.get(n.channel);
    const incident = catalog.getIncident(n.incidentId);
    if (!channel || !incident) {
      const error = channel ? "the incident is gone" : `channel "${n.channel}" is no longer configured`;
      catalog.recordDelivery(n.id, { ok: false, attempts: 0, error });
      out.push({ ...base, ok: false, attempts: 0, error });
      continue;
    }
    const message = formatAlert(incident, n.event, o.host);
    const r = await withRetry(() => channel.send(message, o.signal), {
      attempts: o.attempts,
      backoffMs: o.backoffMs,
      signal: o.signal,
    });
    const error = r.ok ? undefined : oneLineError(r.error);
    catalog.recordDelivery(n.id, { ok: r.ok, attempts: r.attempts, ...(error ? { error } : {}) });
    out.push({ ...base, ok: r.ok, attempts: r.attempts, ...(error ? { error } : {}) });
  }
  return out;
}

export interface AlertReport extends IncidentChanges {
  deliveries: Delivery[];
}

export interface ProcessAlertsOptions extends DeliveryOptions {
  channels: readonly AlertChannel[];
  /** The repositories the findings cover. */
  scope: readonly string[];
}

/** applyFindings, then deliverNotifications. */
export async function processAlerts(
  catalog: Catalog,
  findings: readonly Finding[],
  o: ProcessAlertsOptions,
): Promise<AlertReport> {
  const changes = applyFindings(
    catalog,
    findings,
    o.scope,
    o.channels.map((c) => c.name),
  );
  const deliveries = await deliverNotifications(catalog, o.channels, o);
  return { ...changes, deliveries };
}
