// copy: replicate backups to another repository (offsite). Parents before children, every part
// checked against the signed manifest on the way out and read back on arrival, the manifest last.
// An interrupted copy leaves no manifest; the next run re-uses the parts that arrived intact.
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { SigningKey } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { resolveChain } from "./chain.ts";
import { readPartChecked } from "./checked-read.ts";
import type { EvidenceWriter } from "./evidence.ts";
import { type Manifest, manifestDigest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { type BackupVerifier, type Distrusted, openEvidenceWriter } from "./trusted.ts";

export interface CopyResult {
  copied: string[];
  alreadyThere: string[];
  /** Not copied: untrusted in the source, or an untrusted manifest holds the id in the destination. */
  unverified: Distrusted[];
  parts: number;
  bytes: number;
}

const sink = () => new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });

async function arrivedIntact(to: Repository, m: Manifest, part: Manifest["parts"][number]): Promise<boolean> {
  const st = await to.storage.stat(part.key);
  if (!st || st.size !== part.size) return false;
  try {
    await pipeline(await readPartChecked(to, m, part, undefined, { verifyFirst: false }), sink());
    return true;
  } catch {
    return false;
  }
}

export async function copyBackups(o: {
  from: BackupVerifier;
  to: BackupVerifier;
  signing: SigningKey;
  id?: string;
  signal?: AbortSignal;
  log?: (m: string) => void;
}): Promise<CopyResult> {
  const from = o.from.repo;
  const to = o.to.repo;
  const toCommitted = (await to.scan()).committed;
  const toSet = await o.to.inventory(toCommitted);
  const there = new Set(toSet.backups.map((m) => m.id));
  const blocked = new Map(toSet.unverified.map((u) => [u.id, u]));
  const result: CopyResult = { copied: [], alreadyThere: [], unverified: [], parts: 0, bytes: 0 };
  let wanted: Manifest[];
  if (o.id) wanted = await resolveChain(from, o.id, o.from);
  else {
    // Only verified backups are copied; an untrusted one is reported and stays where it is.
    const set = await o.from.inventory();
    result.unverified.push(...set.unverified);
    wanted = set.backups.filter((m) => !there.has(m.id));
  }
  let evidence: EvidenceWriter | undefined;
  for (const m of wanted) {
    o.signal?.throwIfAborted();
    if (there.has(m.id)) {
      result.alreadyThere.push(m.id);
      continue;
    }
    const held = blocked.get(m.id);
    if (held) {
      result.unverified.push({ ...held, message: `in ${to.name}: ${held.message}` });
      continue;
    }
    if (m.parent && !there.has(m.parent)) {
      throw new StrongboxError(
        "CHAIN_BROKEN",
        `cannot copy ${m.id}: its parent ${m.parent} is not in ${to.name}`,
        {
          hint: `copy the parent first: strongbox copy --from ${from.name} --to ${to.name} ${m.parent}`,
        },
      );
    }
    for (const p of m.parts) {
      if (await arrivedIntact(to, m, p)) continue;
      // Streamed: the upload is read back and checked before the manifest is committed.
      await to.storage.put(p.key, await readPartChecked(from, m, p, o.signal, { verifyFirst: false }), {
        signal: o.signal,
        size: p.size,
      });
      if (!(await arrivedIntact(to, m, p))) {
        throw new StrongboxError(
          "COPY_CORRUPT",
          `part ${p.key} of ${m.id} does not match its SHA-256 after arriving in ${to.name}`,
          {
            hint: "check the destination storage; nothing was committed",
          },
        );
      }
      result.parts++;
      result.bytes += p.size;
    }
    evidence ??= await openEvidenceWriter(o.to, o.signing, { committed: toCommitted });
    await evidence.record("commit", [{ id: m.id, digest: manifestDigest(m) }], () => to.commit(m));
    there.add(m.id);
    result.copied.push(m.id);
    o.log?.(`copied ${m.id} (${m.parts.length} part(s)) to ${to.name}`);
  }
  return result;
}
