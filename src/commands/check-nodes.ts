// check, the node half: every node reachable and Synced, the backup account's grants, mariabackup's
// version against each server's, the binary log settings point-in-time recovery needs, and the
// agents of nodes that have one (an SSH connection and the protocol handshake).
import { greetAgent } from "../backup/remote.ts";
import { clusterNodes, clusterTls, credentialsFor } from "../config/context.ts";
import type { LoadedConfig } from "../config/load.ts";
import { errorMessage } from "../errors.ts";
import { type ClusterNode, type Connection, type Credentials, queryRows } from "../galera/connection.ts";
import { isEligible, probeNodeKeepingConnection } from "../galera/health.ts";
import { compareGrants, methodsOf, parseGrants, showOwnGrants } from "../security/grants.ts";
import { run } from "../util/proc.ts";
import { VERSION } from "../version.ts";
import type { CheckItem } from "./check-items.ts";

const VARIABLES = ["version", "log_bin", "log_slave_updates", "wsrep_on", "wsrep_gtid_mode"];

export interface NodeFacts {
  node: ClusterNode;
  vars: Map<string, string>;
}

async function readVariables(conn: Connection): Promise<Map<string, string>> {
  const rows = await queryRows<{ Variable_name: string; Value: string }>(
    conn,
    `SHOW GLOBAL VARIABLES WHERE Variable_name IN (${VARIABLES.map(() => "?").join(",")})`,
    VARIABLES,
  );
  return new Map(rows.map((r) => [r.Variable_name.toLowerCase(), String(r.Value ?? "")]));
}

/** "10.11.6-MariaDB-0+deb12u1-log" → [10, 11, 6]. */
export function versionOf(text: string): [number, number, number] | undefined {
  const m = /(\d+)\.(\d+)\.(\d+)/.exec(text);
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : undefined;
}

/**
 * mariabackup must come from the server's own release series: another major.minor cannot read
 * (or prepare) the server's redo log format. An older patch release of the same series usually
 * works, but MariaDB fixes backup bugs in patch releases: a warning.
 */
export function compareToolVersion(
  tool: string,
  server: string,
): { status: "ok" | "warn" | "fail"; why: string } {
  const t = versionOf(tool);
  const s = versionOf(server);
  if (!t || !s) return { status: "warn", why: `cannot compare "${tool}" with "${server}"` };
  const show = (v: number[]) => v.join(".");
  if (t[0] !== s[0] || t[1] !== s[1]) {
    return {
      status: "fail",
      why: `mariabackup ${show(t)} cannot back up a ${show(s)} server (another release series)`,
    };
  }
  if (t[2] < s[2]) {
    return { status: "warn", why: `mariabackup ${show(t)} is older than the server ${show(s)}` };
  }
  return { status: "ok", why: `mariabackup ${show(t)} matches the server ${show(s)}` };
}

async function mariabackupVersion(path: string): Promise<string> {
  // mariabackup prints its version on stderr ("mariabackup based on MariaDB server 10.11.6-MariaDB …").
  const r = await run(path, ["--version"], { timeoutMs: 30_000 });
  const text = `${r.stdout}\n${r.stderr}`;
  const v = versionOf(/based on MariaDB server (\S+)/.exec(text)?.[1] ?? text);
  if (!v) throw new Error(`${path} --version printed no version`);
  return v.join(".");
}

/** log_bin, log_slave_updates and (in a cluster) wsrep_gtid_mode: a failure when archiving is on. */
export function binlogItem(f: NodeFacts, required: boolean): CheckItem {
  const v = f.vars;
  const wrong: string[] = [];
  if (v.get("log_bin") !== "ON") wrong.push(`log_bin=${v.get("log_bin") ?? "?"}`);
  if (v.get("log_slave_updates") !== "ON")
    wrong.push(`log_slave_updates=${v.get("log_slave_updates") ?? "?"}`);
  if (v.get("wsrep_on") === "ON" && v.get("wsrep_gtid_mode") !== "ON") {
    wrong.push(`wsrep_gtid_mode=${v.get("wsrep_gtid_mode") ?? "?"}`);
  }
  const item = `binlog ${f.node.name}`;
  if (wrong.length === 0) {
    return { item, status: "ok", detail: "log_bin, log_slave_updates and wsrep_gtid_mode are ON" };
  }
  return {
    item,
    status: required ? "fail" : "warn",
    detail: `${wrong.join(", ")}: ${required ? "binlog archiving" : "point-in-time recovery"} needs them ON`,
    hint: "set log_bin, log_slave_updates=ON and wsrep_gtid_mode=ON (with gtid_domain_id, server_id) in the node's my.cnf and restart it",
  };
}

