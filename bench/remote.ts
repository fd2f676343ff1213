// The remote rows of the benchmark, on the test servers (docs/benchmarks.md): an OpenSSH sshd and a
// Ceph RADOS Gateway on loopback (test/helpers). Side by side on the same mariabackup stream:
// strongbox's full backup straight to SFTP and to S3 (HTTPS), restic's own sftp and s3 backends,
// the shell pipeline over ssh (`… | age | ssh host 'cat > file'`), and `copy` of the local full
// backup to S3.
import { execFileSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse as parseYaml, stringify } from "yaml";
import { type S3Server, startS3Server } from "../test/helpers/s3server.ts";
import { type SshServer, startSshd } from "../test/helpers/sshd.ts";
import { type BenchEnv, type Command, mariabackupStream, q, resticEnv } from "./tools.ts";

const BUCKET = "bench";

export interface RemoteEnv {
  sshd: SshServer;
  s3: S3Server;
  /** The sandbox config plus the repositories "sftp", "s3" and "s3copy-<rep>". */
  config: string;
  /** `ssh` options reaching the sshd with its pinned host key. */
  sshArgs: string;
  stop(): Promise<void>;
}

export const REMOTE_TOOLS = [
  "strongbox-sftp",
  "strongbox-s3",
  "restic-sftp",
  "restic-s3",
  "shell-ssh",
] as const;
export type RemoteTool = (typeof REMOTE_TOOLS)[number];

/** Starts both servers, adds their repositories to a copy of the sandbox config and initialises them. */
export async function startRemote(e: BenchEnv, reps: number): Promise<RemoteEnv> {
  const sshd = await startSshd();
  let s3: S3Server | undefined;
  try {
    s3 = await startS3Server();
    await s3.createBucket(BUCKET);
    const c = parseYaml(readFileSync(e.config, "utf8")) as { repositories: Record<string, unknown>[] };
    const s3Repo = (name: string, prefix: string) => ({
      name,
      storage: {
        type: "s3",
        endpoint: s3!.httpsEndpoint,
        region: s3!.region,
        bucket: BUCKET,
        prefix,
        forcePathStyle: true,
        credentialsFile: s3!.credentialsFile,
        caFile: s3!.caFile,
      },
    });
    c.repositories.push(
      {
        name: "sftp",
        storage: {
          type: "sftp",
          host: sshd.host,
          port: sshd.port,
          user: sshd.user,
          path: join(sshd.dir, "strongbox"),
          privateKey: sshd.userKeyFile,
          hostKey: sshd.hostKeyLine,
        },
      },
      s3Repo("s3", "strongbox/"),
      ...Array.from({ length: reps }, (_, rep) => s3Repo(`s3copy-${rep}`, `copy-${rep}/`)),
    );
    // Beside the sandbox's config: its relative paths (keys, the local repository) stay right.
    const config = join(dirname(e.config), "remote.yaml");
    writeFileSync(config, stringify(c), { mode: 0o600 });
    for (const repo of ["sftp", "s3", ...Array.from({ length: reps }, (_, rep) => `s3copy-${rep}`)]) {
      execFileSync(e.strongbox, ["--config", config, "init", "--repo", repo], {
        stdio: ["ignore", "ignore", "inherit"],
      });
    }
    mkdirSync(join(sshd.dir, "shell"), { mode: 0o700 });
    // No quoting: restic splits sftp.command on spaces itself (the temp paths have none).
    const sshArgs = [
      `-p ${sshd.port}`,
      `-i ${sshd.userKeyFile}`,
      `-o UserKnownHostsFile=${sshd.knownHostsFile}`,
      "-o StrictHostKeyChecking=yes",
      "-o BatchMode=yes",
    ].join(" ");
    const server = s3;
    return {
      sshd,
      s3: server,
      config,
      sshArgs,
      stop: async () => {
        await sshd.destroy();
        await server.destroy();
      },
    };
  } catch (error) {
    await sshd.destroy();
    await s3?.destroy();
    throw error;
  }
}

