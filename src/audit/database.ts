// What the nodes say: the backup and admin accounts' grants, TLS, network exposure, Galera
// replication/IST/SST encryption and InnoDB encryption at rest. Read with SHOW GRANTS and
// SHOW VARIABLES, which need no privilege.
import { clusterNodes, clusterTls, credentialsFor } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { errorMessage } from "../errors.ts";
import { type Connection, type Credentials, connectNode, queryRows } from "../galera/connection.ts";
import { parseProviderOptions, sstEncrypted } from "../galera/tls.ts";
import {
  type BackupMethod,
  compareGrants,
  parseGrants,
  showOwnGrants,
  worstSeverity,
} from "../security/grants.ts";
import { readCnfSection } from "../util/cnf.ts";
import { type AuditFinding, isLoopbackHost, isPrivateHost } from "./types.ts";

const VARIABLES = [
  "version",
  "have_ssl",
  "require_secure_transport",
  "bind_address",
  "wsrep_on",
  "wsrep_provider_options",
  "wsrep_sst_method",
  "wsrep_node_address",
  "wsrep_cluster_address",
  "wsrep_ssl_mode",
  "innodb_encrypt_tables",
  "innodb_encrypt_log",
  "encrypt_binlog",
  "encrypt_tmp_files",
  "aria_encrypt_tables",
];

export interface NodeFacts {
  name: string;
  /** How Strongbox reaches it: a socket, TCP on loopback, or TCP over the network. */
  reach: "socket" | "loopback" | "network";
  vars: Map<string, string>;
  sslCipher: string;
  grants?: string[];
  defaultsFile?: string | undefined;
}

