// copy: replicate backups to another repository (offsite). Parents before children, every part
// checked against the signed manifest on the way out and read back on arrival, the manifest last.
// An interrupted copy leaves no manifest; the next run re-uses the parts that arrived intact.
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import { StrongboxError } from "../errors.ts";
import { resolveChain } from "./chain.ts";
import { readPartChecked } from "./checked-read.ts";
import { type Manifest, verifyManifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";

export interface CopyResult {
  copied: string[];
  alreadyThere: string[];
  parts: number;
  bytes: number;
}

const sink = () => new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });

async function arrivedIntact(to: Repository, m: Manifest, part: Manifest["parts"][number]): Promise<boolean> {
  const st = await to.storage.stat(part.key);
  if (!st || st.size !== part.size) return false;
  try {
    await pipeline(await readPartChecked(to, m, part), sink());
    return true;
  } catch {
    return false;
  }
}

export async function copyBackups(o: {
  from: Repository;
  to: Repository;
  id?: string;
  trustedPublicKey: string;
  signal?: AbortSignal;
  log?: (m: string) => void;
}): Promise<CopyResult> {
  const there = new Set((await o.to.scan()).committed);
  let wanted: Manifest[];
  if (o.id) wanted = await resolveChain(o.from, o.id, o.trustedPublicKey);
  else {
    wanted = [];
    for (const id of (await o.from.scan()).committed) {
      if (!there.has(id)) wanted.push(await o.from.get(id));
    }
  }
  const result: CopyResult = { copied: [], alreadyThere: [], parts: 0, bytes: 0 };
  for (const m of wanted) {
    o.signal?.throwIfAborted();
    if (there.has(m.id)) {
      result.alreadyThere.push(m.id);
      continue;
    }
    verifyManifest(m, o.trustedPublicKey);
    if (m.parent && !there.has(m.parent)) {
      throw new StrongboxError(
        "CHAIN_BROKEN",
        `cannot copy ${m.id}: its parent ${m.parent} is not in ${o.to.name}`,
        {
          hint: `copy the parent first: strongbox copy --from ${o.from.name} --to ${o.to.name} ${m.parent}`,
        },
      );
    }
    for (const p of m.parts) {
      if (await arrivedIntact(o.to, m, p)) continue;
      await o.to.storage.put(p.key, await readPartChecked(o.from, m, p, o.signal), { signal: o.signal });
      if (!(await arrivedIntact(o.to, m, p))) {
        throw new StrongboxError(
          "COPY_CORRUPT",
          `part ${p.key} of ${m.id} does not match its SHA-256 after arriving in ${o.to.name}`,
          {
            hint: "check the destination storage; nothing was committed",
          },
        );
      }
      result.parts++;
      result.bytes += p.size;
    }
    await o.to.commit(m);
    there.add(m.id);
    result.copied.push(m.id);
    o.log?.(`copied ${m.id} (${m.parts.length} part(s)) to ${o.to.name}`);
  }
  return result;
}
