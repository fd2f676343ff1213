// Readers' trust in a repository: the signed repository record, the evidence log, and this host's
// memory of the newest evidence entry it saw (so a log cut back to an older entry is noticed).
import { mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { stateDirOf, trustedKeysOf } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { entryDigest, evidenceKey, readEvidenceEntry } from "../repository/evidence.ts";
import type { Repository } from "../repository/repository.ts";
import { BackupVerifier } from "../repository/trusted.ts";

interface Watermark {
  seq: number;
  sha256: string;
}

/**
 * Checks the evidence log against the newest entry this host saw before (kept in stateDir): a log
 * that ends before it, or holds another entry there, was rolled back. Then remembers the new tail.
 */
async function checkWatermark(stateDir: string, v: BackupVerifier): Promise<void> {
  const file = join(stateDir, `evidence-${v.repo.info.id}.json`);
  const tail = v.evidence.tail;
  let seen: Watermark | undefined;
  try {
    seen = JSON.parse(await readFile(file, "utf8")) as Watermark;
  } catch {
    seen = undefined;
  }
  if (seen && (!tail || tail.seq < seen.seq)) {
    v.evidence.problems.push(
      `the evidence log was rolled back: this host saw entry ${seen.seq}, the log now ends at ${tail?.seq ?? "nothing"}`,
    );
    return;
  }
  if (seen && tail) {
    const there = tail.seq === seen.seq ? tail : await readEvidenceEntry(v.repo, seen.seq);
    if (typeof there === "string" || entryDigest(there) !== seen.sha256) {
      v.evidence.problems.push(
        `the evidence log was rewritten: ${evidenceKey(seen.seq)} is not the entry this host saw`,
      );
      return;
    }
  }
  if (!tail || (seen && seen.seq === tail.seq)) return;
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, JSON.stringify({ seq: tail.seq, sha256: entryDigest(tail) }), { mode: 0o600 });
  await rename(tmp, file);
}

/**
 * The trusted keys, the repository record checked against them, and a verifier with the evidence
 * log read (`full`: the whole chain, for verify and status) and compared with this host's memory.
 */
export async function verifierFor(
  loaded: LoadedConfig,
  repo: Repository,
  o: { full?: boolean; keys?: readonly string[] } = {},
): Promise<BackupVerifier> {
  const keys = o.keys ?? (await trustedKeysOf(loaded));
  repo.verifyInfo(keys);
  const v = await BackupVerifier.load(repo, keys, { full: o.full });
  await checkWatermark(stateDirOf(loaded), v).catch(() => {});
  return v;
}
