// The backup tools as supervised child processes: mariabackup (physical) and mariadb-dump (logical).
// Credentials reach them only through an unnamed 0600 option file on fd 3; argv carries none.
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { StrongboxError } from "../errors.ts";
import type { Credentials, NodeEndpoint, TlsOptions } from "../galera/connection.ts";
import type { StreamSource } from "../pipeline/stream.ts";
import { explainPrivilegeError } from "../security/privilege-errors.ts";
import { closeOptionFd, OPTION_FILE, type OptionSections, optionFileFd } from "../util/optionfile.ts";
import { TailBuffer } from "../util/proc.ts";

export interface ToolRun extends StreamSource {
  stderr: TailBuffer;
}

export function clientOptions(
  node: NodeEndpoint,
  creds: Credentials,
  tls?: TlsOptions,
): Record<string, string | number | boolean | undefined> {
  return {
    user: creds.user,
    password: creds.password,
    ...(node.socket ? { socket: node.socket } : { host: node.host, port: node.port }),
    ...tlsClientOptions(tls),
  };
}

/** Client TLS for mariabackup, mariadb-dump and mariadb: encrypted, and the server's certificate verified. */
export function tlsClientOptions(tls?: TlsOptions): Record<string, string | boolean | undefined> {
  if (!tls) return {};
  return {
    ssl: true,
    "ssl-ca": tls.ca,
    "ssl-cert": tls.cert,
    "ssl-key": tls.key,
    "ssl-verify-server-cert": tls.ca !== undefined,
  };
}

/** A tool whose credentials come in the unnamed option file `optionFd` (fd 3 of the child). */
export function spawnTool(
  cmd: string,
  args: string[],
  label: string,
  optionFd: number,
  mustSay?: RegExp,
  account?: string,
): ToolRun {
  let child: ReturnType<typeof spawn>;
  try {
    child = spawn(cmd, args, { stdio: ["ignore", "pipe", "pipe", optionFd] });
  } finally {
    closeOptionFd(optionFd);
  }
  const stderr = new TailBuffer(16 * 1024);
  child.stderr!.on("data", (c: Buffer) => stderr.push(c));
  const done = new Promise<void>((resolve, reject) => {
    child.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        new StrongboxError(
          "CHILD_NOT_FOUND",
          `${label}: ${e.code === "ENOENT" ? `command not found (${cmd})` : e.message}`,
          {
            stage: label,
            hint: "install mariadb-backup / mariadb-client, or set backup.mariabackupPath",
            cause: e,
          },
        ),
      ),
    );
    child.once("close", (code, signal) => {
      const ok = code === 0 && (!mustSay || mustSay.test(stderr.text()));
      if (ok) return resolve();
      const how =
        code === null
          ? `was killed by ${signal}`
          : code === 0
            ? "ended without reporting success"
            : `exited with code ${code}`;
      // A missing privilege is named with the GRANT that fixes it, instead of the tool's own words.
      const privilege = signal === null ? explainPrivilegeError(stderr.text(), account) : undefined;
      reject(
        new StrongboxError(
          privilege ? "BACKUP_PRIVILEGES" : "BACKUP_TOOL_FAILED",
          privilege ?? `${label} ${how}: ${stderr.lastLines(3) || "(no output)"}`,
          { stage: label, details: { code, signal, stderrTail: stderr.text().slice(-4000) } },
        ),
      );
    });
  });
  done.catch(() => {});
  return { child, done, stderr };
}

export interface MariabackupOptions {
  path: string;
  node: NodeEndpoint & { defaultsFile?: string | undefined; datadir?: string | undefined };
  creds: Credentials;
  tls?: TlsOptions;
  workDir: string;
  parallel: number;
  incrementalLsn?: number;
  /** 'user'@'host' of the backup account, for error messages about missing privileges. */
  account?: string;
}

