// user grants: the exact minimal GRANT statements. user create: the backup account, made through
// the admin connection, with a random password in a 0600 file (or unix_socket authentication).
import { existsSync } from "node:fs";
import { userInfo } from "node:os";
import { resolve } from "node:path";
import { clusterNodes, clusterTls, credentialsFor } from "../config/context.ts";
import { defaultConfigPath, type LoadedConfig, loadConfig } from "../config/load.ts";
import { StrongboxError, UsageError } from "../errors.ts";
import type { ClusterNode } from "../galera/connection.ts";
import { type Connection, connectNode } from "../galera/connection.ts";
import { type AccountResult, ensureBackupAccount } from "../security/account.ts";
import {
  accountName,
  type BackupMethod,
  grantStatement,
  type MethodChoice,
  methodsOf,
  NOT_NEEDED,
  requiredPrivileges,
} from "../security/grants.ts";
import type { CommandResult, GlobalOptions } from "../terminal/options.ts";
import { type Output, reply } from "../terminal/output.ts";

export interface UserGrantsOptions {
  method?: string;
  user?: string;
  host?: string[];
}

export interface UserCreateOptions extends UserGrantsOptions {
  socketAuth?: boolean;
  passwordFile?: string;
}

const DEFAULT_USER = "strongbox_backup";

function parseMethod(v: string | undefined, loaded: LoadedConfig | undefined): BackupMethod[] {
  if (v === undefined) return [...(loaded?.config.security?.backupMethods ?? ["physical", "logical"])];
  const choices = v.split(",").map((x) => x.trim());
  for (const c of choices) {
    if (c !== "physical" && c !== "logical" && c !== "both" && c !== "binlog") {
      throw new UsageError(
        `--method must be physical, logical, both or binlog, or a list of them (got "${v}")`,
      );
    }
  }
  return methodsOf(choices.flatMap((c) => methodsOf(c as MethodChoice)));
}

/** The account host(s) the nodes see this host connect as: localhost for sockets, the loopback address for TCP. */
export function accountHostsFor(nodes: readonly ClusterNode[]): string[] | undefined {
  const hosts = new Set<string>();
  for (const n of nodes) {
    // A node's agent runs mariabackup there, through the node's own socket.
    if (n.agent?.onNode?.socket) hosts.add("localhost");
    if (n.socket) hosts.add("localhost");
    else if (n.host === "localhost") {
      hosts.add("localhost");
      hosts.add("127.0.0.1");
    } else if (/^127\.\d+\.\d+\.\d+$/.test(n.host) || n.host === "::1") hosts.add(n.host);
    else return undefined;
  }
  return [...hosts];
}

/** The config when there is one: explicit --config must load; the default path only if it exists. */
async function optionalConfig(g: GlobalOptions): Promise<LoadedConfig | undefined> {
  if (g.config || existsSync(resolve(defaultConfigPath()))) return loadConfig(g.config);
  return undefined;
}

function hostsOf(o: UserGrantsOptions, loaded: LoadedConfig | undefined, required: boolean): string[] {
  if (o.host && o.host.length > 0) return [...new Set(o.host)];
  const derived = loaded ? accountHostsFor(clusterNodes(loaded)) : ["localhost"];
  if (derived) return derived;
  if (!required) return ["BACKUP_HOST"];
  throw new UsageError(
    "some nodes are remote: pass --host with the address the nodes see this backup host as",
    {
      hint: "e.g. --host backup1.example or --host '%.backup.example'",
    },
  );
}

export async function userGrants(
  g: GlobalOptions,
  o: UserGrantsOptions,
  out: Output,
): Promise<CommandResult> {
  const loaded = await optionalConfig(g);
  const methods = parseMethod(o.method, loaded);
  const user = o.user ?? loaded?.config.cluster.credentials.backup.user ?? DEFAULT_USER;
  const hosts = hostsOf(o, loaded, false);
  const needs = requiredPrivileges(methods);
  const statements = hosts.map((h) => grantStatement(methods, user, h));
  const width = Math.max(...needs.map((n) => n.privilege.length));
  return reply(
    out,
    {
      user,
      hosts,
      methods,
      privileges: needs.map((n) => ({ privilege: n.privilege, methods: n.methods, why: n.why })),
      statements,
      notNeeded: NOT_NEEDED,
    },
    () =>
      [
        `-- Minimal grants of the Strongbox backup account (MariaDB 10.11), for ${methods.join(" and ")} backups:`,
        ...needs.map((n) => `--   ${n.privilege.padEnd(width)}  ${n.why}`),
        "-- Create the account first (strongbox user create does both, with a random password in a 0600 file):",
        ...hosts.map((h) => `--   CREATE USER ${accountName(user, h)} IDENTIFIED BY '…';`),
        ...statements,
      ].join("\n"),
  );
}

