// check, the host half: keys, a round trip through every repository, and a test message through
// every alert channel. Each item catches its own failure: check reports, it does not stop.
import { randomBytes } from "node:crypto";
import { recipientsOf, signingKeyOf } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { errorMessage } from "../errors.ts";
import { sendTestAlert } from "../monitor/monitor.ts";
import { readAll } from "../util/stream.ts";
import { openRepository } from "./repo.ts";

export type CheckStatus = "ok" | "warn" | "fail" | "skip";

export interface CheckItem {
  /** What was checked: "node db1", "repository offsite". */
  item: string;
  status: CheckStatus;
  detail: string;
  hint?: string;
}

const RANK: Record<CheckStatus, number> = { ok: 0, skip: 0, warn: 1, fail: 2 };

/** 0 when everything passed (or was skipped), 1 for a warning, 2 for a failure. */
export function checkExitCode(items: readonly CheckItem[]): 0 | 1 | 2 {
  return Math.max(0, ...items.map((i) => RANK[i.status])) as 0 | 1 | 2;
}

export async function checkKeys(loaded: LoadedConfig): Promise<{ items: CheckItem[]; trusted?: string }> {
  const items: CheckItem[] = [];
  let trusted: string | undefined;
  try {
    trusted = (await signingKeyOf(loaded)).publicKey;
    items.push({
      item: "signing key",
      status: "ok",
      detail: `${loaded.config.keys.signingKey} (${trusted})`,
    });
  } catch (e) {
    items.push({
      item: "signing key",
      status: "fail",
      detail: errorMessage(e),
      hint: "strongbox init creates it",
    });
  }
  try {
    const r = await recipientsOf(loaded);
    items.push({
      item: "recipients",
      status: "ok",
      detail: r.passphrase ? "a passphrase (scrypt)" : `${r.names.length} age recipient(s)`,
    });
  } catch (e) {
    items.push({ item: "recipients", status: "fail", detail: errorMessage(e) });
  }
  if (loaded.config.keys.identity) {
    items.push({
      item: "identity",
      status: "warn",
      detail: `keys.identity is set: this host can decrypt its backups`,
      hint: "keep the age identity off the backup host; give restores --identity",
    });
  }
  return { items, ...(trusted ? { trusted } : {}) };
}

/**
 * Writes a small object, reads it back, compares and deletes it. An append-only repository is
 * only read: what this wrote could not be removed.
 */
export async function checkRepositories(
  loaded: LoadedConfig,
  trusted: string | undefined,
): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  for (const rc of loaded.config.repositories) {
    const item = `repository ${rc.name}`;
    const started = performance.now();
    try {
      const repo = await openRepository(loaded, rc.name, trusted ? { trusted } : {});
      try {
        const { committed } = await repo.scan();
        const seen = `${committed.length} backup(s), signed config verified`;
        // Append-only: the object could not be removed; Object Lock: its version would stay locked.
        const locked = rc.storage.type === "s3" && rc.storage.objectLock !== undefined;
        if (rc.appendOnly || locked) {
          const why = rc.appendOnly ? "append-only" : "under Object Lock";
          items.push({ item, status: "ok", detail: `${seen}; ${why}, so no test object was written` });
          continue;
        }
        const key = `check/${randomBytes(8).toString("hex")}.probe`;
        const body = randomBytes(1024);
        await repo.storage.put(key, body, { ifAbsent: true });
        try {
          const back = await readAll(await repo.storage.get(key));
          if (!back.equals(body)) throw new Error("the object read back differs from the one written");
        } finally {
          await repo.storage.delete(key);
        }
        const ms = Math.round(performance.now() - started);
        items.push({
          item,
          status: "ok",
          detail: `${seen}; wrote, read back and deleted a test object (${ms} ms)`,
        });
      } finally {
        await repo.storage.close();
      }
    } catch (e) {
      items.push({
        item,
        status: "fail",
        detail: errorMessage(e),
        hint: "strongbox init creates a repository; strongbox audit checks its settings",
      });
    }
  }
  return items;
}

export async function checkAlerts(loaded: LoadedConfig): Promise<CheckItem[]> {
  const alerts = loaded.config.monitoring?.alerts;
  if (!alerts?.webhook && !alerts?.email) {
    return [
      {
        item: "alerts",
        status: "warn",
        detail: "no alert channel: failures and stale backups reach nobody",
        hint: "configure monitoring.alerts.webhook or monitoring.alerts.email",
      },
    ];
  }
  try {
    const deliveries = await sendTestAlert(monitorSettingsOf(loaded));
    return deliveries.map((d) =>
      d.ok
        ? { item: `alerts ${d.channel}`, status: "ok", detail: "test message delivered" }
        : {
            item: `alerts ${d.channel}`,
            status: "fail",
            detail: `test message not delivered after ${d.attempts} attempt(s): ${d.error ?? "?"}`,
          },
    );
  } catch (e) {
    return [{ item: "alerts", status: "fail", detail: errorMessage(e) }];
  }
}