export async function startMariabackup(o: MariabackupOptions): Promise<ToolRun & { lsnDir: string }> {
  const sections: OptionSections = {
    mariabackup: { ...clientOptions(o.node, o.creds, o.tls), datadir: o.node.datadir },
  };
  // --defaults-file must come first and only once, so the node's own my.cnf is included from ours.
  const fd = optionFileFd(sections, o.node.defaultsFile ? [o.node.defaultsFile] : []);
  const lsnDir = join(o.workDir, "lsn");
  const args = [
    `--defaults-file=${OPTION_FILE}`,
    "--backup",
    "--stream=xbstream",
    "--galera-info",
    `--target-dir=${join(o.workDir, "target")}`,
    `--extra-lsndir=${lsnDir}`,
    `--parallel=${o.parallel}`,
  ];
  if (o.incrementalLsn !== undefined) args.push(`--incremental-lsn=${o.incrementalLsn}`);
  return { ...spawnTool(o.path, args, "mariabackup", fd, /completed OK!/, o.account), lsnDir };
}

export interface DumpOptions {
  path: string;
  node: NodeEndpoint;
  creds: Credentials;
  tls?: TlsOptions;
  workDir: string;
  account?: string;
}

export async function startDump(o: DumpOptions): Promise<ToolRun> {
  const fd = optionFileFd({ client: clientOptions(o.node, o.creds, o.tls) });
  const args = [
    `--defaults-file=${OPTION_FILE}`,
    "--single-transaction",
    "--routines",
    "--events",
    "--triggers",
    "--all-databases",
    "--master-data=2",
    "--gtid",
    "--hex-blob",
    "--quick",
    "--add-drop-database",
  ];
  return spawnTool(o.path, args, "mariadb-dump", fd, undefined, o.account);
}

export interface PhysicalPosition {
  lsn: { from: number; to: number; last: number };
  serverVersion: string | null;
  binlog: { file: string; position: number } | null;
  gtid: string | null;
  galera: { uuid: string; seqno: number } | null;
}

/** Reads what mariabackup wrote to --extra-lsndir and said on stderr about the Galera position. */
export async function readPhysicalPosition(lsnDir: string, stderr: string): Promise<PhysicalPosition> {
  const kv = (text: string) =>
    new Map(
      text
        .split("\n")
        .map((l) => l.split(" = "))
        .filter((p) => p.length >= 2)
        .map(([k, ...v]) => [k!.trim(), v.join(" = ").trim()]),
    );
  const cp = kv(await readFile(join(lsnDir, "xtrabackup_checkpoints"), "utf8"));
  const info = kv(await readFile(join(lsnDir, "xtrabackup_info"), "utf8").catch(() => ""));
  const binlogPos = info.get("binlog_pos") ?? "";
  const bl = /filename '([^']+)', position '(\d+)'/.exec(binlogPos);
  const gtid = /GTID of the last change '([^']*)'/.exec(binlogPos);
  const galera = /Writing Galera info succeeded with ([0-9a-f-]{36}):(-?\d+)/.exec(stderr);
  return {
    lsn: {
      from: Number(cp.get("from_lsn") ?? 0),
      to: Number(cp.get("to_lsn") ?? 0),
      last: Number(cp.get("last_lsn") ?? 0),
    },
    serverVersion: info.get("server_version") ?? null,
    binlog: bl ? { file: bl[1]!, position: Number(bl[2]) } : null,
    gtid: gtid?.[1] || null,
    galera: galera ? { uuid: galera[1]!, seqno: Number(galera[2]) } : null,
  };
}

/** mariadb-dump --master-data=2 --gtid writes the binlog position near the top, the GTID near the end. */
export function readDumpPosition(head: string): {
  gtid: string | null;
  binlog: { file: string; position: number } | null;
} {
  const gtid = /gtid_slave_pos\s*=\s*'([^']*)'/.exec(head);
  const bl = /MASTER_LOG_FILE='([^']+)',\s*MASTER_LOG_POS=(\d+)/.exec(head);
  return { gtid: gtid?.[1] || null, binlog: bl ? { file: bl[1]!, position: Number(bl[2]) } : null };
}
