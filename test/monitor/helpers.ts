// Shared pieces of the monitor tests: a movable clock, a temporary catalog, seeded runs.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ruleSettings } from "../../src/config/monitoring.ts";
import { type Catalog, openCatalog } from "../../src/monitor/catalog.ts";
import type { FinishedResult, Run, RunMeta } from "../../src/monitor/catalog-types.ts";
import type { RuleSettings } from "../../src/monitor/settings.ts";

export const HOUR = 3_600_000;
export const DAY = 24 * HOUR;

export class Clock {
  t: number;
  constructor(start = Date.parse("2025-03-01T00:00:00Z")) {
    this.t = start;
  }
  readonly now = (): number => this.t;
  advance(ms: number): void {
    this.t += ms;
  }
}

export async function tempDir(
  prefix = "strongbox-monitor-",
): Promise<{ dir: string; cleanup: () => Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), prefix));
  return { dir, cleanup: () => rm(dir, { recursive: true, force: true }) };
}

export async function tempCatalog(
  clock?: Clock,
): Promise<{ catalog: Catalog; dir: string; cleanup: () => Promise<void> }> {
  const t = await tempDir();
  const catalog = openCatalog(join(t.dir, "state", "catalog.db"), clock ? { now: clock.now } : {});
  return {
    catalog,
    dir: t.dir,
    cleanup: async () => {
      catalog.close();
      await t.cleanup();
    },
  };
}

export interface SeedOptions {
  durationMs?: number;
  result?: FinishedResult;
  bytes?: number;
  error?: string;
  /** Clock time to pass after the run ends. */
  thenMs?: number;
}

/** Records a finished run that starts at the clock's time and lasts durationMs. */
export function seedRun(catalog: Catalog, clock: Clock, meta: RunMeta, o: SeedOptions = {}): Run {
  const id = catalog.startRun(meta);
  clock.advance(o.durationMs ?? 60_000);
  const run = catalog.finishRun(id, {
    result: o.result ?? "ok",
    bytes: o.bytes,
    error: o.error ?? (o.result && o.result !== "ok" ? `${meta.command} went wrong` : undefined),
  });
  clock.advance(o.thenMs ?? 0);
  return run;
}

/** The default rules with overrides, e.g. a long-run rule without the 30 s floor for short test runs. */
export function rulesWith(overrides: Partial<RuleSettings> = {}): RuleSettings {
  return { ...ruleSettings(), ...overrides };
}
