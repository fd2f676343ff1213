// Pins: a pinned backup is never pruned (nor its chain). One signed object per pin,
//
//   pins/<id>.json    { format, backup, pinnedAt, note, signature }
//
// written create-if-absent, so it works on append-only storage and is covered by Object Lock
// like every object. Unpinning deletes it, which only a configuration that may delete can do.
//
// Thought through as an attacker with write access to the repository: a pin can only make prune
// keep more, never delete more. Any object at pins/<id>.json keeps backup <id>, even when it is
// garbage or its signature fails (prune reports it as tampered, so someone looks): forging pins
// costs the owner space, never a backup. Removing a pin takes the right to delete, and with that
// right the backup itself could be deleted: pins add no new way to lose one. With the signing key
// too (a compromised backup host) an attacker can sign pins, but not unpin without delete rights,
// which an append-only offsite account does not have.
import { canonicalJson, type SigningKey, sign, verify } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { readAll } from "../util/stream.ts";
import { BACKUP_ID_RE } from "./manifest.ts";
import type { Repository } from "./repository.ts";

export const PIN_FORMAT = 1;
const PREFIX = "pins/";

export interface PinRecord {
  format: number;
  backup: string;
  pinnedAt: string;
  note: string;
  signature?: { algorithm: "ed25519"; publicKey: string; value: string };
}

export interface PinState {
  /** Backup ids that prune must keep: every pin object present, valid or not. */
  pinned: Set<string>;
  /** Valid pins, by backup id. */
  records: Map<string, PinRecord>;
  /** Pin objects whose signature or content fails: still honoured, reported. */
  tampered: { backup: string; key: string; why: string }[];
}

export function pinKey(id: string): string {
  return `${PREFIX}${id}.json`;
}

function signedBytes(p: PinRecord): Buffer {
  const { signature: _s, ...rest } = p;
  return Buffer.from(canonicalJson(rest), "utf8");
}

/** The ids with a pin object, whatever it holds: what prune keeps (list shows them). */
export async function pinnedIds(repo: Repository): Promise<Set<string>> {
  const ids = new Set<string>();
  for await (const o of repo.storage.list(PREFIX)) {
    const id = /^pins\/(.+)\.json$/.exec(o.key)?.[1];
    if (id && BACKUP_ID_RE.test(id)) ids.add(id);
  }
  return ids;
}

/** Reads every pin; `trustedPublicKey` decides which are valid. */
export async function readPins(repo: Repository, trustedPublicKey: string): Promise<PinState> {
  const state: PinState = { pinned: new Set(), records: new Map(), tampered: [] };
  for (const id of await pinnedIds(repo)) {
    const key = pinKey(id);
    state.pinned.add(id);
    let why: string | undefined;
    try {
      const p = JSON.parse((await readAll(await repo.storage.get(key))).toString("utf8")) as PinRecord;
      if (p.format !== PIN_FORMAT || p.backup !== id) why = `it does not name backup ${id}`;
      else if (
        !p.signature ||
        p.signature.publicKey !== trustedPublicKey ||
        !verify(trustedPublicKey, signedBytes(p), p.signature.value)
      ) {
        why = "it is not signed by the configured signing key";
      } else state.records.set(id, p);
    } catch (e) {
      if ((e as StrongboxError).code === "STORAGE_NOT_FOUND") {
        state.pinned.delete(id); // unpinned while we listed
        continue;
      }
      why = e instanceof SyntaxError ? "it is not valid JSON" : (e as Error).message;
    }
    if (why) state.tampered.push({ backup: id, key, why });
  }
  return state;
}

/** Pins a committed backup. Returns false when it was pinned already (nothing written). */
export async function pinBackup(
  repo: Repository,
  id: string,
  key: SigningKey,
  note: string,
  now = new Date(),
): Promise<boolean> {
  await repo.get(id); // BACKUP_NOT_FOUND for an unknown id
  if (await repo.storage.stat(pinKey(id))) return false;
  const record: PinRecord = { format: PIN_FORMAT, backup: id, pinnedAt: now.toISOString(), note };
  record.signature = {
    algorithm: "ed25519",
    publicKey: key.publicKey,
    value: sign(key.privateKeyPem, signedBytes(record)),
  };
  await repo.storage.put(pinKey(id), Buffer.from(`${JSON.stringify(record, null, 2)}\n`), { ifAbsent: true });
  return true;
}

/** Removes a pin. Returns false when the backup was not pinned. */
export async function unpinBackup(repo: Repository, id: string): Promise<boolean> {
  if (!BACKUP_ID_RE.test(id)) {
    throw new StrongboxError("BACKUP_NOT_FOUND", `"${id}" is not a backup id`, {
      hint: "see: strongbox list",
    });
  }
  if (repo.storage.capabilities.appendOnly) {
    throw new StrongboxError(
      "REPO_APPEND_ONLY",
      `repository ${repo.name} is append-only: its pins can only be removed with a configuration that may delete`,
    );
  }
  if (!(await repo.storage.stat(pinKey(id)))) return false;
  await repo.storage.delete(pinKey(id));
  return true;
}