/** An admin connection: cluster.credentials.admin, else unix_socket as this OS user over a node's socket. */
async function adminConnection(
  loaded: LoadedConfig,
): Promise<{ conn: Connection; node: string; as: string }> {
  const admin = await credentialsFor(loaded, "admin");
  const osUser = userInfo().username;
  const nodes = clusterNodes(loaded).filter((n) => admin || n.socket);
  if (nodes.length === 0) {
    throw new StrongboxError(
      "NO_ADMIN",
      "no admin connection: cluster.credentials.admin is not set and no node has a socket",
      {
        hint: "set cluster.credentials.admin (needs CREATE USER and GRANT OPTION), or run this on a node as its OS root",
      },
    );
  }
  let last: unknown;
  for (const node of nodes) {
    try {
      const conn = await connectNode(node, admin ?? { user: osUser }, {
        tls: clusterTls(loaded),
        socketAuth: admin === undefined,
      });
      return { conn, node: node.name, as: admin ? admin.user : `${osUser} (unix_socket)` };
    } catch (e) {
      last = e;
    }
  }
  throw last;
}

function describe(r: AccountResult, configured: string | undefined): string {
  const lines: string[] = [];
  for (const h of r.hosts) {
    if (h.created) {
      lines.push(
        `created ${h.account} (${h.auth === "unix_socket" ? "unix_socket authentication" : `password in ${r.passwordFile}, mode 0600`})`,
        `  granted ${h.granted.join(", ")} ON *.*`,
      );
      continue;
    }
    lines.push(`${h.account} exists already (${h.auth} authentication; password unchanged)`);
    lines.push(
      h.granted.length > 0
        ? `  added the missing grants ${h.granted.join(", ")} ON *.*`
        : `  has every grant ${r.methods.join(" and ")} backups need`,
    );
    if (h.extra.length > 0) {
      const global = h.extra.filter((x) => x.on === "*.*").map((x) => x.privilege);
      lines.push(
        `  beyond the minimum (left as they are): ${h.extra.map((x) => (x.on === "*.*" ? x.privilege : `${x.privilege} ON ${x.on}`)).join(", ")}`,
      );
      if (global.length > 0)
        lines.push(`  to drop them: REVOKE ${global.join(", ")} ON *.* FROM ${h.account};`);
    }
  }
  if (r.passwordFile && configured !== r.passwordFile) {
    lines.push(`set cluster.credentials.backup.passwordFile: ${r.passwordFile} in the config`);
  }
  return lines.join("\n");
}

export async function userCreate(
  g: GlobalOptions,
  o: UserCreateOptions,
  out: Output,
): Promise<CommandResult> {
  const loaded = await loadConfig(g.config);
  const methods = parseMethod(o.method, loaded);
  const backup = loaded.config.cluster.credentials.backup;
  const user = o.user ?? backup.user;
  const hosts = hostsOf(o, loaded, true);
  if (o.socketAuth && o.passwordFile)
    throw new UsageError("choose --socket-auth or --password-file, not both");
  const configured = backup.passwordFile ? loaded.resolvePath(backup.passwordFile) : undefined;
  let passwordFile: string | undefined;
  if (!o.socketAuth) {
    passwordFile = o.passwordFile ? resolve(o.passwordFile) : configured;
    if (!passwordFile) {
      throw new UsageError("no password file: cluster.credentials.backup.passwordFile is not set", {
        hint: "set it, pass --password-file FILE, or use --socket-auth",
      });
    }
  }
  if (o.socketAuth && hosts.some((h) => h !== "localhost")) {
    throw new UsageError(
      `unix_socket authentication works only over a socket (account host localhost), not ${hosts.join(", ")}`,
    );
  }
  const { conn, node, as } = await adminConnection(loaded);
  try {
    const r = await ensureBackupAccount(conn, {
      user,
      hosts,
      methods,
      auth: passwordFile ? { type: "password", passwordFile } : { type: "unix_socket" },
      requireSsl: loaded.config.cluster.tls !== undefined,
    });
    const notes: string[] = [];
    if (o.socketAuth && user !== userInfo().username) {
      notes.push(`unix_socket lets in only the OS user named ${user}: run strongbox as that user`);
    }
    if (o.socketAuth && backup.passwordFile) {
      notes.push(
        "remove cluster.credentials.backup.passwordFile from the config: the account has no password",
      );
    }
    return reply(out, { ...r, node, admin: as, notes }, () =>
      [`on ${node} as ${as}:`, describe(r, configured), ...notes.map((n) => `note: ${n}`)].join("\n"),
    );
  } finally {
    await conn.end().catch(() => {});
  }
}
