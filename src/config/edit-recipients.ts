// Changing the recipient list in the configuration: the recipients file when one is configured,
// else keys.recipients in strongbox.yaml (edited as a YAML document, so comments survive).
import { readFile, rename, writeFile } from "node:fs/promises";
import { parseDocument } from "yaml";
import { parseRecipient } from "../crypto/age-keys.ts";
import { StrongboxError } from "../errors.ts";
import type { LoadedConfig } from "./load.ts";

async function writeAtomic(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}`;
  await writeFile(tmp, text, { mode: 0o600 });
  await rename(tmp, path);
}

export async function changeRecipients(
  loaded: LoadedConfig,
  change: { add?: string; remove?: string },
): Promise<{ where: string; recipients: string[] }> {
  if (loaded.config.keys.passphraseFile) {
    throw new StrongboxError("KEYS_PASSPHRASE", "this repository uses a passphrase, not recipients", {
      hint: "switch to recipients by replacing keys.passphraseFile with keys.recipients, then run key rotate",
    });
  }
  const add = change.add ? parseRecipient(change.add).recipient : undefined;
  const remove = change.remove?.trim();
  const file = loaded.config.keys.recipientsFile
    ? loaded.resolvePath(loaded.config.keys.recipientsFile)
    : undefined;
  const inConfig = [...loaded.config.keys.recipients];
  const fileLines = file ? (await readFile(file, "utf8")).split("\n") : [];
  const inFile = fileLines.map((l) => l.trim()).filter((l) => l.startsWith("age1"));
  const all = [...new Set([...inConfig, ...inFile])];
  if (add && all.includes(add)) throw new StrongboxError("RECIPIENT_EXISTS", `${add} is already a recipient`);
  if (remove && !all.includes(remove)) {
    throw new StrongboxError("RECIPIENT_UNKNOWN", `${remove} is not a recipient`, {
      hint: `recipients: ${all.join(", ")}`,
    });
  }
  if (remove && all.length === 1) {
    throw new StrongboxError(
      "RECIPIENT_LAST",
      "refusing to remove the last recipient: nobody could decrypt new backups",
    );
  }
  let where: string;
  if (remove && inConfig.includes(remove)) {
    await editConfigList(loaded.path, (list) => list.filter((r) => r !== remove));
    where = loaded.path;
  } else if (remove && file) {
    await writeAtomic(file, fileLines.filter((l) => l.trim() !== remove).join("\n"));
    where = file;
  } else if (add && file) {
    const text = fileLines.join("\n");
    await writeAtomic(file, `${text}${text.endsWith("\n") || text === "" ? "" : "\n"}${add}\n`);
    where = file;
  } else {
    await editConfigList(loaded.path, (list) => [...list, add!]);
    where = loaded.path;
  }
  const recipients = add ? [...all, add] : all.filter((r) => r !== remove);
  return { where, recipients };
}

async function editConfigList(path: string, edit: (list: string[]) => string[]): Promise<void> {
  const doc = parseDocument(await readFile(path, "utf8"));
  const current = (doc.getIn(["keys", "recipients"]) as { toJSON(): string[] } | undefined)?.toJSON() ?? [];
  doc.setIn(["keys", "recipients"], edit(current));
  await writeAtomic(path, doc.toString());
}
