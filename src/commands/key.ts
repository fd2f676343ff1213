// key generate | add-recipient | remove-recipient | rotate
import { existsSync } from "node:fs";
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import {
  identitiesOf,
  nextSigningKeyPath,
  recipientsOf,
  signingKeyOf,
  signingPublicKeyPath,
  trustedKeysOf,
} from "../config/context.ts";
import { changeRecipients } from "../config/edit-recipients.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { type AgeIdentity, generateX25519Identity } from "../crypto/age-keys.ts";
import type { RecipientSet } from "../crypto/recipient-set.ts";
import type { SigningKey } from "../crypto/sign.ts";
import { generateSigningKey, publicKeyFromPrivate } from "../crypto/sign.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import { rotateBinlogs } from "../keys/binlogs.ts";
import { resignAll, rotateRecipients, sameRecipients } from "../keys/rotate.ts";
import { runMonitored } from "../monitor/monitor.ts";
import { binlogEntryDigest, readIndex, readTrustedIndex } from "../repository/binlog-index.ts";
import type { Repository } from "../repository/repository.ts";
import { BackupVerifier, type Distrusted, openEvidenceWriter } from "../repository/trusted.ts";
import { asWriter } from "../repository/writer.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";
import { parseDuration } from "../util/duration.ts";
import { openRepository } from "./repo.ts";

export async function generate(
  _g: GlobalOptions,
  o: { out: string; force?: boolean },
  out: Output,
): Promise<CommandResult> {
  const { identity, recipient } = generateX25519Identity();
  const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
  // --force replaces the file by rename: writing into an existing file would keep its mode, and an
  // identity must never be readable by others (a 0644 file stayed 0644).
  const temp = o.force ? join(dirname(resolve(o.out)), `.${basename(o.out)}.${process.pid}.tmp`) : o.out;
  try {
    await writeFile(temp, text, { mode: 0o600, flag: "wx" });
    if (temp !== o.out) await rename(temp, o.out);
  } catch (e) {
    if (temp !== o.out) await rm(temp, { force: true });
    const code = (e as NodeJS.ErrnoException).code;
    throw new StrongboxError(
      "KEY_WRITE",
      code === "EEXIST"
        ? `${o.out} already exists; refusing to overwrite a key`
        : code === "ENOENT"
          ? `cannot write ${o.out}: directory ${dirname(resolve(o.out))} does not exist`
          : `cannot write ${o.out} (${code})`,
      { hint: code === "EEXIST" ? "choose another --out, or --force if you really mean it" : undefined },
    );
  }
  return reply(out, { identityFile: o.out, recipient }, () =>
    [
      `identity written to ${o.out} (mode 0600): keep it OFF the backup host, and keep a copy offline`,
      `recipient (public, goes into keys.recipients): ${recipient}`,
    ].join("\n"),
  );
}

async function updateRepositories(loaded: LoadedConfig, only?: string): Promise<string[]> {
  const recipients = await recipientsOf(loaded);
  const signing = await signingKeyOf(loaded);
  const names = only ? [only] : loaded.config.repositories.map((r) => r.name);
  const updated: string[] = [];
  for (const name of names) {
    const repo = await openRepository(loaded, name, { trusted: signing.publicKey });
    try {
      if (repo.storage.capabilities.appendOnly) continue;
      await repo.updateInfo(
        { recipients: recipients.names, passphrase: recipients.passphrase },
        signing.privateKeyPem,
      );
      updated.push(name);
    } finally {
      await repo.storage.close();
    }
  }
  return updated;
}

export async function addRecipient(
  g: GlobalOptions,
  o: { recipient: string; repo?: string },
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const r = await changeRecipients(loaded, { add: o.recipient });
  const repos = await updateRepositories(await loadConfig(g.config), o.repo);
  return reply(out, { ...r, repositories: repos }, () =>
    [
      `added ${o.recipient} (in ${r.where}); new backups are encrypted to: ${r.recipients.join(", ")}`,
      "existing backups are not readable with it yet: run `strongbox key rotate` to re-wrap them",
    ].join("\n"),
  );
}

