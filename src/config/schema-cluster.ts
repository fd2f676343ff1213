// strongbox.yaml, cluster: the nodes, how to reach them (SQL, TLS, agents) and their credentials.
import * as z from "zod";
import { filePath, requireHostKey, sshClientFields } from "./schema-common.ts";

export const agentSchema = z
  .object({
    host: z.string().min(1).optional().describe("SSH host of the node (default: the node's host)"),
    port: z.number().int().min(1).max(65535).default(22).describe("SSH port"),
    user: z.string().min(1).describe("the agent's OS account on the node (it runs mariabackup)"),
    ...sshClientFields,
    command: z
      .string()
      .min(1)
      .default("strongbox agent")
      .describe("command sent to sshd; the forced command in authorized_keys takes its place"),
  })
  .strict()
  .superRefine(requireHostKey);

export const nodeSchema = z
  .object({
    name: z
      .string()
      .min(1)
      .regex(/^[A-Za-z0-9_.-]+$/, "letters, digits, '_', '.', '-'")
      .describe("node name used in commands and reports"),
    host: z.string().min(1).default("127.0.0.1").describe("host name or address of the node's client port"),
    port: z.number().int().min(1).max(65535).default(3306).describe("client port"),
    socket: filePath
      .optional()
      .describe(
        "unix socket; used instead of host:port when the node is local. With an agent: the socket on the node (absolute), used by the agent's mariabackup only",
      ),
    datadir: filePath
      .optional()
      .describe(
        "data directory of the node (needed for physical backups taken on this host; with an agent, its path on the node)",
      ),
    defaultsFile: filePath
      .optional()
      .describe(
        "the node's my.cnf, passed to mariabackup as --defaults-file (with an agent: its path on the node)",
      ),
    agent: agentSchema
      .optional()
      .describe("how the backup host reaches this node's agent over SSH; physical backups run there"),
  })
  .strict()
  .superRefine((n, ctx) => {
    // With an agent these are paths on the node: relative ones would be resolved on the wrong host.
    if (!n.agent) return;
    for (const key of ["socket", "datadir", "defaultsFile"] as const) {
      const v = n[key];
      if (v !== undefined && !v.startsWith("/"))
        ctx.addIssue({
          code: "custom",
          path: [key],
          message: `a path on the node with an agent must be absolute, got "${v}"`,
        });
    }
  });

export const credentialsSchema = z
  .object({
    user: z.string().min(1).describe("account name"),
    passwordFile: filePath
      .optional()
      .describe("file holding the password (mode 0600); omit for unix_socket authentication"),
  })
  .strict();

export const tlsSchema = z
  .object({
    ca: filePath.optional().describe("CA certificate to verify the server"),
    cert: filePath.optional().describe("client certificate"),
    key: filePath.optional().describe("client key (mode 0600)"),
  })
  .strict();

export const clusterSchema = z
  .object({
    name: z.string().min(1).default("galera").describe("cluster name, recorded in every manifest"),
    nodes: z.array(nodeSchema).min(1).describe("every node of the cluster; at least one"),
    backupNode: z.string().optional().describe("preferred donor for backups (must name a node)"),
    writerNode: z.string().optional().describe("the node applications write to; avoided as donor"),
    desync: z
      .enum(["auto", "on", "off"])
      .default("auto")
      .describe(
        "SET GLOBAL wsrep_desync=ON during backups; auto = on when the cluster has more than one node",
      ),
    retryOnNextNode: z
      .boolean()
      .default(true)
      .describe("when the chosen node fails mid-backup, retry once on the next healthy node"),
    credentials: z
      .object({
        backup: credentialsSchema.describe("least-privilege backup account"),
        admin: credentialsSchema
          .optional()
          .describe("separate admin account for wsrep_desync (needs SUPER); optional"),
      })
      .strict(),
    tls: tlsSchema.optional().describe("TLS for connections to the nodes"),
  })
  .strict();