export async function checkNodes(loaded: LoadedConfig): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  let creds: Credentials | undefined;
  try {
    creds = await credentialsFor(loaded, "backup");
  } catch (e) {
    return [
      {
        item: "credentials",
        status: "fail",
        detail: `the backup account's password cannot be read: ${errorMessage(e)}`,
        hint: "fix cluster.credentials.backup.passwordFile (mode 0600)",
      },
    ];
  }
  const tls = clusterTls(loaded);
  const facts: NodeFacts[] = [];
  let grants: { node: string; lines: string[] } | undefined;
  for (const node of clusterNodes(loaded)) {
    const { health, conn } = await probeNodeKeepingConnection(node, creds!, { tls, timeoutMs: 5000 });
    if (!conn) {
      items.push({
        item: `node ${node.name}`,
        status: "fail",
        detail: `unreachable: ${health.error ?? "no answer"}`,
        hint: "start the node, or correct its address and the backup account's password",
      });
      continue;
    }
    try {
      const vars = await readVariables(conn);
      if (!grants) grants = { node: node.name, lines: await showOwnGrants(conn) };
      facts.push({ node, vars });
      const state = `${health.clusterStatus}/${health.state}, cluster size ${health.clusterSize}, ${vars.get("version") ?? "?"}`;
      items.push(
        isEligible(health)
          ? { item: `node ${node.name}`, status: "ok", detail: state }
          : {
              item: `node ${node.name}`,
              status: "warn",
              detail: `${state}: not a donor until it is Synced in a Primary component`,
            },
      );
    } catch (e) {
      items.push({ item: `node ${node.name}`, status: "fail", detail: errorMessage(e) });
    } finally {
      await conn.end().catch(() => {});
    }
  }
  const methods = methodsOf(loaded.config.security?.backupMethods ?? ["physical", "logical"]);
  const user = loaded.config.cluster.credentials.backup.user;
  if (grants) items.push(grantsItem(grants, methods, user));
  const archiving = loaded.config.binlog !== undefined || loaded.config.schedule?.binlog !== undefined;
  for (const f of facts) items.push(binlogItem(f, archiving));
  if (methods.includes("physical")) items.push(...(await toolItems(loaded, facts)));
  return items;
}

function grantsItem(
  grants: { node: string; lines: string[] },
  methods: ReturnType<typeof methodsOf>,
  user: string,
): CheckItem {
  const cmp = compareGrants(parseGrants(grants.lines), methods);
  const item = `grants ${user}`;
  if (cmp.missing.length > 0) {
    return {
      item,
      status: "fail",
      detail: `missing for ${methods.join(" and ")} backups: ${cmp.missing.join(", ")} (SHOW GRANTS on ${grants.node})`,
      hint: "strongbox user create adds them; strongbox user grants prints them",
    };
  }
  if (cmp.extra.length > 0) {
    return {
      item,
      status: "warn",
      detail: `more than ${methods.join(" and ")} backups need: ${cmp.extra.map((x) => x.privilege).join(", ")}`,
      hint: "strongbox audit says which to revoke",
    };
  }
  return { item, status: "ok", detail: `exactly what ${methods.join(" and ")} backups need` };
}

/** Nodes backed up here: the local mariabackup against each; nodes with an agent: the handshake. */
async function toolItems(loaded: LoadedConfig, facts: NodeFacts[]): Promise<CheckItem[]> {
  const items: CheckItem[] = [];
  const path = loaded.config.backup.mariabackupPath;
  let local: Promise<string> | undefined;
  for (const f of facts) {
    const item = `mariabackup ${f.node.name}`;
    if (f.node.agent) {
      items.push(await agentItem(f.node));
      continue;
    }
    try {
      local ??= mariabackupVersion(path);
      const c = compareToolVersion(await local, f.vars.get("version") ?? "");
      items.push({
        item,
        status: c.status,
        detail: c.why,
        ...(c.status === "ok" ? {} : { hint: "install the mariadb-backup package of the server's version" }),
      });
    } catch (e) {
      items.push({
        item,
        status: "fail",
        detail: `cannot run ${path}: ${errorMessage(e)}`,
        hint: "apt-get install mariadb-backup, or set backup.mariabackupPath",
      });
    }
  }
  return items;
}

async function agentItem(node: ClusterNode): Promise<CheckItem> {
  const a = node.agent!;
  const item = `agent ${node.name}`;
  try {
    const h = await greetAgent({ name: node.name, agent: a }, VERSION);
    return {
      item,
      status: "ok",
      detail: `strongbox ${h.version} answers as ${h.user ?? a.user}@${h.host ?? a.host} (mariabackup runs there)`,
    };
  } catch (e) {
    return {
      item,
      status: "fail",
      detail: errorMessage(e),
      hint: "see docs/deployment.md: the agent account, its authorized_keys line and the host key",
    };
  }
}