export async function removeRecipient(
  g: GlobalOptions,
  o: { recipient: string; repo?: string },
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const r = await changeRecipients(loaded, { remove: o.recipient });
  const repos = await updateRepositories(await loadConfig(g.config), o.repo);
  return reply(out, { ...r, repositories: repos }, () =>
    [
      `removed ${o.recipient} (from ${r.where}); new backups are encrypted to: ${r.recipients.join(", ")}`,
      "existing backups can still be opened with the removed key: run `strongbox key rotate` to re-wrap them",
    ].join("\n"),
  );
}

interface RotateOne {
  repo: Repository;
  identities: AgeIdentity[] | undefined;
  recipients: RecipientSet;
  /** Signing public keys trusted during the rotation: the current one first, then the new one. */
  accepted: string[];
  signing: SigningKey;
  resign: boolean;
  /** Aborted when the writer lock is lost. */
  signal: AbortSignal;
  log: (message: string) => void;
}

/** What one repository got from a rotation, and what stays readable by keys no longer recipients. */
export interface RotateReport {
  repository: string;
  appendOnly: boolean;
  backups: number;
  parts: number;
  binlogs: number;
  /** Objects an interrupted rotation had left behind, removed. */
  leftovers: number;
  resigned: number;
  skipped: Distrusted[];
  stillReadable: { backups: string[]; binlogs: number; keys: string[]; why: string } | undefined;
}

/** One repository, under its writer lock: re-wrap part and binlog headers, re-sign, re-sign the config. */
async function rotateOne(
  o: RotateOne,
): Promise<Omit<RotateReport, "repository" | "appendOnly" | "stillReadable">> {
  // Read under the lock; the evidence writer settles what a killed run left in flight.
  const trust = () => BackupVerifier.load(o.repo, o.accepted);
  const evidence = await openEvidenceWriter(await trust(), o.signing);
  let rewrapped: { backups: number; parts: number; leftovers: number; skipped: Distrusted[] } = {
    backups: 0,
    parts: 0,
    leftovers: 0,
    skipped: [],
  };
  let binlogs = { files: 0, leftovers: 0 };
  if (o.identities) {
    const common = {
      repo: o.repo,
      signing: o.signing,
      identities: o.identities,
      recipients: o.recipients.age,
      recipientNames: o.recipients.names,
      signal: o.signal,
      log: o.log,
    };
    rewrapped = await rotateRecipients({
      ...common,
      trust: await trust(),
      evidence,
      passphrase: o.recipients.passphrase,
    });
    binlogs = await rotateBinlogs({ ...common, acceptedPublicKeys: o.accepted });
  }
  const resigned = o.resign
    ? await resignAll({ repo: o.repo, trust: await trust(), evidence, signing: o.signing, log: o.log })
    : { resigned: 0, skipped: [] };
  o.signal.throwIfAborted();
  await o.repo.updateInfo(
    {
      recipients: o.recipients.names,
      passphrase: o.recipients.passphrase,
      signingPublicKey: o.signing.publicKey,
    },
    o.signing.privateKeyPem,
  );
  // The new key's first entry of its own: from here on readers need only the new public key.
  if (o.resign) {
    // The binlog index entries stay as the old key signed them (they are never replaced): the
    // evidence vouches for each by its digest, under the new key.
    const { entries } = await readIndex(o.repo, o.accepted);
    await evidence.mark("signing-key", {
      binlogIndex: Object.fromEntries(entries.map((e) => [String(e.seq), binlogEntryDigest(e)])),
    });
  }
  const skipped = [...rewrapped.skipped, ...resigned.skipped].filter(
    (u, i, all) => all.findIndex((x) => x.id === u.id) === i,
  );
  return {
    backups: rewrapped.backups,
    parts: rewrapped.parts,
    binlogs: binlogs.files,
    leftovers: rewrapped.leftovers + binlogs.leftovers,
    resigned: resigned.resigned,
    skipped,
  };
}

const APPEND_ONLY_WHY =
  "the repository is append-only: its storage refuses overwrites and deletes, so their headers cannot be replaced; they stay readable by those keys until they are removed there (prune with credentials that may delete) or rotated from a configuration whose credentials may delete";

