// Reading a backup back: every part fetched in order through the repository's checked read,
// decrypted, and the plaintexts concatenated into the compressed stream.
import { Readable } from "node:stream";
import { createDecryptStream } from "../crypto/age.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import { checkedFailure, partError, readPartChecked } from "../repository/checked-read.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";

/**
 * Where a restore gets a backup's decrypted, still compressed stream: from the repository here
 * (repositorySource), or, on a node's agent, from the frames the backup host sends.
 */
export type PlaintextSource = (m: Manifest, signal?: AbortSignal) => Readable;

/** The backups of a repository, read through the checked read and decrypted with `identities`. */
export function repositorySource(repo: Repository, identities: AgeIdentity[]): PlaintextSource {
  return (m, signal) => backupPlaintext(repo, m, identities, signal ? { signal } : {});
}

/** The decrypted (still compressed) stream of a backup: its parts in order. */
export function backupPlaintext(
  repo: Repository,
  m: Manifest,
  identities: AgeIdentity[],
  options: { signal?: AbortSignal; onPart?: (part: PartRecord) => void } = {},
): Readable {
  async function* gen() {
    for (const part of m.parts) {
      options.signal?.throwIfAborted();
      const stored = await readPartChecked(repo, m, part, options.signal);
      const dec = createDecryptStream(identities);
      stored.on("error", (e) => dec.destroy(e));
      stored.pipe(dec);
      try {
        for await (const chunk of dec) yield chunk as Buffer;
      } catch (e) {
        stored.unpipe(dec);
        const error = await checkedFailure(stored, e);
        stored.destroy();
        throw partError(m, part, error);
      }
      options.onPart?.(part);
    }
  }
  // Object mode hands each decrypted chunk on as it is; a byte-mode stream would concatenate
  // whatever is buffered into a new Buffer on every read (a copy of the whole backup).
  return Readable.from(gen(), { objectMode: true, highWaterMark: 16 });
}
