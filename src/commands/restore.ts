// restore ID --target-dir D [--force] [--no-prepare] | restore ID --into-node NAME (logical)
import type { GlobalOptions } from "../cli/args.ts";
import { emit, note } from "../cli/output.ts";
import { interruptible } from "../cli/signals.ts";
import { clusterNodes, clusterTls, credentialsFor, identitiesOf } from "../config/context.ts";
import { UsageError } from "../errors.ts";
import { resolveChain } from "../restore/chain.ts";
import { loadLogical } from "../restore/logical.ts";
import { nextSteps, restorePhysical } from "../restore/restore.ts";
import { openConfiguredRepository, trustedPublicKey } from "./repo.ts";

export async function restore(
  g: GlobalOptions,
  o: {
    id: string;
    targetDir?: string;
    intoNode?: string;
    force?: boolean;
    prepare?: boolean;
    identity?: string;
    repo?: string;
  },
): Promise<void> {
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  const abort = interruptible((sig) => `restore aborted by ${sig}`);
  try {
    const chain = await resolveChain(repo, o.id, await trustedPublicKey(loaded));
    const target = chain[chain.length - 1]!;
    const identities = await identitiesOf(loaded, o.identity);
    const log = (m: string) => (g.json ? undefined : note(m));
    if (target.type === "logical") {
      if (!o.intoNode) {
        throw new UsageError(`backup ${o.id} is a logical dump: load it into a server with --into-node NAME`);
      }
      const node = clusterNodes(loaded).find((n) => n.name === o.intoNode);
      if (!node) throw new UsageError(`no node named "${o.intoNode}" in the configuration`);
      const admin = await credentialsFor(loaded, "admin");
      if (!admin) throw new UsageError("loading a logical backup needs cluster.credentials.admin");
      const r = await loadLogical({
        repo,
        manifest: target,
        identities,
        node,
        creds: admin,
        tls: clusterTls(loaded),
        signal: abort.signal,
      });
      emit(
        g,
        { id: target.id, node: node.name, ...r },
        () => `logical backup ${target.id} loaded into ${node.name} in ${r.seconds.toFixed(1)} s`,
      );
      return;
    }
    if (!o.targetDir) throw new UsageError("restore of a physical backup needs --target-dir DIR");
    const r = await restorePhysical({
      repo,
      chain,
      identities,
      targetDir: o.targetDir,
      force: o.force,
      prepare: o.prepare,
      mariabackupPath: loaded.config.backup.mariabackupPath,
      signal: abort.signal,
      log,
    });
    emit(g, r, () =>
      [
        `restored ${r.backups.join(" + ")} into ${r.targetDir} in ${r.timings.total?.toFixed(1)} s${o.prepare === false ? " (not prepared)" : " (prepared)"}`,
        ...nextSteps(r),
      ].join("\n"),
    );
  } finally {
    abort.dispose();
    await close();
  }
}