/** An append-only repository is not rotated: what in it stays readable by keys that are not recipients now. */
async function appendOnlyReport(repo: Repository, trusted: string[], names: string[]): Promise<RotateReport> {
  const keys = new Set<string>();
  const backups: string[] = [];
  const set = await (await BackupVerifier.load(repo, trusted)).inventory();
  for (const m of set.backups) {
    if (sameRecipients(m.encryption.recipients, names)) continue;
    backups.push(m.id);
    for (const r of m.encryption.recipients) if (!names.includes(r)) keys.add(r);
  }
  let binlogs = 0;
  for (const e of (await readTrustedIndex(repo, trusted)).filter((x) => x.kind === "file")) {
    if (sameRecipients(e.recipients, names)) continue;
    binlogs++;
    for (const r of e.recipients ?? ["(recipients not recorded: archived before they were)"]) {
      if (!names.includes(r)) keys.add(r);
    }
  }
  return {
    repository: repo.name,
    appendOnly: true,
    backups: 0,
    parts: 0,
    binlogs: 0,
    leftovers: 0,
    resigned: 0,
    skipped: set.unverified,
    stillReadable:
      backups.length + binlogs > 0 ? { backups, binlogs, keys: [...keys], why: APPEND_ONLY_WHY } : undefined,
  };
}

function describeReport(r: RotateReport, resign: boolean, rekeyed: boolean): string {
  if (r.appendOnly) {
    const left = r.stillReadable;
    if (!left) {
      return `repository ${r.repository}: append-only, not rotated: everything in it is already encrypted to the current recipients only`;
    }
    const what = `${left.backups.length} backup(s) and ${left.binlogs} archived binlog(s)`;
    return left.keys.length > 0
      ? `repository ${r.repository}: append-only, not rotated: ${what} stay readable by ${left.keys.join(", ")}: ${left.why}`
      : `repository ${r.repository}: append-only, not rotated: ${what} stay encrypted to their old recipients only (the new ones cannot read them): ${left.why}`;
  }
  return [
    `repository ${r.repository}: ${r.backups} backup(s) re-keyed (${r.parts} part header(s) rewritten, payloads untouched), ${r.binlogs} archived binlog(s) re-keyed`,
    ...(r.leftovers > 0 ? [`${r.leftovers} object(s) of an interrupted rotation removed`] : []),
    ...(resign ? [`${r.resigned} manifest(s) re-signed`] : []),
    ...(rekeyed ? ["nothing there is readable by a key that is not a recipient now"] : []),
  ].join(", ");
}

/** The next signing key, made ahead (kept in `<signingKey>.new`), or the one a killed run left. */
async function nextSigningKey(keyPath: string): Promise<SigningKey> {
  const path = nextSigningKeyPath(keyPath);
  let pem: string;
  try {
    pem = await readFile(path, "utf8");
  } catch {
    pem = generateSigningKey().privateKeyPem;
    await writeFile(path, pem, { mode: 0o600, flag: "wx" });
  }
  return { privateKeyPem: pem, publicKey: publicKeyFromPrivate(pem) };
}

/**
 * key rotate --signing --prepare: the next key, made now, its public half printed and written
 * beside it, so that remote readers can pin old and new before the rotation (atomic for them too).
 */
async function prepareSigningRotation(
  loaded: LoadedConfig,
  out: Output,
  signing: boolean,
): Promise<CommandResult> {
  if (!signing) throw new UsageError("--prepare goes with --signing");
  const current = await signingKeyOf(loaded);
  const keyPath = loaded.resolvePath(loaded.config.keys.signingKey!);
  const next = await nextSigningKey(keyPath);
  const pubFile = signingPublicKeyPath(nextSigningKeyPath(keyPath));
  await writeFile(pubFile, `${next.publicKey}\n`, { mode: 0o600 });
  return reply(out, { current: current.publicKey, next: next.publicKey, nextPublicKeyFile: pubFile }, () =>
    [
      `next signing public key: ${next.publicKey} (in ${pubFile})`,
      `readers: trust both until the rotation completes: signingPublicKey: ["${current.publicKey}", "${next.publicKey}"]`,
      "then run: strongbox key rotate --signing",
    ].join("\n"),
  );
}