function bash(script: string, env?: NodeJS.ProcessEnv): Command {
  return { argv: ["bash", "-c", `set -euo pipefail; ${script}`], env };
}

function resticSftp(r: RemoteEnv, rep: number): string {
  const command = `ssh ${r.sshArgs} ${r.sshd.user}@${r.sshd.host} -s sftp`;
  return `restic -r ${q(`sftp:${r.sshd.user}@${r.sshd.host}:${join(r.sshd.dir, `restic-${rep}`)}`)} -o ${q(`sftp.command=${command}`)}`;
}

function resticS3(r: RemoteEnv, rep: number): { repo: string; env: NodeJS.ProcessEnv } {
  return {
    repo: `restic -r ${q(`s3:${r.s3.httpsEndpoint}/${BUCKET}/restic-${rep}`)} --cacert ${q(r.s3.caFile)}`,
    env: { AWS_ACCESS_KEY_ID: r.s3.accessKeyId, AWS_SECRET_ACCESS_KEY: r.s3.secretAccessKey },
  };
}

/** A fresh restic repository on the server for repetition `rep` (untimed). */
export function initRemoteRestic(
  e: BenchEnv,
  r: RemoteEnv,
  tool: "restic-sftp" | "restic-s3",
  rep: number,
): void {
  const s3 = resticS3(r, rep);
  const base = tool === "restic-sftp" ? resticSftp(r, rep) : s3.repo;
  execFileSync("bash", ["-c", `${base} init --quiet --repository-version 2`], {
    env: { ...process.env, ...resticEnv(e), ...(tool === "restic-s3" ? s3.env : {}) },
    stdio: ["ignore", "ignore", "pipe"],
  });
}

export function remoteBackup(e: BenchEnv, r: RemoteEnv, tool: RemoteTool, rep: number): Command {
  const stream = mariabackupStream(e, tool);
  switch (tool) {
    case "strongbox-sftp":
    case "strongbox-s3":
      return {
        argv: [e.strongbox, "--config", r.config, "backup", "--full", "--repo", tool.slice(10), "--json"],
        probe: true,
      };
    case "restic-sftp":
      return bash(
        `${stream} | ${resticSftp(r, rep)} backup --quiet --stdin --stdin-filename xbstream --host bench`,
        resticEnv(e),
      );
    case "restic-s3": {
      const s3 = resticS3(r, rep);
      return bash(`${stream} | ${s3.repo} backup --quiet --stdin --stdin-filename xbstream --host bench`, {
        ...resticEnv(e),
        ...s3.env,
      });
    }
    case "shell-ssh": {
      const file = join(r.sshd.dir, "shell", `full-${rep}.xbstream.zst.age`);
      return bash(
        `${stream} | zstd -${e.zstdLevel} -T0 -q | age -r ${q(e.recipient)} | ssh ${r.sshArgs} ${r.sshd.user}@${r.sshd.host} ${q(`cat > ${q(file)}`)}`,
      );
    }
  }
}

/** `strongbox copy` of backup `id` from the local repository into a fresh S3 repository. */
export function copyToS3(e: BenchEnv, r: RemoteEnv, id: string, rep: number): Command {
  return {
    argv: [
      e.strongbox,
      "--config",
      r.config,
      "copy",
      id,
      "--from",
      "local",
      "--to",
      `s3copy-${rep}`,
      "--json",
    ],
    probe: true,
  };
}

/** The processes that are the tool itself (for its peak RSS and own CPU). */
export const REMOTE_OWN: Record<RemoteTool, string[]> = {
  "strongbox-sftp": ["node", "MainThread"],
  "strongbox-s3": ["node", "MainThread"],
  "restic-sftp": ["restic"],
  "restic-s3": ["restic"],
  "shell-ssh": ["zstd", "age", "ssh"],
};
