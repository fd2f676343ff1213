// The backup host's side of a multi-host sandbox (--hosts): its SSH client key, each node's sshd
// with the agent as forced command, and the backup account's home (config, keys, secrets,
// repository), which only that account can read. The data directories stay their nodes'.
import { existsSync } from "node:fs";
import { copyFile, mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { StrongboxError } from "../errors.ts";
import { accountOf, assertReachableByOthers, chownTree } from "./accounts.ts";
import { backupHome, type SandboxState, sandboxNodes } from "./cluster.ts";
import { sandboxPaths } from "./layout.ts";
import { keygen, prepareNodeSshd, startNodeSshd } from "./sshd.ts";

/** Where the backup host keeps the key it logs in to the agents with (relative to its config). */
export const AGENT_KEY = "keys/agent_ed25519";

/** The Node binary and the strongbox launcher of this installation, which every account runs. */
export function strongboxProgram(): { node: string; bin: string } {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, "bin", "strongbox"))) {
    const up = dirname(dir);
    if (up === dir) {
      throw new StrongboxError(
        "SANDBOX_HOSTS_UNREACHABLE",
        "cannot find the strongbox launcher (bin/strongbox) of this installation",
      );
    }
    dir = up;
  }
  return { node: process.execPath, bin: join(dir, "bin", "strongbox") };
}

/**
 * The agent's forced command: this installation's strongbox, with the Node it runs on, accepting
 * restores and restore-tests below the node's restore root only.
 */
export function agentCommand(restoreRoot: string, program = strongboxProgram()): string {
  const q = (s: string) => `'${s.replace(/'/g, "'\\''")}'`;
  return `STRONGBOX_NODE=${q(program.node)} exec ${q(program.bin)} agent --restore-root ${q(restoreRoot)}`;
}

/** Every account runs the same program: it must be readable by them (checked before anything is made). */
export function assertProgramReachable(program = strongboxProgram()): void {
  assertReachableByOthers(program.node, "the Node binary", true);
  assertReachableByOthers(program.bin, "the strongbox launcher", true);
}

/**
 * The SSH client key of the backup host, and on each node an sshd that lets only that key in,
 * only to run the agent. Returns each node's host key line, pinned in the generated config.
 */
export async function startAgents(
  state: SandboxState,
  log: (m: string) => void,
): Promise<Map<string, string>> {
  const home = backupHome(state);
  const keyFile = join(home, AGENT_KEY);
  await mkdir(dirname(keyFile), { recursive: true, mode: 0o700 });
  const publicKey = await keygen(keyFile, `${state.hosts!.backupUser}@backup`);
  const program = strongboxProgram();
  const hostKeys = new Map<string, string>();
  for (const node of sandboxNodes(state)) {
    const command = agentCommand(node.restoreRoot, program);
    hostKeys.set(
      node.name,
      await prepareNodeSshd(node, { clientPublicKey: publicKey, agentCommand: command }),
    );
    await startNodeSshd(node);
    log(`${node.name}: sshd on ${node.address}:${node.sshPort}, agent as ${node.osUser}`);
  }
  return hostKeys;
}

/** The backup account's copies of the database passwords, then its whole home made its own. */
export async function finishBackupHome(state: SandboxState): Promise<void> {
  const home = backupHome(state);
  const secrets = join(home, "secrets");
  await mkdir(secrets, { recursive: true, mode: 0o700 });
  for (const name of ["backup", "admin"]) {
    await copyFile(
      join(sandboxPaths(state.dir).secrets, `${name}.password`),
      join(secrets, `${name}.password`),
    );
  }
  if (state.tls) {
    // The backup host's part of the cluster CA: the CA to verify the nodes, its client certificate.
    const tls = join(home, "tls");
    await mkdir(tls, { recursive: true, mode: 0o700 });
    for (const f of ["ca.pem", "client-cert.pem", "client-key.pem"])
      await writeFile(join(tls, f), await readFile(join(state.dir, "tls", f)), { mode: 0o600, flag: "wx" });
  }
  await chownTree(home, accountOf(state.hosts!.backupUser));
}
