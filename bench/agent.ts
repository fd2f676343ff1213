// Through a node's agent, side by side with the shell over SSH (issue 18): a full backup run by
// `strongbox agent` on the node next to `ssh node 'mariabackup | zstd -1 -T0 | age -r KEY' > file`,
// and `restore --onto` next to `ssh node 'age -d | zstd -d | mbstream -x' < file` then prepare. Both
// go through a real OpenSSH sshd on loopback (one with the agent as its forced command, one with a
// shell); the node is this machine, so the numbers measure the SSH leg and the protocol, not a
// network. The agent runs outside the measured process tree (sshd starts it): its peak RSS is
// sampled from /proc while each command runs.
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse, stringify } from "yaml";
import { type SshServer, sshFieldsOf, startSshd } from "../test/helpers/sshd.ts";
import { type BenchEnv, type Command, mariabackupStream, q } from "./tools.ts";

export interface AgentBench {
  config: string;
  restoreRoot: string;
  ssh: (command: string) => string;
  /** Peak VmHWM (kB) of the node's agent processes seen since the last reset. */
  agentPeakKb(): number;
  stop(): Promise<void>;
}

/** Starts the two sshd and writes a config whose node1 is reached through its agent. */
export async function startAgentBench(e: BenchEnv): Promise<AgentBench> {
  const restoreRoot = join(e.work, "agent-restore");
  mkdirSync(restoreRoot, { recursive: true, mode: 0o700 });
  const agent = await startSshd({
    forcedCommand: `STRONGBOX_NODE=${process.execPath} exec ${e.strongbox} agent --restore-root ${restoreRoot}`,
  });
  await agent.start();
  let shell: SshServer | undefined;
  try {
    shell = await startSshd();
    await shell.start();
  } catch (err) {
    await agent.destroy();
    throw err;
  }
  // Beside the sandbox config: its relative paths (repository, keys) resolve from there.
  const config = join(e.sandboxDir, "agent.yaml");
  const c = parse(readFileSync(e.config, "utf8")) as {
    cluster: { nodes: Record<string, unknown>[] };
  };
  for (const n of c.cluster.nodes) n.agent = sshFieldsOf(agent);
  writeFileSync(config, stringify(c), { mode: 0o600 });
  const sh = shell;
  const ssh = (command: string) =>
    [
      "ssh -q -T",
      `-i ${q(sh.userKeyFile)}`,
      `-p ${sh.port}`,
      `-o UserKnownHostsFile=${q(sh.knownHostsFile)}`,
      "-o StrictHostKeyChecking=yes -o BatchMode=yes",
      `${sh.user}@127.0.0.1`,
      q(command),
    ].join(" ");
  // The agents this bench starts: their command line names its restore root.
  let peakKb = 0;
  const sample = () => {
    for (const pid of readdirSync("/proc")) {
      if (!/^\d+$/.test(pid)) continue;
      try {
        const cmd = readFileSync(`/proc/${pid}/cmdline`, "latin1");
        if (!cmd.includes(`agent\0--restore-root\0${restoreRoot}`)) continue;
        const hwm = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "latin1"));
        if (hwm) peakKb = Math.max(peakKb, Number(hwm[1]));
      } catch {
        // gone in between
      }
    }
  };
  const timer = setInterval(sample, 50);
  return {
    config,
    restoreRoot,
    ssh,
    agentPeakKb: () => {
      const p = peakKb;
      peakKb = 0;
      return p;
    },
    async stop() {
      clearInterval(timer);
      await Promise.all([agent.destroy(), sh.destroy()]);
    },
  };
}

function bash(script: string): Command {
  return { argv: ["bash", "-c", `set -euo pipefail; ${script}`] };
}

export const agentCommands = {
  strongboxFull: (e: BenchEnv, a: AgentBench): Command => ({
    argv: [e.strongbox, "--config", a.config, "backup", "--full", "--json"],
    probe: true,
  }),
  /** The spec's baseline: the pipeline run on the node by ssh, its output written here. */
  shellFull: (e: BenchEnv, a: AgentBench, file: string): Command =>
    bash(
      `${a.ssh(`${mariabackupStream(e, "ssh-shell")} | zstd -${e.zstdLevel} -T0 -q | age -r ${q(e.recipient)}`)} > ${q(file)}`,
    ),
  strongboxRestore: (e: BenchEnv, a: AgentBench, id: string, dir: string): Command => ({
    argv: [
      e.strongbox,
      "--config",
      a.config,
      "restore",
      id,
      "--onto",
      "node1",
      "--target-dir",
      dir,
      "--json",
    ],
    probe: true,
  }),
  /** The file sent to the node, decrypted, decompressed and unpacked there, then prepared. */
  shellRestore: (e: BenchEnv, a: AgentBench, file: string, dir: string): Command =>
    bash(
      [
        "t0=$EPOCHREALTIME",
        `${a.ssh(`age -d -i ${q(e.identityFile)} | zstd -d -q | mbstream -x -C ${q(dir)}`)} < ${q(file)}`,
        "t1=$EPOCHREALTIME",
        a.ssh(`mariabackup --prepare --target-dir=${q(dir)} 2>/dev/null`),
        "t2=$EPOCHREALTIME",
        'echo "@stages $t0 $t1 $t2" >&2',
      ].join("; "),
    ),
};

export function emptyDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true, mode: 0o700 });
}
