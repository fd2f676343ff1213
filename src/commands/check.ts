// check: the deployment end to end, one line per item (keys, nodes, grants, mariabackup against
// each server, binary log settings, agents, every repository's round trip, alert delivery). Exit
// 0 when all passed, 1 for a warning, 2 for a failure. Like pgBackRest's check: run it after
// installing, after changing the configuration, and from monitoring.
import { access, constants, mkdir } from "node:fs/promises";
import { stateDirOf } from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { errorMessage } from "../errors.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { type CheckItem, checkAlerts, checkExitCode, checkKeys, checkRepositories } from "./check-items.ts";
import { checkNodes } from "./check-nodes.ts";

export interface CheckOptions {
  /** commander's --no-alert sets this false: no test message. */
  alert?: boolean;
  /** commander's --no-connect sets this false: no node, agent or grant checks. */
  connect?: boolean;
}

const TAG = { ok: "OK  ", warn: "WARN", fail: "FAIL", skip: "SKIP" } as const;

export function renderCheck(items: readonly CheckItem[]): string {
  return items
    .map((i) => `${TAG[i.status]}  ${i.item}: ${i.detail}${i.hint ? ` (fix: ${i.hint})` : ""}`)
    .join("\n");
}

async function checkState(dir: string): Promise<CheckItem> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    await access(dir, constants.W_OK);
    return { item: "state directory", status: "ok", detail: `${dir} is writable` };
  } catch (e) {
    return {
      item: "state directory",
      status: "fail",
      detail: `${dir}: ${errorMessage(e)}`,
      hint: "set stateDir to a directory this account owns (the package uses /var/lib/strongbox)",
    };
  }
}

export async function check(g: GlobalOptions, o: CheckOptions, out: Output): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const items: CheckItem[] = [{ item: "config", status: "ok", detail: loaded.path }];
  items.push(await checkState(stateDirOf(loaded)));
  const keys = await checkKeys(loaded);
  items.push(...keys.items);
  if (o.connect ?? true) items.push(...(await checkNodes(loaded)));
  else items.push({ item: "nodes", status: "skip", detail: "--no-connect" });
  items.push(...(await checkRepositories(loaded, keys.trusted)));
  if (o.alert ?? true) items.push(...(await checkAlerts(loaded)));
  else items.push({ item: "alerts", status: "skip", detail: "--no-alert" });
  const exitCode = checkExitCode(items);
  const counts = { ok: 0, warn: 0, fail: 0, skip: 0 };
  for (const i of items) counts[i.status]++;
  const result = { config: loaded.path, items, counts, exitCode };
  out.result(result, () =>
    [
      renderCheck(items),
      `${counts.ok} ok, ${counts.warn} warning(s), ${counts.fail} failure(s)${counts.skip ? `, ${counts.skip} skipped` : ""} (exit ${exitCode})`,
    ].join("\n"),
  );
  return { exitCode, result };
}
