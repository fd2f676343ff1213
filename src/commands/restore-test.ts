// restore-test [ID]: prove a backup by restoring it for real and checking the result.

import { chooseBackupFor } from "../binlog/plan.ts";
import { identitiesOf, stateDirOf } from "../config/context.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { decryptBuffer } from "../crypto/age.ts";
import { restoreTestOnNode } from "../drill/on-node.ts";
import { restoreTest } from "../drill/restore-test.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { resolveChain } from "../repository/chain.ts";
import type { ManifestDetails } from "../repository/manifest.ts";
import { repositorySource } from "../restore/read.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import type { Output } from "../terminal/output.ts";
import { interruptible } from "../terminal/signals.ts";
import { agentNode } from "./nodes.ts";
import { openConfiguredRepository } from "./repo.ts";
import { pointTarget } from "./restore.ts";
import { verifierFor } from "./trust.ts";

export async function restoreTestCommand(
  g: GlobalOptions,
  o: { id?: string; identity?: string; repo?: string; toTime?: string; toGtid?: string; on?: string },
  out: Output,
): Promise<CommandResult> {
  const { toTime, toGtid } = pointTarget(o);
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `restore-test aborted by ${sig}; scratch server stopped`);
  try {
    return await runMonitored(
      monitorSettingsOf(loaded),
      { command: "restore-test", repository: repo.name },
      async (run) => {
        const verifier = await verifierFor(loaded, repo);
        const key = verifier.keys;
        const point = toTime || toGtid ? { toTime, toGtid } : undefined;
        const onName = o.on ?? loaded.config.restoreTest.on;
        const on = onName ? agentNode(loaded, onName, o.on ? "--on" : "restoreTest.on") : undefined;
        if (on && point)
          throw new UsageError("--on does not replay binlogs yet: run restore-test --to-time on this host");
        // Only verified backups are candidates: the newest one, or the one before the point in time.
        const verified = o.id ? [] : (await verifier.inventory()).backups;
        let id = o.id ?? (point ? chooseBackupFor(verified, point).id : undefined);
        if (!id) {
          id = verified.at(-1)?.id;
          if (!id)
            throw new StrongboxError("NO_BACKUPS", `repository ${repo.name} has no backups to test`, {
              hint: "run: strongbox backup",
            });
        }
        const chain = await resolveChain(repo, id, verifier);
        const identities = await identitiesOf(loaded, o.identity);
        const target = chain[chain.length - 1]!;
        const details = JSON.parse(
          (await decryptBuffer(Buffer.from(target.details, "base64"), identities)).toString("utf8"),
        ) as ManifestDetails;
        const cfg = loaded.config.restoreTest;
        const settings = {
          source: repositorySource(repo, identities),
          chain,
          details,
          mariabackupPath: loaded.config.backup.mariabackupPath,
          assertions: cfg.assertions,
          rowCountTolerance: { exact: cfg.rowCountTolerance, estimate: cfg.estimateTolerance },
          bufferPool: cfg.bufferPool,
          signal: abort.signal,
          log: (m: string) => out.log(m),
        };
        const r = on
          ? await restoreTestOnNode({ ...settings, node: on })
          : await restoreTest({
              ...settings,
              scratchRoot: cfg.scratchDir
                ? loaded.resolvePath(cfg.scratchDir)
                : `${stateDirOf(loaded)}/scratch`,
              ...(point ? { pointInTime: { ...point, trustedPublicKey: key, repo, identities } } : {}),
            });
        out.result(r, () =>
          [
            `restore-test of ${r.id} (${r.type}${r.chain.length > 1 ? `, chain of ${r.chain.length}` : ""}): ${r.passed ? "PASSED" : "FAILED"}`,
            `  time to restore (RTO): ${r.rtoSeconds === null ? "-" : `${r.rtoSeconds.toFixed(1)} s`}; ${r.tablesChecked} table(s) checked; total ${r.timings.total?.toFixed(1)} s`,
            `  steps: ${Object.entries(r.timings)
              .map(([k, v]) => `${k} ${v}s`)
              .join(", ")}`,
            ...r.problems.map((p) => `  problem (${p.check}): ${p.message}`),
          ].join("\n"),
        );
        run.kind = r.type;
        run.details = {
          backupId: r.id,
          ...(onName ? { on: onName } : {}),
          rtoSeconds: r.rtoSeconds,
          tablesChecked: r.tablesChecked,
          timings: r.timings,
        };
        if (!r.passed) {
          throw new StrongboxError(
            "RESTORE_TEST_FAILED",
            `restore-test of ${r.id} failed: ${r.problems[0]?.message ?? "unknown"}`,
            {
              details: { problems: r.problems },
            },
          );
        }
        return { exitCode: 0, result: r };
      },
    );
  } finally {
    abort.dispose();
    await close();
  }
}
