// backup pin ID / backup unpin ID / forget ID: keeping one backup for good, and removing one by
// hand with the chain rule. Each runs under the repository's writer lock, so a prune never sees
// half of it.
import { signingKeyOf, trustedKeysOf } from "../config/context.ts";
import { loadConfig } from "../config/load.ts";
import { forgetBackup } from "../repository/forget.ts";
import { pinBackup, unpinBackup } from "../repository/pins.ts";
import { asWriter } from "../repository/writer.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { parseDuration } from "../util/duration.ts";
import { openRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

async function underLock<T>(
  g: GlobalOptions,
  repoName: string | undefined,
  command: string,
  work: (o: Awaited<ReturnType<typeof open>>) => Promise<T>,
): Promise<T> {
  const opened = await open(g, repoName);
  try {
    return await asWriter(
      opened.repo,
      { command, ttlMs: parseDuration(opened.loaded.config.backup.lockTtl) },
      () => work(opened),
    );
  } finally {
    await opened.repo.storage.close();
  }
}

async function open(g: GlobalOptions, repoName: string | undefined) {
  const loaded = await loadConfig(g.config);
  const key = await signingKeyOf(loaded);
  const repo = await openRepository(loaded, repoName, { trusted: await trustedKeysOf(loaded) });
  return { loaded, key, repo };
}

export async function pin(
  g: GlobalOptions,
  o: { id: string; repo?: string; note?: string },
  out: Output,
): Promise<CommandResult> {
  return underLock(g, o.repo, `backup pin ${o.id}`, async ({ repo, key }) => {
    const added = await pinBackup(repo, o.id, key, o.note ?? "");
    return reply(out, { repository: repo.name, id: o.id, pinned: true, changed: added }, () =>
      added
        ? `pinned ${o.id} in ${repo.name}: prune keeps it (and its chain) until strongbox backup unpin ${o.id}`
        : `${o.id} in ${repo.name} was already pinned`,
    );
  });
}

export async function unpin(
  g: GlobalOptions,
  o: { id: string; repo?: string },
  out: Output,
): Promise<CommandResult> {
  return underLock(g, o.repo, `backup unpin ${o.id}`, async ({ repo }) => {
    const removed = await unpinBackup(repo, o.id);
    return reply(out, { repository: repo.name, id: o.id, pinned: false, changed: removed }, () =>
      removed
        ? `unpinned ${o.id} in ${repo.name}: the retention policy decides about it again`
        : `${o.id} in ${repo.name} was not pinned`,
    );
  });
}

export async function forget(
  g: GlobalOptions,
  o: { id: string; repo?: string; withDependents?: boolean; dryRun?: boolean },
  out: Output,
): Promise<CommandResult> {
  return underLock(g, o.repo, `forget ${o.id}`, async ({ loaded, repo, key }) => {
    const r = await forgetBackup({
      repo,
      id: o.id,
      withDependents: o.withDependents ?? false,
      trustedPublicKey: key.publicKey,
      verifier: await verifierFor(loaded, repo),
      signing: key,
      dryRun: o.dryRun ?? false,
    });
    return reply(out, { repository: repo.name, ...r }, () =>
      [
        ...r.removed.map((id) => `${r.dryRun ? "would remove" : "removed"} ${id}`),
        r.dryRun
          ? `${repo.name}: ${r.removed.length} backup(s) to remove (dry run: nothing deleted)`
          : `${repo.name}: ${r.removed.length} backup(s) removed, ${r.objectsDeleted} object(s) deleted`,
      ].join("\n"),
    );
  });
}
