// Each node's sshd in a multi-host sandbox (--hosts): on the node's own address, with its own
// generated host key, letting in only the node's account and only with the backup host's key,
// whose authorized_keys line forces the agent (`restrict,command="… strongbox agent"`): no shell,
// no forwarding, no pty. Its files (host key, config, pid, log) are root's, as /etc/ssh is.
import { spawn } from "node:child_process";
import { closeSync, existsSync, openSync } from "node:fs";
import { mkdir, readFile, writeFile } from "node:fs/promises";
import { connect } from "node:net";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import { descendants, pidAlive } from "../util/liveness.ts";
import { run, sleep } from "../util/proc.ts";
import { accountOf, chownTree } from "./accounts.ts";
import type { SandboxNode } from "./layout.ts";

const SSHD = "/usr/sbin/sshd";

function sshdFiles(node: SandboxNode) {
  return {
    hostKey: join(node.sshdDir, "ssh_host_ed25519_key"),
    config: join(node.sshdDir, "sshd_config"),
    pid: join(node.sshdDir, "sshd.pid"),
    log: join(node.sshdDir, "sshd.log"),
    authorizedKeys: join(node.dir, ".ssh", "authorized_keys"),
  };
}

/** The line of authorized_keys that lets the backup host's key run the agent, and nothing else. */
export function authorizedKeysLine(agentCommand: string, publicKey: string): string {
  return `restrict,command="${agentCommand.replace(/["\\]/g, "\\$&")}" ${publicKey.trim()}`;
}

/** `ssh-keygen` of an ed25519 key without passphrase; returns the public line. */
export async function keygen(path: string, comment: string): Promise<string> {
  await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", path], {
    label: "ssh-keygen",
    timeoutMs: 30_000,
  });
  return (await readFile(`${path}.pub`, "utf8")).trim();
}

/**
 * Writes the node's sshd (host key, config) and its account's authorized_keys; returns the host
 * key line ("ssh-ed25519 AAAA…") the backup host pins.
 */
export async function prepareNodeSshd(
  node: SandboxNode,
  o: { clientPublicKey: string; agentCommand: string },
): Promise<string> {
  const f = sshdFiles(node);
  await mkdir(node.sshdDir, { recursive: true, mode: 0o700 });
  const hostKeyLine = (await keygen(f.hostKey, `${node.name}-host`)).split(" ").slice(0, 2).join(" ");
  await writeFile(
    f.config,
    [
      `# Written by strongbox sandbox up --hosts: the sshd of ${node.name} (${node.address}).`,
      `ListenAddress ${node.address}:${node.sshPort}`,
      `HostKey ${f.hostKey}`,
      `PidFile ${f.pid}`,
      "AuthorizedKeysFile .ssh/authorized_keys",
      "StrictModes yes",
      "PubkeyAuthentication yes",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "PermitRootLogin no",
      "UsePAM no",
      `AllowUsers ${node.osUser}`,
      "DisableForwarding yes",
      "PermitTTY no",
      "MaxStartups 20",
      "LogLevel INFO",
      "",
    ].join("\n"),
    { mode: 0o600 },
  );
  const ssh = join(node.dir, ".ssh");
  await mkdir(ssh, { mode: 0o700 });
  await writeFile(f.authorizedKeys, `${authorizedKeysLine(o.agentCommand, o.clientPublicKey)}\n`, {
    mode: 0o600,
  });
  await chownTree(ssh, accountOf(node.osUser!));
  return hostKeyLine;
}

export async function readHostKeyLine(node: SandboxNode): Promise<string> {
  return (await readFile(`${sshdFiles(node).hostKey}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
}

/** The pid of the node's running sshd, or null. */
export async function sshdPid(node: SandboxNode): Promise<number | null> {
  try {
    const pid = Number.parseInt((await readFile(sshdFiles(node).pid, "utf8")).trim(), 10);
    return pidAlive(pid) ? pid : null;
  } catch {
    return null;
  }
}

/** Whether something answers with an SSH banner at host:port (within a second). */
export function answersSsh(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, host);
    let data = "";
    socket.setTimeout(1000, () => socket.destroy());
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      if (data.includes("\n")) socket.destroy();
    });
    socket.on("error", () => {});
    socket.on("close", () => resolve(data.startsWith("SSH-2.0-")));
  });
}

function sshBanner(node: SandboxNode): Promise<boolean> {
  return answersSsh(node.address, node.sshPort);
}

/** Starts the node's sshd (in the background, as root) unless it runs; resolves when it answers. */
export async function startNodeSshd(node: SandboxNode, timeoutMs = 15_000): Promise<void> {
  if ((await sshdPid(node)) !== null) return;
  await mkdir("/run/sshd", { recursive: true, mode: 0o755 }); // its privilege separation directory
  const f = sshdFiles(node);
  const log = openSync(f.log, "a", 0o600);
  let pid: number | undefined;
  try {
    const child = spawn(SSHD, ["-D", "-e", "-f", f.config], { detached: true, stdio: ["ignore", log, log] });
    child.unref();
    pid = child.pid;
  } finally {
    closeSync(log);
  }
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (pid === undefined || !pidAlive(pid)) break;
    if (await sshBanner(node)) return;
    await sleep(100);
  }
  const said = existsSync(f.log)
    ? (await readFile(f.log, "utf8")).trim().split("\n").slice(-2).join(" | ")
    : "";
  throw new StrongboxError(
    "SANDBOX_START_FAILED",
    `${node.name}: sshd did not answer on ${node.address}:${node.sshPort}${said ? `: ${said}` : ""}`,
    { hint: `full log: ${f.log}` },
  );
}

/** Stops the node's sshd and every session it started (the agents below them), as a host going down would. */
export async function stopNodeSshd(node: SandboxNode): Promise<void> {
  const pid = await sshdPid(node);
  if (pid === null) return;
  const pids = [pid, ...descendants(pid)];
  for (const p of pids) {
    try {
      process.kill(p, "SIGTERM");
    } catch {}
  }
  for (let i = 0; i < 50 && pids.some((p) => pidAlive(p)); i++) await sleep(100);
  for (const p of pids.filter((p) => pidAlive(p))) {
    try {
      process.kill(p, "SIGKILL");
    } catch {}
  }
}

/** What `sandbox status` says of a node's agent: how the backup host reaches it, and whether sshd answers. */
export async function agentStatus(node: SandboxNode) {
  const authorized = await readFile(sshdFiles(node).authorizedKeys, "utf8").catch(() => "");
  return {
    host: node.address,
    port: node.sshPort,
    user: node.osUser!,
    hostKey: await readHostKeyLine(node).catch(() => ""),
    sshdPid: await sshdPid(node),
    listening: await sshBanner(node),
    command: /command="((?:[^"\\]|\\.)*)"/.exec(authorized)?.[1]?.replace(/\\(.)/g, "$1") ?? "",
    restoreRoot: node.restoreRoot,
  };
}