async function readFacts(conn: Connection): Promise<{ vars: Map<string, string>; sslCipher: string }> {
  const rows = await queryRows<{ Variable_name: string; Value: string }>(
    conn,
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${VARIABLES.map(() => "?").join(",")})`,
    VARIABLES,
  );
  const vars = new Map(rows.map((r) => [r.Variable_name.toLowerCase(), String(r.Value ?? "")]));
  const [ssl] = await queryRows<{ Value: string }>(conn, "SHOW SESSION STATUS LIKE 'Ssl_cipher'");
  return { vars, sslCipher: String(ssl?.Value ?? "") };
}

/** Connects to every node with the backup account; unreachable ones become findings. */
export async function gatherNodes(
  loaded: LoadedConfig,
  findings: AuditFinding[],
): Promise<{ facts: NodeFacts[]; creds: Credentials | undefined }> {
  let creds: Credentials | undefined;
  try {
    creds = await credentialsFor(loaded, "backup");
  } catch (e) {
    findings.push({
      id: "grants-unchecked",
      severity: "medium",
      practice: "least-privilege",
      title: "the backup account's credentials cannot be read, so nothing on the nodes was checked",
      evidence: errorMessage(e),
      fix: "fix the password file (mode 0600), then run audit again",
    });
    return { facts: [], creds: undefined };
  }
  const facts: NodeFacts[] = [];
  const tls = clusterTls(loaded);
  for (const node of clusterNodes(loaded)) {
    let conn: Connection | undefined;
    try {
      conn = await connectNode(node, creds!, { tls, timeoutMs: 5000 });
      const f = await readFacts(conn);
      facts.push({
        name: node.name,
        reach: node.socket ? "socket" : isLoopbackHost(node.host) ? "loopback" : "network",
        ...f,
        grants: await showOwnGrants(conn),
        defaultsFile: node.defaultsFile,
      });
    } catch (e) {
      findings.push({
        id: "node-unreachable",
        severity: "medium",
        practice: "monitoring",
        title: `node ${node.name} could not be checked`,
        evidence: errorMessage(e),
        fix: "start the node or correct its address; the checks of its settings were skipped",
        subject: node.name,
      });
    } finally {
      await conn?.end().catch(() => {});
    }
  }
  return { facts, creds };
}

export function grantFindings(facts: NodeFacts[], methods: BackupMethod[], user: string): AuditFinding[] {
  const first = facts.find((f) => f.grants);
  if (!first?.grants) return [];
  const cmp = compareGrants(parseGrants(first.grants), methods);
  const findings: AuditFinding[] = [];
  const shown = first.grants.map((g) => g.replace(/ IDENTIFIED BY PASSWORD '[^']*'/, "")).join(" | ");
  if (cmp.extra.length > 0) {
    const global = cmp.extra.filter((x) => x.on === "*.*").map((x) => x.privilege);
    findings.push({
      id: "grants-excess",
      severity: worstSeverity(cmp.extra.map((x) => x.risk)) ?? "low",
      practice: "least-privilege",
      title: `the backup account ${user} has privileges beyond what ${methods.join(" and ")} backups need`,
      evidence: `beyond the minimum: ${cmp.extra.map((x) => `${x.privilege}${x.on && x.on !== "*.*" ? ` ON ${x.on}` : ""} (${x.risk})`).join(", ")}; SHOW GRANTS on ${first.name}: ${shown}`,
      fix: global.includes("ALL")
        ? "REVOKE ALL PRIVILEGES, GRANT OPTION FROM the account, then run the GRANT that strongbox user grants prints"
        : global.length > 0
          ? `REVOKE ${global.join(", ")} ON *.* FROM the account (strongbox user grants prints the minimum)`
          : "revoke the database- and table-level grants and roles listed (strongbox user grants prints the minimum)",
    });
  }
  if (cmp.missing.length > 0) {
    findings.push({
      id: "grants-missing",
      severity: "high",
      practice: "least-privilege",
      title: `the backup account ${user} lacks privileges that ${methods.join(" and ")} backups need`,
      evidence: `missing: ${cmp.missing.join(", ")}${cmp.missing.includes("TRIGGER") ? " (without TRIGGER, triggers are silently left out)" : ""}; SHOW GRANTS on ${first.name}: ${shown}`,
      fix: `GRANT ${cmp.missing.join(", ")} ON *.* TO the account, or strongbox user create`,
    });
  }
  return findings;
}

export async function adminFindings(loaded: LoadedConfig): Promise<AuditFinding[]> {
  let admin: Credentials | undefined;
  try {
    admin = await credentialsFor(loaded, "admin");
  } catch {
    return []; // Reported by the file checks.
  }
  if (!admin) return [];
  const tls = clusterTls(loaded);
  for (const node of clusterNodes(loaded)) {
    let conn: Connection | undefined;
    try {
      conn = await connectNode(node, admin, { tls, timeoutMs: 5000 });
      const grants = parseGrants(await showOwnGrants(conn));
      const extra = new Set<string>();
      for (const g of grants) {
        if (g.grantOption) extra.add("GRANT OPTION");
        for (const p of g.privileges.map((x) => (x === "ALL" ? "ALL PRIVILEGES" : x))) {
          if (p !== "USAGE" && p !== "SUPER") extra.add(g.on === "*.*" ? p : `${p} ON ${g.on}`);
        }
        for (const r of g.roles) extra.add(`role ${r}`);
      }
      if (extra.size === 0) return [];
      return [
        {
          id: "admin-excess",
          severity: "medium",
          practice: "least-privilege",
          title: `the admin account ${admin.user} on the backup host can do far more than wsrep_desync`,
          evidence: `beyond SUPER: ${[...extra].join(", ")} (checked on ${node.name})`,
          fix: "give the backup host an admin account with only SUPER (SET GLOBAL wsrep_desync); keep a broader one, for restore --into-node, on the restore host",
        },
      ];
    } catch {
      // Tried on the next node; unreachable nodes are reported once by gatherNodes.
    } finally {
      await conn?.end().catch(() => {});
    }
  }
  return [];
}

function list(facts: NodeFacts[], pick: (f: NodeFacts) => string | undefined): string {
  return facts
    .map((f) => {
      const v = pick(f);
      return v === undefined ? undefined : `${f.name}: ${v}`;
    })
    .filter((x) => x !== undefined)
    .join("; ");
}

/** Addresses a node listens on for clients: all interfaces, public, private, or loopback only. */
function bindExposure(bind: string): "loopback" | "private" | "public" {
  const addrs = bind
    .split(",")
    .map((a) => a.trim())
    .filter((a) => a !== "");
  if (addrs.length === 0 || addrs.some((a) => a === "*" || a === "0.0.0.0" || a === "::")) return "public";
  if (addrs.every(isLoopbackHost)) return "loopback";
  return addrs.every((a) => isLoopbackHost(a) || isPrivateHost(a)) ? "private" : "public";
}

/** Host part of "tcp://1.2.3.4:4567", "1.2.3.4:4567", "[::1]:4567". */
function hostOf(addr: string): string {
  const a = addr.replace(/^\w+:\/\//, "");
  const v6 = /^\[([^\]]+)\]/.exec(a);
  if (v6) return v6[1]!;
  return a.split(":")[0] ?? a;
}

export async function nodeSettingFindings(loaded: LoadedConfig, facts: NodeFacts[]): Promise<AuditFinding[]> {
  const findings: AuditFinding[] = [];
  const tlsConfigured = loaded.config.cluster.tls !== undefined;
  const nodes = loaded.config.cluster.nodes;
  const reaches = nodes.map((n) => (n.socket ? "socket" : isLoopbackHost(n.host) ? "loopback" : "network"));

  // ---- TLS to the database ----
  if (!tlsConfigured) {
    const remote = reaches.includes("network");
    findings.push({
      id: "db-tls-off",
      severity: remote ? "high" : "low",
      practice: "encryption",
      title: "Strongbox, mariabackup and mariadb-dump talk to the nodes without TLS",
      evidence: `cluster.tls is not set; nodes reached by ${nodes.map((n, i) => `${n.name}: ${reaches[i]}`).join(", ")}${remote ? " — passwords and the backup stream cross the network in clear" : " (local only)"}`,
      fix: "set cluster.tls (ca, and cert/key for client certificates) and reach the nodes by host and port",
    });
  } else if (!loaded.config.cluster.tls?.ca) {
    findings.push({
      id: "db-tls-unverified",
      severity: "medium",
      practice: "encryption",
      title:
        "TLS to the nodes without a CA: mariabackup and mariadb-dump do not verify the server's certificate",
      evidence: "cluster.tls has no ca",
      fix: "set cluster.tls.ca to the CA that signed the nodes' certificates",
    });
  }
  const noSsl = facts.filter((f) => f.vars.get("have_ssl") !== "YES");
  if (noSsl.length > 0) {
    findings.push({
      id: "db-tls-unavailable",
      severity: reaches.includes("network") ? "high" : "medium",
      practice: "encryption",
      title: "nodes without TLS configured: no client can encrypt its connection",
      evidence: list(noSsl, (f) => `have_ssl=${f.vars.get("have_ssl") ?? "?"}`),
      fix: "set ssl_cert, ssl_key and ssl_ca in [mysqld] of every node and restart it",
    });
  }

  // ---- network exposure ----
  const exposed = facts.filter((f) => bindExposure(f.vars.get("bind_address") ?? "") !== "loopback");
  const publicBind = exposed.filter((f) => bindExposure(f.vars.get("bind_address") ?? "") === "public");
  if (exposed.length > 0) {
    findings.push({
      id: "db-bind-exposed",
      severity: publicBind.length > 0 ? "medium" : "low",
      practice: "least-privilege",
      title:
        publicBind.length > 0
          ? "nodes listen on all interfaces or public addresses"
          : "nodes listen on private network addresses",
      evidence: list(exposed, (f) => `bind_address=${f.vars.get("bind_address") || "(all)"}`),
      fix: "bind_address to the private interface the applications and the backup host use; firewall port 3306 to those hosts",
    });
  }
  const plain = facts.filter((f) => f.vars.get("require_secure_transport") !== "ON");
  if (plain.length > 0) {
    const reachable = plain.some((f) => bindExposure(f.vars.get("bind_address") ?? "") !== "loopback");
    findings.push({
      id: "db-secure-transport-off",
      severity: reachable ? "medium" : "low",
      practice: "encryption",
      title: "nodes accept unencrypted client connections",
      evidence: list(
        plain,
        (f) =>
          `require_secure_transport=${f.vars.get("require_secure_transport") ?? "?"}, bind_address=${f.vars.get("bind_address") || "(all)"}`,
      ),
      fix: "require_secure_transport=ON (with TLS configured) so no account can log in in clear over TCP",
    });
  }

  // ---- Galera replication, IST and SST ----
  const galera = facts.filter((f) => f.vars.get("wsrep_on") === "ON");
  if (galera.length > 0) {
    const unencrypted: string[] = [];
    const istPlain: string[] = [];
    let remote = false;
    for (const f of galera) {
      const opts = parseProviderOptions(f.vars.get("wsrep_provider_options") ?? "");
      const listen = opts.get("gmcast.listen_addr") ?? "";
      const ssl =
        /^(yes|true|1|on)$/i.test(opts.get("socket.ssl") ?? "") ||
        (opts.get("socket.ssl_cert") ?? "") !== "" ||
        listen.startsWith("ssl://") ||
        /^(SERVER|SERVER_X509|PROVIDER)$/i.test(f.vars.get("wsrep_ssl_mode") ?? "");
      const ist = opts.get("ist.recv_addr") ?? "";
      const addrs = [listen, f.vars.get("wsrep_node_address") ?? "", ist].filter((a) => a !== "").map(hostOf);
      if (addrs.some((a) => a !== "" && !isLoopbackHost(a) && a !== "0.0.0.0")) remote = true;
      if (addrs.includes("0.0.0.0")) remote = true;
      if (!ssl) unencrypted.push(`${f.name}: gmcast.listen_addr=${listen || "?"}, no socket.ssl_cert`);
      // IST uses the provider's socket.ssl settings, unless its address forces plain TCP.
      if (!ssl || ist.startsWith("tcp://"))
        istPlain.push(`${f.name}: ist.recv_addr=${ist || "(default)"}${ssl ? "" : ", no socket.ssl_cert"}`);
      // socket.dynamic accepts plain-text peers beside TLS ones: right while rolling TLS in, not after.
      if (ssl && /^(yes|true|1|on)$/i.test(opts.get("socket.dynamic") ?? ""))
        unencrypted.push(`${f.name}: socket.dynamic=YES (peers without TLS are still accepted)`);
    }
    if (unencrypted.length > 0) {
      findings.push({
        id: "galera-replication-plain",
        severity: remote ? "high" : "low",
        practice: "encryption",
        title: "Galera replication (gcomm: every write set) travels unencrypted between the nodes",
        evidence: `${unencrypted.join("; ")}${remote ? "" : " (loopback only)"}`,
        fix: 'on every node, one at a time (docs/galera-tls.md): wsrep_provider_options="…;socket.ssl_cert=/etc/mysql/tls/node-cert.pem;socket.ssl_key=/etc/mysql/tls/node-key.pem;socket.ssl_ca=/etc/mysql/tls/ca.pem", then socket.dynamic=NO once all nodes have it',
      });
    }
    if (istPlain.length > 0) {
      findings.push({
        id: "galera-ist-plain",
        severity: remote ? "high" : "low",
        practice: "encryption",
        title: "incremental state transfers (IST: the write sets a rejoining node missed) travel unencrypted",
        evidence: `${istPlain.join("; ")}${remote ? "" : " (loopback only)"}`,
        fix: "IST uses the same socket.ssl_cert/socket.ssl_key/socket.ssl_ca in wsrep_provider_options; give ist.recv_addr no tcp:// scheme",
      });
    }
    const sstPlain: string[] = [];
    const sstUnknown: string[] = [];
    for (const f of galera) {
      if (!f.defaultsFile) {
        sstUnknown.push(`${f.name}: no defaultsFile in the config`);
        continue;
      }
      const sst = await readCnfSection(loaded.resolvePath(f.defaultsFile), "sst");
      if (!sst) {
        sstUnknown.push(`${f.name}: ${f.defaultsFile} cannot be read here`);
        continue;
      }
      const e = sstEncrypted(sst);
      if (!e.encrypted)
        sstPlain.push(`${f.name}: wsrep_sst_method=${f.vars.get("wsrep_sst_method") ?? "?"}, ${e.how}`);
    }
    if (sstPlain.length > 0) {
      findings.push({
        id: "galera-sst-plain",
        severity: remote ? "high" : "low",
        practice: "encryption",
        title: "state snapshot transfers (a full copy of the data) travel unencrypted",
        evidence: `${sstPlain.join("; ")}${remote ? "" : " (loopback only)"}`,
        fix: "in [sst] of every node: ssl-mode=VERIFY_IDENTITY, ssl-ca=/etc/mysql/tls/ca.pem, ssl-cert=/etc/mysql/tls/node-cert.pem, ssl-key=/etc/mysql/tls/node-key.pem (the SST script then refuses to send in clear)",
      });
    }
    if (sstUnknown.length > 0) {
      findings.push({
        id: "galera-sst-unverified",
        severity: "info",
        practice: "encryption",
        title: "SST encryption could not be checked: the [sst] section is not visible through SQL",
        evidence: sstUnknown.join("; "),
        fix: "set cluster.nodes[].defaultsFile to each node's my.cnf where strongbox runs on the node, or check [sst] by hand",
      });
    }
  }

  // ---- InnoDB encryption at rest ----
  const clear = facts.filter((f) => !/^(ON|FORCE)$/i.test(f.vars.get("innodb_encrypt_tables") ?? "OFF"));
  if (clear.length > 0) {
    findings.push({
      id: "innodb-encryption-off",
      severity: "medium",
      practice: "encryption",
      title: "data files on the database hosts are not encrypted at rest",
      evidence: list(clear, (f) =>
        [
          "innodb_encrypt_tables",
          "innodb_encrypt_log",
          "encrypt_binlog",
          "encrypt_tmp_files",
          "aria_encrypt_tables",
        ]
          .map((v) => `${v}=${f.vars.get(v) ?? "?"}`)
          .join(", "),
      ),
      fix: "load file_key_management (or a KMS plugin) and set innodb_encrypt_tables=ON, innodb_encrypt_log=ON, encrypt_binlog=ON; keep the key file off the backups",
    });
  }
  return findings;
}
