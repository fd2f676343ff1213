// verify: the repository's promises checked without the private key (signatures, chains, every
// part's size and SHA-256) and, with it, the data itself (decrypt, decompress, parse to the end).
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AgeIdentity } from "../crypto/age-keys.ts";
import type { StrongboxError } from "../errors.ts";
import { resolveChain } from "../repository/chain.ts";
import { readPartChecked } from "../repository/checked-read.ts";
import type { Manifest } from "../repository/manifest.ts";
import type { Repository } from "../repository/repository.ts";
import { BackupVerifier } from "../repository/trusted.ts";
import { decodeBackup } from "./extract.ts";
import { repositorySource } from "./read.ts";

export interface BackupVerdict {
  id: string;
  type: string;
  ok: boolean;
  partsChecked: number;
  partsTotal: number;
  dataRead: boolean;
  problems: { code: string; message: string }[];
}

export interface VerifyOptions {
  repo: Repository;
  /** A loaded verifier (signatures and evidence log), or the trusted key(s) to load one with. */
  trust: BackupVerifier | string | readonly string[];
  ids: string[];
  identities?: AgeIdentity[];
  /** Fraction (0–1] of parts (and of backups for --read-data) to read this run, rotating. */
  sample?: number;
  stateDir: string;
  signal?: AbortSignal;
}

interface Cursor {
  offset: number;
}

/** Picks a rotating window of `fraction` of `total` units, remembered between runs. */
async function rotatingWindow(
  stateDir: string,
  name: string,
  total: number,
  fraction: number,
): Promise<Set<number>> {
  const file = join(stateDir, `verify-cursor-${name}.json`);
  let cursor: Cursor = { offset: 0 };
  try {
    cursor = JSON.parse(await readFile(file, "utf8")) as Cursor;
  } catch {
    // first run
  }
  const count = Math.min(total, Math.max(1, Math.ceil(total * fraction)));
  const picked = new Set<number>();
  for (let i = 0; i < count; i++) picked.add((cursor.offset + i) % Math.max(total, 1));
  await mkdir(stateDir, { recursive: true, mode: 0o700 });
  await writeFile(file, JSON.stringify({ offset: (cursor.offset + count) % Math.max(total, 1) }), {
    mode: 0o600,
  });
  return picked;
}

const sink = () => new Writable({ highWaterMark: 1 << 20, write: (_c, _e, cb) => cb() });

export async function verifyBackups(o: VerifyOptions): Promise<BackupVerdict[]> {
  const trust = o.trust instanceof BackupVerifier ? o.trust : await BackupVerifier.load(o.repo, o.trust);
  const manifests: Manifest[] = [];
  const verdicts: BackupVerdict[] = [];
  for (const id of o.ids) {
    const v: BackupVerdict = {
      id,
      type: "?",
      ok: true,
      partsChecked: 0,
      partsTotal: 0,
      dataRead: false,
      problems: [],
    };
    verdicts.push(v);
    try {
      const m = (await resolveChain(o.repo, id, trust)).at(-1)!;
      v.type = m.type;
      v.partsTotal = m.parts.length;
      manifests.push(m);
    } catch (e) {
      v.ok = false;
      v.problems.push({ code: (e as StrongboxError).code ?? "ERROR", message: (e as Error).message });
    }
  }
  // Parts: all of them, or a rotating sample across the whole set.
  const units = manifests.flatMap((m) => m.parts.map((p) => ({ m, p })));
  const partPick = o.sample
    ? await rotatingWindow(o.stateDir, `${o.repo.name}-parts`, units.length, o.sample)
    : undefined;
  const dataPick =
    o.identities && o.sample
      ? await rotatingWindow(o.stateDir, `${o.repo.name}-data`, manifests.length, o.sample)
      : undefined;
  for (const [i, m] of manifests.entries()) {
    const v = verdicts.find((x) => x.id === m.id)!;
    const readData = !!o.identities && (!dataPick || dataPick.has(i));
    if (readData) {
      // Reading the data checks every part's hash on the way, then decrypts and parses the stream.
      try {
        await decodeBackup(repositorySource(o.repo, o.identities!), m, { sink: "scan", signal: o.signal });
        v.dataRead = true;
        v.partsChecked = m.parts.length;
      } catch (e) {
        v.ok = false;
        v.problems.push({ code: (e as StrongboxError).code ?? "ERROR", message: (e as Error).message });
      }
      continue;
    }
    for (const p of m.parts) {
      const unit = units.findIndex((u) => u.m === m && u.p === p);
      if (partPick && !partPick.has(unit)) continue;
      try {
        await pipeline(await readPartChecked(o.repo, m, p, o.signal, { verifyFirst: false }), sink());
        v.partsChecked++;
      } catch (e) {
        v.ok = false;
        v.problems.push({ code: (e as StrongboxError).code ?? "ERROR", message: (e as Error).message });
      }
    }
  }
  return verdicts;
}
