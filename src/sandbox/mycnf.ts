// my.cnf of one sandbox node: Galera on its loopback address, binlogs with GTIDs for point-in-time
// recovery. With --hosts mariadbd is started as the node's account, so no user= line.
import type { SandboxNode } from "./layout.ts";

export interface CnfOptions {
  clusterName: string;
  nodes: SandboxNode[];
  sstUser: string;
  sstPassword: string;
  runAsRoot: boolean;
  bufferPool: string;
  /** Appended to [mysqld]; later lines override earlier ones. */
  extra?: string[];
  /** Appended to wsrep_provider_options (e.g. socket.ssl_*). */
  providerOptions?: string[];
  /** Appended to [sst]. */
  sst?: string[];
}

export function renderNodeCnf(node: SandboxNode, o: CnfOptions): string {
  const peers = o.nodes.map((n) => `${n.address}:${n.gmcastPort}`).join(",");
  const a = node.address;
  const lines = [
    "# Written by strongbox sandbox; contains the SST password, so mode 0600.",
    "[mysqld]",
    ...(o.runAsRoot ? ["user=root"] : []),
    `datadir=${node.datadir}`,
    `socket=${node.socket}`,
    `pid-file=${node.pidFile}`,
    `log-error=${node.errorLog}`,
    `tmpdir=${node.tmpdir}`,
    `port=${node.port}`,
    `bind-address=${a}`,
    "skip-name-resolve",
    "performance_schema=OFF",
    `innodb_buffer_pool_size=${o.bufferPool}`,
    "innodb_log_file_size=128M",
    "innodb_flush_log_at_trx_commit=2",
    "default_storage_engine=InnoDB",
    "innodb_autoinc_lock_mode=2",
    "binlog_format=ROW",
    "log_bin=binlog",
    "log_slave_updates=ON",
    "server_id=1",
    `gtid_domain_id=${100 + node.index}`,
    "max_allowed_packet=64M",
    "wsrep_on=ON",
    "wsrep_provider=/usr/lib/galera/libgalera_smm.so",
    `wsrep_cluster_name=${o.clusterName}`,
    `wsrep_cluster_address=gcomm://${peers}`,
    `wsrep_node_name=${node.name}`,
    `wsrep_node_address=${a}:${node.gmcastPort}`,
    `wsrep_node_incoming_address=${a}:${node.port}`,
    `wsrep_provider_options="gmcast.listen_addr=tcp://${a}:${node.gmcastPort};ist.recv_addr=${a}:${node.istPort};gcache.size=256M;pc.wait_prim_timeout=PT30S${(o.providerOptions ?? []).map((x) => `;${x}`).join("")}"`,
    "wsrep_sst_method=mariabackup",
    `wsrep_sst_auth=${o.sstUser}:${o.sstPassword}`,
    `wsrep_sst_receive_address=${a}:${node.sstPort}`,
    "wsrep_gtid_mode=ON",
    "wsrep_gtid_domain_id=1",
    "wsrep_slave_threads=2",
    ...(o.extra ?? []),
    "",
    "[sst]",
    "progress=none",
    ...(o.sst ?? []),
    "",
  ];
  return lines.join("\n");
}
