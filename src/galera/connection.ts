// Connections to cluster nodes (mysql2). Passwords come from files, never from argv.
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import mysql from "mysql2/promise";
import { StrongboxError } from "../errors.ts";
import { isNetworkError } from "../util/error-kinds.ts";

export interface NodeEndpoint {
  name: string;
  host: string;
  port: number;
  socket?: string | undefined;
}

/** A configured node: where to connect, and where its data and option file are on its host. */
export interface ClusterNode extends NodeEndpoint {
  datadir?: string | undefined;
  defaultsFile?: string | undefined;
  /** How to reach the node's agent (SSH); without one, physical backups run on this host. */
  agent?: NodeAgent | undefined;
}

/** SSH options of a node's agent, paths resolved and durations in milliseconds. */
export interface NodeAgent {
  host: string;
  port: number;
  user: string;
  privateKeyFile?: string | undefined;
  /** The ssh-agent socket whose keys are offered (default without privateKeyFile: $SSH_AUTH_SOCK). */
  agentSocket?: string | undefined;
  passphraseFile?: string | undefined;
  hostKey?: string | readonly string[] | undefined;
  knownHostsFile?: string | undefined;
  command: string;
  connectTimeoutMs: number;
  /**
   * Paths on the node, as written in the config (socket, datadir, defaultsFile of a node with an
   * agent): the agent uses them there; the backup host's own connections never do.
   */
  onNode?: { socket?: string | undefined; datadir?: string | undefined; defaultsFile?: string | undefined };
}

export interface Credentials {
  user: string;
  password?: string | undefined;
}

export interface TlsOptions {
  ca?: string | undefined;
  cert?: string | undefined;
  key?: string | undefined;
}

export type Connection = mysql.Connection;

const TLS_FILES = { ca: "CA", cert: "client certificate", key: "client key" } as const;

/**
 * mysql2 wants certificate contents; the config names files. The server certificate is verified.
 * A file that cannot be read, or a CA that is no certificate, is named before any connection.
 */
function tlsFiles(t: TlsOptions): { ca?: Buffer; cert?: Buffer; key?: Buffer; rejectUnauthorized: boolean } {
  const read = (which: keyof typeof TLS_FILES): Buffer | undefined => {
    const path = t[which];
    if (!path) return undefined;
    try {
      return readFileSync(path);
    } catch (e) {
      throw new StrongboxError(
        "FILE_MISSING",
        `the database TLS ${TLS_FILES[which]} ${path} (cluster.tls.${which}) cannot be read: ${describeErrno(e)}`,
        {
          stage: "connect",
          hint: "check cluster.tls (relative paths start at the config file's directory)",
          cause: e,
        },
      );
    }
  };
  const ca = read("ca");
  if (ca && t.ca) {
    try {
      new X509Certificate(ca);
    } catch (e) {
      throw new StrongboxError(
        "NODE_TLS",
        `the database TLS CA ${t.ca} (cluster.tls.ca) holds no PEM certificate`,
        {
          stage: "connect",
          hint: "point cluster.tls.ca at the CA certificate that signed the servers' certificates",
          cause: e,
        },
      );
    }
  }
  const cert = read("cert");
  const key = read("key");
  return {
    ...(ca ? { ca } : {}),
    ...(cert ? { cert } : {}),
    ...(key ? { key } : {}),
    rejectUnauthorized: true,
  };
}

function describeErrno(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (code === "ENOENT") return "no such file (ENOENT)";
  if (code === "EACCES") return "permission denied (EACCES)";
  return code ?? (e as Error).message;
}

/** What a failed TLS handshake means, in the operator's terms: the CA, or the name in the certificate. */
function tlsProblem(err: Error, node: NodeEndpoint, tls: TlsOptions | undefined): string {
  const m = err.message;
  if (/self[- ]signed|unable to (verify|get local issuer)|certificate signature failure/i.test(m)) {
    return `TLS: the server's certificate is not signed by ${tls?.ca ? `the CA in ${tls.ca}` : "a CA this host trusts (set cluster.tls.ca)"} (${m})`;
  }
  if (/altnames|does not match certificate|hostname/i.test(m)) {
    return `TLS: the server's certificate is not issued for ${node.host} (${m})`;
  }
  if (/expired|not yet valid/i.test(m)) return `TLS: the server's certificate is ${m}`;
  return `TLS handshake failed: ${m}`;
}

