// Error codes of the cluster and its nodes.
import { type ErrorSpec, ExitCode, FAIL } from "./spec.ts";

export const CLUSTER_ERRORS = {
  title: "The cluster and its nodes",
  codes: {
    NODE_UNKNOWN: {
      exit: ExitCode.usage,
      meaning: "no node of that name in cluster.nodes (a usage error: nothing is attempted or recorded)",
      hint: "use one of the configured node names",
    },
    NODE_UNREACHABLE: {
      exit: FAIL,
      meaning: "nothing answers at the node's address or socket",
      hint: "is mariadbd running there, and reachable from this host?",
    },
    NODE_TLS: {
      exit: FAIL,
      meaning: "the TLS handshake with the node failed",
      hint: "check cluster.tls (CA, certificate, key) against the server's",
    },
    NODE_CONNECT_FAILED: {
      exit: FAIL,
      meaning: "the node refused the connection (wrong password, unknown account, too many connections)",
      hint: "check the account and its password file",
    },
    NODE_NOT_SYNCED: {
      exit: FAIL,
      meaning: "the requested node is not Synced in a Primary component",
      hint: "wait for it to rejoin, or omit --node",
    },
    NO_SYNCED_NODE: {
      exit: FAIL,
      meaning: "no node is Synced in a Primary component: there is no safe donor",
      hint: "wait for the cluster to recover, or check the nodes",
    },
    NO_ADMIN: {
      exit: FAIL,
      meaning: "an administrative step needs the admin account and none is configured",
      hint: "set cluster.credentials.admin",
    },
    DESYNC_NO_ADMIN: {
      exit: FAIL,
      meaning: "cluster.desync is on but there is no admin account to set wsrep_desync with",
      hint: "set cluster.credentials.admin (needs SUPER), or cluster.desync: auto/off",
    },
    DESYNC_FAILED: {
      exit: FAIL,
      meaning: "wsrep_desync could not be set on the donor",
      hint: "the admin account needs SUPER (or set cluster.desync: off)",
    },
    ACCOUNT_CREATE_FAILED: {
      exit: FAIL,
      meaning: "the backup account could not be created or granted",
      hint: "the admin account needs CREATE USER and GRANT OPTION",
    },
    ACCOUNT_PASSWORD_UNKNOWN: {
      exit: FAIL,
      meaning: "the backup account exists but its password is not known to strongbox",
      hint: "pass --password-file with its password, or drop the account and create it again",
    },
    PASSWORD_FILE_EXISTS: {
      exit: FAIL,
      meaning: "the password file exists but the account does not: it is not overwritten",
      hint: "remove the stale file, or pass another --password-file",
    },
  },
} as const satisfies { title: string; codes: Record<string, ErrorSpec> };
