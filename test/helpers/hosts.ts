// One multi-host sandbox (sandbox up --hosts) per test file: each node its own loopback address,
// OS account and sshd with the agent, and a backup account owning the repository and the config.
// Needs root. The backup host's commands run as the backup account (asBackup).
import { randomBytes } from "node:crypto";
import { chownSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before } from "node:test";
import { type Connection, type Credentials, connectNode } from "../../src/galera/connection.ts";
import { type Account, accountOf } from "../../src/sandbox/accounts.ts";
import {
  findFreeBasePort,
  readSecret,
  readState,
  type SandboxState,
  sandboxDown,
  sandboxNodes,
} from "../../src/sandbox/cluster.ts";
import type { SandboxNode } from "../../src/sandbox/layout.ts";
import { createSandbox } from "../../src/sandbox/setup.ts";
import { type CliResult, editConfig, startCli } from "./cli.ts";

export interface HostsSandbox {
  dir: string;
  state: SandboxState;
  /** Each with its address, OS account (osUser), sshd port and directories. */
  nodes: SandboxNode[];
  admin: Credentials;
  /** The backup host's account; its home holds the config, keys, secrets and repository. */
  backup: Account;
  /** DIR/backup/strongbox.yaml, with an agent for every node. */
  configPath: string;
  /** Admin connection to node `index` over its own address. */
  connect(index?: number): Promise<Connection>;
  /** The CLI as the backup account, in its home (optionally below `prefix`, e.g. strace). */
  asBackup(args: string[], env?: NodeJS.ProcessEnv, prefix?: string[]): Promise<CliResult>;
  startAsBackup(args: string[], env?: NodeJS.ProcessEnv): ReturnType<typeof startCli>;
  /** A modified copy of the config in the backup account's home, owned by it. */
  editConfig(name: string, edit: Parameters<typeof editConfig>[2]): string;
}

// Test files run in parallel: each picks its own port range, spaced by pid.
let nextBase = 36000 + (process.pid % 150) * 100;

/**
 * Registers before/after hooks that start a multi-host sandbox once for the calling test file.
 * The returned object is filled in when `before` has run; `after` removes the processes, the
 * accounts and the directory (unless a test did already).
 */
export function useHostsSandbox(options: { nodes?: number; tls?: boolean } = {}): HostsSandbox {
  const sb = { nodes: [] } as unknown as HostsSandbox;
  const nodes = options.nodes ?? 3;
  before(
    async () => {
      // A directory sandbox up makes itself: 0711, so that each account reaches its home.
      const dir = join(tmpdir(), `strongbox-hosts-${randomBytes(4).toString("hex")}`);
      sb.dir = dir;
      const basePort = await findFreeBasePort(nodes, nextBase, { id: "probe" });
      nextBase = basePort + 100;
      const created = await createSandbox({
        dir,
        nodes,
        basePort,
        bufferPool: "128M",
        hosts: true,
        tls: options.tls,
      });
      sb.state = await readState(dir);
      sb.nodes = sandboxNodes(sb.state);
      sb.admin = await readSecret(dir, "admin");
      sb.backup = accountOf(created.state.hosts!.backupUser);
      sb.configPath = created.configPath;
      const as = { uid: sb.backup.uid, gid: sb.backup.gid, cwd: sb.backup.home };
      const env = { HOME: sb.backup.home };
      sb.connect = (index = 1) => {
        const n = sb.nodes[index - 1]!;
        return connectNode({ name: n.name, host: n.address, port: n.port }, sb.admin, {
          multipleStatements: true,
          ...(options.tls ? { tls: { ca: join(dir, "tls", "ca.pem") } } : {}),
        });
      };
      sb.asBackup = (args, extra = {}, prefix = []) =>
        startCli(args, { ...env, ...extra }, as, prefix).result;
      sb.startAsBackup = (args, extra = {}) => startCli(args, { ...env, ...extra }, as);
      sb.editConfig = (name, edit) => {
        const to = editConfig(sb.configPath, join(sb.backup.home, name), edit);
        chownSync(to, sb.backup.uid, sb.backup.gid);
        return to;
      };
    },
    { timeout: 600_000 },
  );
  after(
    async () => {
      if (!sb.dir) return;
      await sandboxDown(sb.dir, { purge: true }).catch(() => {});
    },
    { timeout: 300_000 },
  );
  return sb;
}