export async function connectNode(
  node: NodeEndpoint,
  creds: Credentials,
  options: { timeoutMs?: number; tls?: TlsOptions; multipleStatements?: boolean; socketAuth?: boolean } = {},
): Promise<Connection> {
  const ssl = options.tls ? tlsFiles(options.tls) : undefined;
  try {
    return await mysql.createConnection({
      ...(node.socket ? { socketPath: node.socket } : { host: node.host, port: node.port }),
      user: creds.user,
      password: creds.password ?? "",
      connectTimeout: options.timeoutMs ?? 5000,
      multipleStatements: options.multipleStatements ?? false,
      supportBigNumbers: true,
      bigNumberStrings: true,
      dateStrings: true,
      ...(ssl ? { ssl } : {}),
      // unix_socket authentication: the server checks the peer's OS user; the client sends nothing.
      ...(options.socketAuth ? { authPlugins: { unix_socket: () => () => Buffer.alloc(0) } } : {}),
    });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { sqlMessage?: string };
    const where = node.socket ? `socket ${node.socket}` : `${node.host}:${node.port}`;
    // require_secure_transport=ON and no cluster.tls: the server refuses a plain connection.
    const needsTls = /insecure transport/i.test(err.sqlMessage ?? "");
    const tls = needsTls || /SSL|TLS|CERT|certificate/i.test(`${err.code ?? ""} ${err.message}`);
    const why = err.sqlMessage ?? (tls ? tlsProblem(err, node, options.tls) : (err.code ?? err.message));
    // ENOENT: the socket file is missing, so no server listens there either.
    const unreachable = isNetworkError(err) || err.code === "ENOENT";
    throw new StrongboxError(
      unreachable ? "NODE_UNREACHABLE" : tls ? "NODE_TLS" : "NODE_CONNECT_FAILED",
      `cannot connect to node ${node.name} (${where}) as ${creds.user}: ${why}`,
      {
        stage: "connect",
        hint: unreachable
          ? "is mariadbd running there?"
          : needsTls
            ? "the server requires TLS: set cluster.tls.ca and reach the node by host and port"
            : tls
              ? "check cluster.tls: the CA must have signed the server's certificate, issued for this host"
              : options.tls || node.socket
                ? "check the user and password file"
                : "check the user and password file; an account that REQUIREs SSL needs cluster.tls",
        cause: e,
      },
    );
  }
}

/**
 * Runs `use` on `kept`, a connection opened earlier, if it still works; else on a new one from
 * `connect` (mysql2 marks the errors of a lost connection `fatal`; any other error is `use`'s own
 * and is thrown). The connection used is ended either way.
 */
export async function withConnection<T>(
  kept: Connection | undefined,
  connect: () => Promise<Connection>,
  use: (conn: Connection) => Promise<T>,
): Promise<T> {
  const run = async (conn: Connection) => {
    try {
      return await use(conn);
    } finally {
      await conn.end().catch(() => {});
    }
  };
  if (!kept) return run(await connect());
  return run(kept).catch(async (e: unknown) => {
    if (!(e as { fatal?: boolean }).fatal) throw e;
    return run(await connect());
  });
}

export async function queryRows<T = Record<string, unknown>>(
  conn: Connection,
  sql: string,
  params: unknown[] = [],
): Promise<T[]> {
  const [rows] = await conn.query(sql, params);
  return rows as T[];
}

/** SHOW GLOBAL STATUS/VARIABLES LIKE pattern → name(lower case) → value. */
export async function showGlobal(
  conn: Connection,
  kind: "STATUS" | "VARIABLES",
  like: string,
): Promise<Map<string, string>> {
  const rows = await queryRows<{ Variable_name: string; Value: string }>(conn, `SHOW GLOBAL ${kind} LIKE ?`, [
    like,
  ]);
  return new Map(rows.map((r) => [r.Variable_name.toLowerCase(), String(r.Value)]));
}
