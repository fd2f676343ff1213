// `sandbox up` as a whole: the cluster, a demo key pair, and the strongbox.yaml for it. With
// --hosts also the agents (an sshd per node) and the backup account's home holding all of it.
import { mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { generateX25519Identity } from "../crypto/age-keys.ts";
import { backupHome, type SandboxState, sandboxUp, type UpOptions } from "./cluster.ts";
import { writeSandboxConfig } from "./config.ts";
import { assertProgramReachable, finishBackupHome, startAgents } from "./hosts.ts";
import { sandboxPaths } from "./layout.ts";

export interface CreatedSandbox {
  state: SandboxState;
  configPath: string;
  identityPath: string;
  recipient: string;
}

export async function createSandbox(options: UpOptions): Promise<CreatedSandbox> {
  // Every account runs this installation's strongbox: refused before anything is made if they cannot.
  if (options.hosts && process.getuid?.() === 0) assertProgramReachable();
  const state = await sandboxUp(options);
  const hostKeys = state.hosts ? await startAgents(state, options.log ?? (() => {})) : undefined;
  // The identity stays in the sandbox only because this is a sandbox; a real backup host holds
  // recipients (public keys) only.
  const keysDir = sandboxPaths(backupHome(state)).keys;
  await mkdir(keysDir, { recursive: true, mode: 0o700 });
  const { identity, recipient } = generateX25519Identity();
  const identityPath = join(keysDir, "identity.txt");
  await writeFile(
    identityPath,
    `# created: ${new Date().toISOString()}\n# public key: ${recipient}\n${identity}\n`,
    { mode: 0o600, flag: "wx" },
  );
  await writeFile(join(keysDir, "recipients.txt"), `# team key (identity in identity.txt)\n${recipient}\n`, {
    mode: 0o600,
  });
  const configPath = await writeSandboxConfig(state, hostKeys);
  if (state.hosts) await finishBackupHome(state);
  return { state, configPath, identityPath, recipient };
}
