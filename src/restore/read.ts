// Reading a backup back: every part fetched in order through the repository's checked read,
// decrypted, and the plaintexts concatenated into the compressed stream.
import { Readable } from "node:stream";
import { createDecryptStream } from "../crypto/age.ts";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import { nativeOpener, openInto } from "../pipeline/open.ts";
import type { PartRecord } from "../pipeline/parts.ts";
import { openPartChecked, partError, readPartChecked } from "../repository/checked-read.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";

/**
 * Where a restore gets a backup's decrypted, still compressed stream: from the repository here
 * (repositorySource), or, on a node's agent, from the frames the backup host sends.
 */
export interface PlaintextSource {
  (m: Manifest, signal?: AbortSignal): Readable;
  /**
   * The same plaintext written straight into a file descriptor (a blocking pipe to zstd) instead
   * of through this process; resolves once all of it is written. Only where it can be done so.
   */
  into?: ((m: Manifest, fd: number, signal?: AbortSignal) => Promise<void>) | undefined;
}

/**
 * The backups of a repository, read through the checked read and decrypted with `identities`:
 * by the native opener where it is built (`into`), else in this process.
 */
export function repositorySource(repo: Repository, identities: AgeIdentity[]): PlaintextSource {
  const source: PlaintextSource = (m, signal) =>
    backupPlaintext(repo, m, identities, signal ? { signal } : {});
  const opener = nativeOpener();
  if (opener)
    source.into = (m, fd, signal) =>
      backupPlaintextInto(repo, m, identities, { opener, fd, ...(signal ? { signal } : {}) });
  return source;
}

/**
 * backupPlaintext, decrypted by the native opener into `fd`: each part checked against the signed
 * manifest (size and SHA-256) before the opener reads any of it, the next part checked while the
 * current one is decrypted.
 */
export async function backupPlaintextInto(
  repo: Repository,
  m: Manifest,
  identities: AgeIdentity[],
  o: {
    opener: string;
    fd: number;
    signal?: AbortSignal;
    onPart?: (part: PartRecord) => void;
    tempDir?: string;
  },
): Promise<void> {
  const fetch = (part: PartRecord) =>
    openPartChecked(repo, m, part, { signal: o.signal, tempDir: o.tempDir });
  let next = m.parts[0] ? fetch(m.parts[0]) : undefined;
  try {
    for (const [i, part] of m.parts.entries()) {
      o.signal?.throwIfAborted();
      const file = await next!;
      next = m.parts[i + 1] ? fetch(m.parts[i + 1]!) : undefined;
      // A failed prefetch is reported when its turn comes (or not at all, after a failure here).
      next?.catch(() => {});
      try {
        await openInto({
          opener: o.opener,
          file,
          size: part.size,
          identities,
          outFd: o.fd,
          signal: o.signal,
        });
      } catch (e) {
        throw partError(m, part, e);
      } finally {
        await file.close().catch(() => {});
      }
      o.onPart?.(part);
    }
  } finally {
    // Stopped early: the prefetched part's file is closed.
    if (next) await (await next.catch(() => undefined))?.close().catch(() => {});
  }
}

/**
 * The decrypted (still compressed) stream of a backup: its parts in order. Each part is fetched
 * and checked against the signed manifest (size and SHA-256) before any of its bytes is decrypted:
 * a forged part never reaches the decompressor or the target. The next part is fetched while the
 * current one is decrypted, so at most two parts are spooled at a time.
 */
export function backupPlaintext(
  repo: Repository,
  m: Manifest,
  identities: AgeIdentity[],
  options: { signal?: AbortSignal; onPart?: (part: PartRecord) => void; tempDir?: string } = {},
): Readable {
  const fetch = (part: PartRecord) =>
    readPartChecked(repo, m, part, options.signal, { verifyFirst: true, tempDir: options.tempDir });
  async function* gen() {
    let next = m.parts[0] ? fetch(m.parts[0]) : undefined;
    try {
      for (const [i, part] of m.parts.entries()) {
        options.signal?.throwIfAborted();
        const stored = await next!;
        next = m.parts[i + 1] ? fetch(m.parts[i + 1]!) : undefined;
        // A failed prefetch is reported when its turn comes (or not at all, after a failure here).
        next?.catch(() => {});
        const dec = createDecryptStream(identities);
        stored.on("error", (e) => dec.destroy(e));
        stored.pipe(dec);
        try {
          for await (const chunk of dec) yield chunk as Buffer;
        } catch (e) {
          stored.destroy();
          throw partError(m, part, e);
        }
        options.onPart?.(part);
      }
    } finally {
      // Stopped early: the prefetched part's spool is closed (its file is already unlinked).
      if (next) (await next.catch(() => undefined))?.destroy();
    }
  }
  // Object mode hands each decrypted chunk on as it is; a byte-mode stream would concatenate
  // whatever is buffered into a new Buffer on every read (a copy of the whole backup).
  return Readable.from(gen(), { objectMode: true, highWaterMark: 16 });
}
