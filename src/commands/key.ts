// key generate | add-recipient | remove-recipient | rotate
import { readFile, rename, rm, writeFile } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { identitiesOf, recipientsOf, signingKeyOf } from "../config/context.ts";
import { changeRecipients } from "../config/edit-recipients.ts";
import { type LoadedConfig, loadConfig } from "../config/load.ts";
import { monitorSettingsOf } from "../config/monitoring.ts";
import { type AgeIdentity, generateX25519Identity } from "../crypto/age-keys.ts";
import type { RecipientSet } from "../crypto/recipient-set.ts";
import type { SigningKey } from "../crypto/sign.ts";
import { generateSigningKey, publicKeyFromPrivate } from "../crypto/sign.ts";
import { StrongboxError } from "../errors.ts";
import { resignAll, rotateRecipients } from "../keys/rotate.ts";
import { runMonitored } from "../monitor/monitor.ts";
import type { Repository } from "../repository/repository.ts";
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
  log: (message: string) => void;
}

/** One repository, under its writer lock: re-wrap part headers, re-sign, re-sign the config. */
async function rotateOne(o: RotateOne): Promise<{ backups: number; parts: number; resigned: number }> {
  let rewrapped = { backups: 0, parts: 0 };
  if (o.identities) {
    rewrapped = await rotateRecipients({
      repo: o.repo,
      trustedPublicKey: o.accepted[0]!,
      signing: o.signing,
      identities: o.identities,
      recipients: o.recipients.age,
      recipientNames: o.recipients.names,
      passphrase: o.recipients.passphrase,
      log: o.log,
    });
  }
  const resigned = o.resign
    ? await resignAll({ repo: o.repo, acceptedPublicKeys: o.accepted, signing: o.signing })
    : 0;
  await o.repo.updateInfo(
    {
      recipients: o.recipients.names,
      passphrase: o.recipients.passphrase,
      signingPublicKey: o.signing.publicKey,
    },
    o.signing.privateKeyPem,
  );
  return { ...rewrapped, resigned };
}

export async function rotate(
  g: GlobalOptions,
  o: { identity?: string; signing?: boolean; repo?: string },
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const names = o.repo ? [o.repo] : loaded.config.repositories.map((r) => r.name);
  const keyPath = loaded.resolvePath(loaded.config.keys.signingKey);
  let signing = await signingKeyOf(loaded);
  const accepted = [signing.publicKey];
  let newKeyPath: string | undefined;
  if (o.signing) {
    // Resumable: a previous interrupted run left the new key in <signingKey>.new.
    newKeyPath = `${keyPath}.new`;
    let pem: string;
    try {
      pem = await readFile(newKeyPath, "utf8");
    } catch {
      pem = generateSigningKey().privateKeyPem;
      await writeFile(newKeyPath, pem, { mode: 0o600, flag: "wx" });
    }
    signing = { privateKeyPem: pem, publicKey: publicKeyFromPrivate(pem) };
    accepted.push(signing.publicKey);
  }
  const recipients = await recipientsOf(loaded);
  const identities = o.signing && !o.identity ? undefined : await identitiesOf(loaded, o.identity);
  const results: { repository: string; backups: number; parts: number; resigned: number }[] = [];
  for (const name of names) {
    // Each repository's rotation is a run of its own in the catalog.
    const meta = { command: "key-rotate", repository: name, kind: o.signing ? "signing" : "recipients" };
    const r = await runMonitored(monitorSettingsOf(loaded), meta, async (run) => {
      const repo = await openRepository(loaded, name);
      try {
        if (!accepted.some((k) => k === repo.info.signingPublicKey)) repo.verifyInfo(accepted[0]!);
        const command = `key rotate${o.signing ? " --signing" : ""}`;
        const ttlMs = parseDuration(loaded.config.backup.lockTtl);
        const done = await asWriter(repo, { command, ttlMs }, () =>
          rotateOne({
            repo,
            identities,
            recipients,
            accepted,
            signing,
            resign: o.signing ?? false,
            log: (m) => out.log(m),
          }),
        );
        run.details = { ...done };
        return done;
      } finally {
        await repo.storage.close();
      }
    });
    results.push({ repository: name, ...r });
  }
  if (newKeyPath) {
    const retired = `${keyPath}.retired-${new Date()
      .toISOString()
      .replace(/[-:]/g, "")
      .replace(/\.\d+Z$/, "Z")}`;
    await rename(keyPath, retired);
    await rename(newKeyPath, keyPath);
  }
  return reply(out, { signingPublicKey: signing.publicKey, repositories: results }, () =>
    [
      ...results.map(
        (r) =>
          `repository ${r.repository}: ${r.backups} backup(s) re-keyed (${r.parts} part header(s) rewritten, payloads untouched)${o.signing ? `, ${r.resigned} manifest(s) re-signed` : ""}`,
      ),
      `recipients now: ${recipients.names.join(", ")}`,
      ...(o.signing ? [`new signing public key: ${signing.publicKey}`] : []),
    ].join("\n"),
  );
}
