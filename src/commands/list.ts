// list and show: what is in the repository. show decrypts the details when an identity is at hand.

import { readArchiveState } from "../binlog/state.ts";
import { identitiesOf } from "../config/context.ts";
import { decryptBuffer } from "../crypto/age.ts";
import { pitrLine } from "../monitor/health.ts";
import type { ManifestDetails } from "../repository/manifest.ts";
import { pinnedIds } from "../repository/pins.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { table } from "../terminal/table.ts";
import { formatBytes } from "../util/size.ts";
import { openConfiguredRepository } from "./repo.ts";
import { verifierFor } from "./trust.ts";

export async function list(g: GlobalOptions, o: { repo?: string }, out: Output): Promise<CommandResult> {
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  try {
    // Only verified manifests are listed as backups; no field of another one is shown.
    const verifier = await verifierFor(loaded, repo);
    const [set, pinned] = await Promise.all([verifier.inventory(), pinnedIds(repo)]);
    // Where the repository archives binlogs: the recoverable window, from verified backups only.
    const pointInTime = (await readArchiveState(repo, verifier.keys, set.backups))?.state ?? null;
    const rows = set.backups.map((m) => ({
      id: m.id,
      type: m.type,
      parent: m.parent,
      donor: m.donor,
      startedAt: m.startedAt,
      seconds: m.durations.total ?? null,
      rawBytes: m.bytes.raw,
      storedBytes: m.bytes.stored,
      parts: m.parts.length,
      gtid: m.gtid,
      pinned: pinned.has(m.id),
    }));
    const distrusted = [
      ...set.unverified.map((u) => ({ ...u, state: "UNVERIFIED" })),
      ...set.missing.map((u) => ({ ...u, state: "MISSING" })),
    ].sort((a, b) => (a.id < b.id ? -1 : 1));
    const result = {
      repository: repo.name,
      backups: rows,
      pointInTime,
      unverified: set.unverified,
      missing: set.missing,
      evidenceProblems: set.evidence.problems,
    };
    return reply(out, result, () => {
      const lines =
        rows.length === 0
          ? [`repository ${repo.name}: no backups yet`]
          : [
              table([
                ["id", "type", "parent", "node", "started", "raw", "stored", "parts", "gtid", "pinned"],
                ...rows.map((r) => [
                  r.id,
                  r.type,
                  r.parent ?? "-",
                  r.donor,
                  r.startedAt.replace(/\.\d+Z$/, "Z"),
                  formatBytes(r.rawBytes),
                  formatBytes(r.storedBytes),
                  String(r.parts),
                  r.gtid ?? "-",
                  r.pinned ? "pinned" : "",
                ]),
              ]),
            ];
      if (pointInTime)
        lines.push(
          pitrLine({
            ...pointInTime,
            lagSeconds: null,
            openGaps: pointInTime.window ? [] : pointInTime.gaps,
          }),
        );
      for (const d of distrusted) lines.push(`${d.state.padEnd(10)} ${d.id}  ${d.message}`);
      for (const p of set.evidence.problems) lines.push(`EVIDENCE   ${p}`);
      if (distrusted.length > 0) {
        lines.push(
          `${distrusted.length} object(s) not trusted: not used by any command, left in place; run strongbox verify`,
        );
      }
      return lines.join("\n");
    });
  } finally {
    await close();
  }
}

export async function show(
  g: GlobalOptions,
  o: { id: string; repo?: string; identity?: string },
  out: Output,
): Promise<CommandResult> {
  const { loaded, repo, close } = await openConfiguredRepository(g.config, o.repo);
  try {
    const m = await (await verifierFor(loaded, repo)).get(o.id);
    let details: ManifestDetails | undefined;
    let detailsNote = "encrypted (pass --identity to read host names and the inventory)";
    const haveIdentity = o.identity ?? loaded.config.keys.identity ?? loaded.config.keys.passphraseFile;
    if (haveIdentity) {
      const ids = await identitiesOf(loaded, o.identity);
      details = JSON.parse(
        (await decryptBuffer(Buffer.from(m.details, "base64"), ids)).toString("utf8"),
      ) as ManifestDetails;
      detailsNote = "decrypted";
    }
    const { details: _sealed, ...publicPart } = m;
    return reply(out, { ...publicPart, details: details ?? null }, () => {
      const lines = [
        `backup ${m.id} (${m.type}${m.parent ? `, parent ${m.parent}` : ""}, chain ${m.chainRoot})`,
        `  signature: valid (${m.signature?.publicKey}); the version the evidence log records`,
        `  cluster ${m.cluster.name} ${m.cluster.uuid ?? "-"}:${m.cluster.seqno ?? "-"} (size ${m.cluster.size}), donor ${m.donor}, ${m.serverVersion ?? ""}`,
        `  GTID ${m.gtid ?? "-"}, binlog ${m.binlog ? `${m.binlog.file}:${m.binlog.position}` : "-"}${m.lsn ? `, LSN ${m.lsn.from}..${m.lsn.to}` : ""}`,
        `  ${m.startedAt} → ${m.finishedAt}; stages: ${Object.entries(m.durations)
          .map(([k, v]) => `${k} ${v}s`)
          .join(", ")}`,
        `  bytes: raw ${formatBytes(m.bytes.raw)}, compressed ${formatBytes(m.bytes.compressed)}, stored ${formatBytes(m.bytes.stored)}`,
        `  encrypted to: ${m.encryption.recipients.join(", ")}`,
        `  parts: ${m.parts.length}`,
        ...m.parts.map((p) => `    ${p.key}  ${formatBytes(p.size)}  sha256 ${p.sha256}`),
        `  details: ${detailsNote}`,
      ];
      if (details) {
        lines.push(`    donor host ${details.donorHost}:${details.donorPort}`);
        lines.push(
          `    ${details.inventory.schemas.length} schema(s), ${details.inventory.tables.length} table(s), ${details.inventory.routines} routine(s), ${details.inventory.triggers} trigger(s), ${details.inventory.events} event(s)`,
        );
        for (const t of details.inventory.tables) {
          lines.push(`      ${t.schema}.${t.table} ${t.engine ?? t.type} ${t.rows ?? ""}`);
        }
      }
      return lines.join("\n");
    });
  } finally {
    await close();
  }
}