export async function rotate(
  g: GlobalOptions,
  o: { identity?: string; signing?: boolean; prepare?: boolean; repo?: string },
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  if (o.prepare) return prepareSigningRotation(loaded, out, o.signing ?? false);
  const names = o.repo ? [o.repo] : loaded.config.repositories.map((r) => r.name);
  if (o.signing && loaded.config.keys.signingKey !== undefined) {
    // Killed between retiring the old key file and moving the new one into place: finish that.
    const path = loaded.resolvePath(loaded.config.keys.signingKey);
    if (!existsSync(path) && existsSync(nextSigningKeyPath(path))) {
      await rename(nextSigningKeyPath(path), path);
      const done = await signingKeyOf(loaded);
      await writeFile(signingPublicKeyPath(path), `${done.publicKey}\n`, { mode: 0o600 });
      return reply(
        out,
        { signingPublicKey: done.publicKey, repositories: [], finishedInterrupted: true },
        () => `finished an interrupted signing key rotation: ${path} is the new key (${done.publicKey})`,
      );
    }
  }
  let signing = await signingKeyOf(loaded);
  const keyPath = loaded.resolvePath(loaded.config.keys.signingKey!);
  const accepted = [signing.publicKey];
  let newKeyPath: string | undefined;
  if (o.signing) {
    // Resumable: a previous interrupted run left the new key in <signingKey>.new.
    newKeyPath = nextSigningKeyPath(keyPath);
    signing = await nextSigningKey(keyPath);
    accepted.push(signing.publicKey);
  }
  const recipients = await recipientsOf(loaded);
  const identities = o.signing && !o.identity ? undefined : await identitiesOf(loaded, o.identity);
  // Both keys are trusted until the rotation completes (and readers' pinned keys, if any).
  const trusted = [...new Set([...(await trustedKeysOf(loaded)), ...accepted])];
  const results: RotateReport[] = [];
  for (const name of names) {
    // Each repository's rotation is a run of its own in the catalog.
    const meta = { command: "key-rotate", repository: name, kind: o.signing ? "signing" : "recipients" };
    const r = await runMonitored(monitorSettingsOf(loaded), meta, async (run) => {
      const repo = await openRepository(loaded, name);
      try {
        repo.verifyInfo(trusted);
        // Goes on past an append-only repository, saying what stays readable there and why.
        if (repo.storage.capabilities.appendOnly) {
          const report = await appendOnlyReport(repo, trusted, recipients.names);
          run.details = { appendOnly: true, stillReadable: report.stillReadable };
          return report;
        }
        const command = `key rotate${o.signing ? " --signing" : ""}`;
        const ttlMs = parseDuration(loaded.config.backup.lockTtl);
        const done = await asWriter(repo, { command, ttlMs }, (session) =>
          rotateOne({
            repo,
            identities,
            recipients,
            accepted: trusted,
            signing,
            resign: o.signing ?? false,
            signal: session.signal,
            log: (m) => out.log(m),
          }),
        );
        run.details = { ...done };
        return { repository: name, appendOnly: false, ...done, stillReadable: undefined };
      } finally {
        await repo.storage.close();
      }
    });
    results.push(r);
  }
  if (newKeyPath) {
    const retired = `${keyPath}.retired-${new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z")}`;
    await rename(keyPath, retired);
    await rename(newKeyPath, keyPath);
    await writeFile(signingPublicKeyPath(keyPath), `${signing.publicKey}\n`, { mode: 0o600 });
    await rm(signingPublicKeyPath(newKeyPath), { force: true });
  }
  return reply(out, { signingPublicKey: signing.publicKey, repositories: results }, () =>
    [
      ...results.map((r) => describeReport(r, o.signing ?? false, identities !== undefined)),
      ...results.flatMap((r) =>
        r.skipped.map((u) => `UNVERIFIED ${u.id} in ${r.repository}: skipped, left as it is (${u.message})`),
      ),
      `recipients now: ${recipients.names.join(", ")}`,
      ...(o.signing
        ? [
            `new signing public key: ${signing.publicKey} (in ${signingPublicKeyPath(keyPath)})`,
            "readers: set keys.signingPublicKey to it (and escrow it); the old key is no longer trusted",
          ]
        : []),
    ].join("\n"),
  );
}
