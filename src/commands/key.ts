// key generate: an age X25519 identity (0600) and its recipient.
import { writeFile } from "node:fs/promises";
import type { GlobalOptions } from "../cli/args.ts";
import { emit } from "../cli/output.ts";
import { generateX25519Identity } from "../crypto/age.ts";
import { StrongboxError } from "../errors.ts";

export async function generate(g: GlobalOptions, o: { out: string; force?: boolean }): Promise<void> {
  const { identity, recipient } = generateX25519Identity();
  const text = `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`;
  try {
    await writeFile(o.out, text, { mode: 0o600, flag: o.force ? "w" : "wx" });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new StrongboxError(
      "KEY_WRITE",
      code === "EEXIST"
        ? `${o.out} already exists; refusing to overwrite a key`
        : `cannot write ${o.out} (${code})`,
      { hint: code === "EEXIST" ? "choose another --out, or --force if you really mean it" : undefined },
    );
  }
  emit(g, { identityFile: o.out, recipient }, () =>
    [
      `identity written to ${o.out} (mode 0600): keep it OFF the backup host, and keep a copy offline`,
      `recipient (public, goes into keys.recipients): ${recipient}`,
    ].join("\n"),
  );
}
